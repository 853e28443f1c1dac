import pytest

from conftest import log_in

pytestmark = pytest.mark.foundation


def test_header_shot(live_server, live_world, browser):
    w = live_world
    for org in (w.bureau,):
        org.name_en = "Shanghai Planning and Natural Resources Bureau"
        org.save()
    w.admin.first_name = "平台管理员"
    w.admin.save()
    for lang, who in (("en-US", "admin"), ("zh-CN", "admin"), ("en-US", "steward")):
        context = browser.new_context(locale=lang, viewport={"width": 1280, "height": 400})
        page = context.new_page()
        log_in(page, live_server.url, who)
        page.goto(f"{live_server.url}/")
        box = page.locator("header.top").bounding_box()
        nav = page.locator("header.top nav").bounding_box()
        print(lang, who, "header", box, "nav", nav, "scrollWidth", page.evaluate("document.documentElement.scrollWidth"))
        page.screenshot(path=f"/tmp/i18n/shots/header-{lang}-{who}.png", clip={"x": 0, "y": 0, "width": 1280, "height": 120})
        context.close()
