from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProvenanceConfig(AppConfig):
    name = "provenance"
    verbose_name = _("溯源事件")

    def ready(self):
        from . import receivers  # noqa: F401  (connects the receivers)
