"""Helpers for the crowd-innovation tests: a scenario and a challenge on the compute-only
rooms, teams across organisations, and weights trained the way a team would train them."""
from __future__ import annotations

import datetime
import functools
import io

from conftest import PASSWORD, api_client, wait_for
from sandbox_support import add_rooms_corpus

HIDDEN_ROOMS = 6000


def add_people(w):
    """A second research lab with a person in it, for a team that spans organisations."""
    from accounts import actions as account_actions

    w.fudan = account_actions.create_organisation(actor=None, code="fudan-lab", name="fudan-lab 名称",
                                                  kind="research_lab")
    w.fudan_user = account_actions.create_user(actor=None, username="fudan", password=PASSWORD, role="applicant",
                                               organisation=w.fudan)
    return w


def times(opens=-3600, final=3600, closes=7200):
    now = datetime.datetime.now(datetime.timezone.utc)
    return {name: (now + datetime.timedelta(seconds=s)).isoformat()
            for name, s in (("opens_at", opens), ("final_at", final), ("closes_at", closes))}


def open_challenge(w, *, slug="room-use-2026", daily_limit=5, rooms=HIDDEN_ROOMS, **timeline):
    """Through the API, as the bureau's steward would: a scenario, then a challenge on it."""
    if not hasattr(w, "rooms_corpus"):
        add_rooms_corpus(w, rooms=rooms, seed=21)
    steward = api_client(w.steward)
    if not hasattr(w, "scenario"):
        scenario = steward.post("/api/scenarios/", {
            "slug": "building-use", "title": "建筑用途识别", "background": "识别城市更新片区内房间的实际用途。",
            "contact": "规划处 王数据", "datasets": ["district-rooms"]}, format="json")
        assert scenario.status_code == 201, scenario.content
        w.scenario = scenario.json()
    created = steward.post("/api/challenges/", {
        "scenario": "building-use", "slug": slug, "title": "房间用途识别挑战赛", "task": "room-use",
        "training_dataset": "district-rooms", "hidden_corpus": w.rooms_corpus.pk,
        "rules": "每队每日限交；不得尝试识别个人。", "daily_limit": daily_limit, "max_submission_bytes": 2_000_000,
        "ladder_step": 0.01, **times(**timeline)}, format="json")
    assert created.status_code == 201, created.content
    return created.json()


def register(user, slug, name):
    response = api_client(user).post(f"/api/challenges/{slug}/teams/", {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def trained_weights(*, epochs: int = 8, seed: int = 31, rooms: int = 8000, neighbourhoods=None) -> bytes:
    """Weights a team trains on data of its own (a generated district here): a state_dict."""
    return _trained(epochs, seed, rooms, tuple(neighbourhoods) if neighbourhoods else None)


@functools.lru_cache(maxsize=8)
def _trained(epochs: int, seed: int, rooms: int, neighbourhoods) -> bytes:
    import torch

    from corpora.generator import district_units
    from sandbox import tasks, training

    table = district_units(seed=seed, rooms=rooms)
    task = tasks.task_named("room-use")
    train, test = tasks.split(table, task, list(neighbourhoods) if neighbourhoods else tasks.vocabulary(table))
    result = training.fit(task, training.TrainSpec(epochs=epochs, private=False, learning_rate=0.05, batch_size=128),
                          train, test)
    buffer = io.BytesIO()
    torch.save(result.state, buffer)
    return buffer.getvalue()


def submit_weights(user, slug, content: bytes, note: str = ""):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return api_client(user).post("/api/submissions/", {
        "challenge": slug, "kind": "weights", "note": note,
        "file": SimpleUploadedFile("model.pt", content, content_type="application/octet-stream")}, format="multipart")


def follow_submission(user, submission_id, timeout=180):
    client = api_client(user)

    def done():
        data = client.get(f"/api/submissions/{submission_id}/").json()
        return data if data["status"] in ("scored", "failed") else None

    return wait_for(done, timeout=timeout, interval=0.5, what=f"submission {submission_id} to be scored")
