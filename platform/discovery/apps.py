from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DiscoveryConfig(AppConfig):
    """The catalogue as its readers meet it: search, the metadata records, DCAT and the dataset
    API, over catalog's datasets and what corpora, releases and access hold of them."""

    name = "discovery"
    verbose_name = _("数据目录")

    def ready(self):
        from . import answers

        answers.connect()
