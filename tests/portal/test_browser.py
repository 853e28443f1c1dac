"""Each role logs in through Chromium and sees its own dashboard."""
from __future__ import annotations

import re

import pytest

from conftest import PASSWORD, log_in

pytestmark = [pytest.mark.foundation, pytest.mark.browser]

@pytest.mark.parametrize(
    "username,title,marker,text",
    [
        ("applicant", "申请方工作台", "catalog", "建筑单元"),
        ("steward", "数据管理员工作台", "review-queue", "pipe risk model"),
        ("holder", "数据持有方工作台", "held-datasets", "建筑单元"),
        ("auditor", "审计员工作台", "events", "创建用户"),  # accounts.user_created, put into words
        ("admin", "平台管理员工作台", "organisations", "sh-audit"),
    ],
)
def test_each_role_logs_in_to_its_dashboard(live_server, live_world, page, username, title, marker, text):
    log_in(page, live_server.url, username)
    assert page.inner_text("[data-testid=dashboard-title]") == title
    assert text in page.inner_text(f"[data-testid={marker}]")
    assert username in page.inner_text("[data-testid=who]")


def test_wrong_password_shows_an_error(live_server, live_world, page):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "applicant")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit].primary")
    assert "用户名或密码不正确" in page.inner_text("[role=alert]")


def test_steward_approves_and_the_applicant_sees_it_in_english(live_server, live_world, browser, page):
    log_in(page, live_server.url, "steward")
    row = page.locator("[data-testid=review-queue] tr", has_text="pipe risk model")
    row.locator("input[name=reason]").fill("purpose is clear")
    row.locator("button[value=approve]").click()
    assert "已处理" in page.inner_text("[role=alert]")
    # Its own bureau's request is shown without buttons: separation of duties.
    own = page.locator("[data-testid=review-queue] tr", has_text="internal planning study")
    assert own.locator("button").count() == 0 and "职责分离" in own.inner_text()

    applicant = browser.new_context(locale="zh-CN").new_page()
    log_in(applicant, live_server.url, "applicant")
    assert "已批准" in applicant.inner_text("[data-testid=applications]")
    applicant.click("button[value=en]")
    applicant.wait_for_selector("text=Applicant dashboard")
    assert "Approved" in applicant.inner_text("[data-testid=applications]")
    applicant.context.close()


def test_applicant_gets_a_clear_message_for_a_bad_application(live_server, live_world, page):
    from access.models import Application

    before = Application.objects.count()
    log_in(page, live_server.url, "applicant")
    page.select_option("[data-testid=apply-form] select[name=dataset]", "district-rooms")
    page.fill("[data-testid=apply-form] textarea[name=purpose]", "too short")
    page.click("[data-testid=apply-form] button[type=submit]")
    # In the browser's language (zh-CN): the form says it was refused, the field says why.
    assert "表单有误" in page.inner_text("[role=alert]")
    assert "用途说明需 10 至 4000 个字符" in page.inner_text(".field-error[data-field=purpose]")
    assert page.input_value("textarea[name=purpose]") == "too short"  # what was typed is kept
    assert Application.objects.count() == before


def test_auditor_verifies_the_chain_and_watches_the_progress_bar(live_server, live_world, celery_worker, page):
    log_in(page, live_server.url, "auditor")
    page.click("[data-testid=verify]")
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]+/$"))
    # When the task ends the page reloads and shows the verdict in words, not the report's JSON.
    page.wait_for_selector("[data-testid=task-result][data-finished=true]", timeout=60_000)
    assert "succeeded" in page.get_attribute("#task-status", "class")
    assert page.eval_on_selector("#task-bar", "bar => bar.value") == 100
    result = page.inner_text("[data-testid=task-result]")
    assert "未发现篡改" in result and '"ok"' not in result
