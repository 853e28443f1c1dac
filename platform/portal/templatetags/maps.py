"""{% map_assets %}: Leaflet, static/miliao/map.js and the page's map configuration (the
basemap and the legend's words in the page's language), once on a page with maps."""
from django import template

register = template.Library()


@register.inclusion_tag("portal/_map_assets.html")
def map_assets():
    from portal.map_views import page_config

    return {"map_config": page_config()}
