"""A challenge from end to end, through the API on the real worker and chain: the bureau
opens a scenario and a challenge on its compute-only rooms; a newcomer builds a valid
submission from the starter kit alone; two teams (one spanning two organisations) submit;
the public board shows Ladder scores; the steward closes it and the private board ranks the
finals; the winner shares its result, whose provenance badge verifies against the chain and
whose score a team can prove; another team fine-tunes it in a sandbox job, with the
derivation in the lineage and the attribution on the model card; the bureau's metrics count it
all."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import pytest

from conftest import api_client, follow_task
from innovation_support import add_people, follow_submission, open_challenge, register, submit_weights, trained_weights
from sandbox_support import follow_job

pytestmark = pytest.mark.innovation


def test_a_challenge_from_opening_to_the_showcase_and_reuse(live_world, celery_worker, tmp_path):
    from provenance.anchoring import anchor_pending
    from provenance.lineage import lineage_graph

    w = add_people(live_world)
    challenge = open_challenge(w)
    slug = challenge["slug"]
    assert challenge["phase"] == "open" and challenge["metric"] == "accuracy"
    assert challenge["leaderboard"]["mechanism"].startswith("Ladder") and challenge["leaderboard"]["step"] == 0.01

    # Followers and interest on the scenario.
    assert api_client(w.applicant).post("/api/scenarios/building-use/follow/", {"kind": "follow"},
                                        format="json").status_code == 201
    assert api_client(w.researcher).post("/api/scenarios/building-use/follow/",
                                         {"kind": "interest", "note": "we have a room-use model"},
                                         format="json").status_code == 201

    # The starter kit: a newcomer makes and scores a valid submission on mock data only.
    kit = api_client(w.researcher).get(f"/api/challenges/{slug}/starter-kit/")
    assert kit.status_code == 200 and kit["Content-Type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(kit.content)).extractall(tmp_path / "kit")
    spec = json.loads((tmp_path / "kit" / "spec.json").read_text())
    assert "salt" not in spec and spec["task"] == "room-use"
    trained = subprocess.run([sys.executable, "train.py"], cwd=tmp_path / "kit", capture_output=True, text=True,
                             timeout=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    for submission in ("model.pt", "predict.py"):
        scored = subprocess.run([sys.executable, "score.py", submission], cwd=tmp_path / "kit", capture_output=True,
                                text=True, timeout=300)
        assert scored.returncode == 0 and "a valid submission" in scored.stdout, scored.stderr[-2000:]

    # Two teams; one spans two organisations through an invitation.
    register(w.applicant, slug, "米粒")
    team_tongji = register(w.researcher, slug, "同济")
    invited = api_client(w.applicant).post(f"/api/teams/{team_tongji['id']}/invite/", {"username": "fudan"},
                                           format="json")
    assert invited.status_code == 403  # only the captain invites, and only into their own team
    invitation = api_client(w.researcher).post(f"/api/teams/{team_tongji['id']}/invite/", {"username": "fudan"},
                                               format="json")
    assert invitation.status_code == 201, invitation.content
    accepted = api_client(w.fudan_user).post(f"/api/invitations/{invitation.json()['id']}/accept/")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    members = api_client(w.researcher).get(f"/api/teams/{team_tongji['id']}/").json()["members"]
    assert {m["organisation"] for m in members} == {"tongji-lab", "fudan-lab"}

    # Submissions: the kit's model and the kit's rule-based script from 米粒, a trained model from 同济.
    kit_model = submit_weights(w.applicant, slug, (tmp_path / "kit" / "model.pt").read_bytes(), "starter kit")
    assert kit_model.status_code == 201, kit_model.content
    kit_code = api_client(w.applicant).post("/api/submissions/", {
        "challenge": slug, "kind": "code", "code": (tmp_path / "kit" / "predict.py").read_text()}, format="json")
    assert kit_code.status_code == 201, kit_code.content
    strong = submit_weights(w.fudan_user, slug, trained_weights(neighbourhoods=spec["neighbourhoods"]), "mlp")
    assert strong.status_code == 201, strong.content
    scored = {name: follow_submission(user, response.json()["id"]) for name, user, response in (
        ("kit_model", w.applicant, kit_model), ("kit_code", w.applicant, kit_code), ("strong", w.fudan_user, strong))}
    for name, data in scored.items():
        assert data["status"] == "scored", (name, data["status_reason"])
        assert data["public_score"] is None  # teams never see the exact score
        assert abs(data["displayed_score"] * 100 - round(data["displayed_score"] * 100)) < 1e-9  # on the ladder
    assert scored["strong"]["displayed_score"] > scored["kit_code"]["displayed_score"]
    from django.conf import settings

    evaluations = settings.STATE_DIR / "innovation" / "evaluations"  # the hidden features, what each wrote
    assert not [p for p in evaluations.glob("*") if p.name.split("-")[0] in {str(d["id"]) for d in scored.values()}]
    exact = api_client(w.steward).get(f"/api/submissions/{strong.json()['id']}/").json()["public_score"]
    assert abs(exact - scored["strong"]["displayed_score"]) <= 0.005 + 1e-9  # the steward sees the exact score

    board = api_client(w.applicant).get(f"/api/challenges/{slug}/leaderboard/").json()
    assert board["mechanism"]["step"] == 0.01
    assert [row["team"] for row in board["rows"]] == ["同济", "米粒"]
    assert board["rows"][0]["organisations"] == ["fudan-lab", "tongji-lab"]
    early = api_client(w.applicant).get(f"/api/challenges/{slug}/private-board/")
    assert early.status_code == 409

    # The close: submissions end, the finals are scored on the private part.
    closing = api_client(w.steward).post(f"/api/challenges/{slug}/close/")
    assert closing.status_code == 202, closing.content
    assert follow_task(api_client(w.steward), closing.json()["progress"]["id"], timeout=300)["status"] == "succeeded"
    final = api_client(w.applicant).get(f"/api/challenges/{slug}/private-board/").json()
    assert [(row["rank"], row["team"]) for row in final["rows"]] == [(1, "同济"), (2, "米粒")]
    assert final["rows"][0]["score"] > 0.6
    late = submit_weights(w.applicant, slug, (tmp_path / "kit" / "model.pt").read_bytes())
    assert late.status_code == 409 and "deadline" in late.json()["detail"]

    # The winner shares its result; once anchored, its badge verifies against the chain and
    # the team proves its score and rank with inclusion proofs.
    shared = api_client(w.researcher).post("/api/showcase/", {
        "submission": strong.json()["id"], "title": "房间用途 MLP", "summary": "按楼层、面积、房龄与街道识别房间用途",
        "licence": "CC-BY-4.0"}, format="json")
    assert shared.status_code == 201, shared.content
    item = shared.json()
    assert item["card"]["scores"]["rank"] == 1 and item["card"]["team"]["organisations"] == ["fudan-lab", "tongji-lab"]
    run = anchor_pending(force=True)
    assert not run.error, run.error
    badge = api_client(w.applicant).get(f"/api/showcase/{item['id']}/verify/").json()
    assert badge["ok"] is True and badge["events"] >= 5 and badge["anchored"] == badge["events"]
    proof = api_client(w.fudan_user).get(f"/api/submissions/{strong.json()['id']}/proof/").json()
    kinds = {e["event_type"]: e for e in proof["events"]}
    assert kinds["innovation.final_scored"]["payload"]["rank"] == 1
    assert all(e["proof"] is not None and e["proof"]["anchor"]["tx_hash"] for e in proof["events"])

    # Reuse: 米粒 (a startup) fine-tunes it in a sandbox job; attribution and derivation follow.
    from access import actions as access_actions

    application = access_actions.submit_application(actor=w.applicant, dataset=w.rooms, purpose="fine-tune the shared room-use model")
    access_actions.approve_application(actor=w.steward, application=application, epsilon="10", delta="1e-5")
    job = api_client(w.applicant).post("/api/jobs/", {
        "dataset": "district-rooms", "kind": "centralized", "title": "fine-tune the shared MLP", "task": "room-use",
        "params": {"epochs": 1, "target_epsilon": 1.0, "delta": 1e-5, "base_model": item["id"]}}, format="json")
    assert job.status_code == 201, job.content
    assert api_client(w.steward).post(f"/api/jobs/{job.json()['id']}/approve/", {"note": "ok"},
                                      format="json").status_code == 200
    finished = follow_job(w, job.json()["id"], user=w.applicant)
    assert finished["status"] == "review", finished["status_reason"]
    released = api_client(w.steward).post(f"/api/jobs/{job.json()['id']}/release/", {"note": "ok"}, format="json")
    model = api_client(w.applicant).get(f"/api/models/{released.json()['model']}/").json()
    assert model["card"]["derived_from"]["team"] == "同济" and model["card"]["derived_from"]["licence"] == "CC-BY-4.0"
    graph = lineage_graph(f"jobs.trainedmodel:{model['id']}")
    assert f"innovation.showcaseitem:{item['id']}" in graph.nodes
    assert api_client(w.applicant).get(f"/api/showcase/{item['id']}/").json()["reuses"] == 1

    # The bureau's figures.
    assert api_client(w.steward).post("/api/scenarios/building-use/deploy/",
                                      {"note": "用于城市更新片区核查"}, format="json").status_code == 200
    metrics = api_client(w.steward).get("/api/innovation-metrics/").json()
    assert metrics["participants"] == 3 and metrics["participating_organisations"] == 3
    assert metrics["submissions"] == 3 and metrics["teams"] == 2 and metrics["reuse_jobs"] == 1
    assert metrics["scenarios_deployed"] == 1 and metrics["followers"] == 1 and metrics["interested_organisations"] == 1
