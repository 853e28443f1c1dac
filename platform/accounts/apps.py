from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("组织与用户")

    def ready(self):
        from axes.signals import user_locked_out

        from .throttling import on_locked_out

        user_locked_out.connect(on_locked_out, dispatch_uid="accounts.login_locked_out")
