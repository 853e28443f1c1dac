"""A challenge in the browser, on the real worker and chain: the steward opens a scenario and
a challenge from the portal; two teams register, take the starter kit, and submit (weights
from one, the kit's script from the other); the public board shows their Ladder scores; the
steward closes it; the private board ranks them; the winner shares its result, and the
showcase page's provenance badge verifies it against the chain."""
from __future__ import annotations

import datetime
import zipfile

import pytest

from conftest import log_in, wait_for
from innovation_support import HIDDEN_ROOMS, trained_weights
from sandbox_support import add_rooms_corpus

pytestmark = [pytest.mark.innovation, pytest.mark.browser]


def _local(seconds: int) -> str:
    from django.utils import timezone

    return (timezone.localtime() + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M")


def _until(page, selector: str, text: str, timeout: float = 180):
    def shown():
        page.reload()
        return text in page.inner_text(selector)

    wait_for(shown, timeout=timeout, interval=2, what=f"{text!r} in {selector}")


def test_a_challenge_in_the_browser(live_server, live_world, celery_worker, browser, page, tmp_path):
    from innovation.models import Challenge
    from provenance.anchoring import anchor_pending

    w = live_world
    add_rooms_corpus(w, rooms=HIDDEN_ROOMS, seed=21)
    url = live_server.url

    steward = browser.new_context(locale="zh-CN").new_page()
    log_in(steward, url, "steward")
    steward.click("[data-testid=nav-innovation]")
    form = steward.locator("[data-testid=scenario-form]")
    form.locator("input[name=slug]").fill("building-use")
    form.locator("input[name=title]").fill("建筑用途识别")
    form.locator("textarea[name=background]").fill("识别城市更新片区内房间的实际用途。")
    form.locator("input[name=contact]").fill("规划处")
    form.locator("select[name=datasets]").select_option("district-rooms")
    form.locator("button[type=submit]").click()
    assert "场景已开放" in steward.inner_text("[role=alert]")
    form = steward.locator("[data-testid=challenge-form]")
    form.locator("input[name=slug]").fill("room-use")
    form.locator("input[name=title]").fill("房间用途识别挑战赛")
    form.locator("select[name=training_dataset]").select_option("district-rooms")
    form.locator("textarea[name=rules]").fill("每队每日限交五次。")
    form.locator("input[name=opens_at]").fill(_local(-3600))
    form.locator("input[name=final_at]").fill(_local(3600))
    form.locator("input[name=closes_at]").fill(_local(7200))
    form.locator("button[type=submit]").click()
    assert "挑战赛已开放" in steward.inner_text("[role=alert]")
    assert "Ladder" in steward.inner_text("[data-testid=ladder]")
    spec = Challenge.objects.get(slug="room-use").spec

    # Team 同济: the starter kit, a team, a trained model.
    log_in(page, url, "researcher")
    page.goto(f"{url}/innovation/challenges/room-use/")
    with page.expect_download() as download:
        page.click("[data-testid=starter-kit]")
    kit = zipfile.ZipFile(open(download.value.path(), "rb"))
    assert {"README.md", "spec.json", "train.py", "predict.py", "score.py", "mock/train.parquet"} <= set(kit.namelist())
    page.locator("[data-testid=team-form] input[name=name]").fill("同济")
    page.locator("[data-testid=team-form] button").click()
    model = tmp_path / "model.pt"
    model.write_bytes(trained_weights(neighbourhoods=spec["neighbourhoods"]))
    page.set_input_files("[data-testid=submit-file]", str(model))
    page.click("[data-testid=submit]")
    assert "评测中" in page.inner_text("[role=alert]")

    # Team 米粒: the kit's script, pasted as a code submission.
    other = browser.new_context(locale="zh-CN").new_page()
    log_in(other, url, "applicant")
    other.goto(f"{url}/innovation/challenges/room-use/")
    other.locator("[data-testid=team-form] input[name=name]").fill("米粒")
    other.locator("[data-testid=team-form] button").click()
    form = other.locator("[data-testid=submit-form]")
    form.locator("select[name=kind]").select_option("code")
    form.locator("textarea[name=code]").fill(kit.read("predict.py").decode())
    form.locator("button[type=submit]").click()

    _until(page, "[data-testid=submissions]", "已评分")
    _until(other, "[data-testid=submissions]", "已评分")
    page.reload()  # the board as it stands once both are scored
    board = page.inner_text("[data-testid=leaderboard]")
    assert board.index("同济") < board.index("米粒")

    steward.goto(f"{url}/innovation/challenges/room-use/")
    steward.click("[data-testid=close]")
    _until(steward, "body", "私有终评榜")
    rows = steward.locator("[data-testid=private-board] tbody tr").all_inner_texts()
    assert rows[0].split()[:2] == ["1", "同济"] and rows[1].split()[:2] == ["2", "米粒"]

    page.reload()
    share = page.locator("[data-testid=share-form]")
    share.locator("input[name=title]").fill("房间用途 MLP")
    share.locator("input[name=summary]").fill("按楼层、面积、房龄与街道识别房间用途")
    share.locator("select[name=licence]").select_option("CC-BY-4.0")
    share.locator("button[type=submit]").click()
    assert "成果已发布到路演" in page.inner_text("[role=alert]")
    assert "1/2" in page.inner_text("[data-testid=showcase-scores]")
    assert not anchor_pending(force=True).error  # what the beat does every few seconds
    other.goto(page.url)
    other.click("[data-testid=badge-verify]")
    other.wait_for_selector("[data-testid=badge-result][data-verified]")
    result = other.locator("[data-testid=badge-result]")
    assert result.get_attribute("data-verified") == "true", result.inner_text()
    assert "events verified on chain" in result.inner_text()
    for context in (steward.context, other.context):
        context.close()
