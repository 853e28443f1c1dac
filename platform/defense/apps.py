from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DefenseConfig(AppConfig):
    name = "defense"
    verbose_name = _("主动防御")

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the risk checks to the other apps' signals)
