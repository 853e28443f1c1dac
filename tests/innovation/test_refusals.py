"""What a challenge refuses, each with a clear reason and nothing stored: a submission over
the team's daily limit, after the deadline, from someone in no registered team or from the
bureau that holds the hidden set, too large, or malformed; a challenge whose hidden test set
is not compute-only, or whose timeline runs backwards; reuse a licence forbids."""
from __future__ import annotations

import datetime
import io

import pytest

from conftest import api_client
from innovation_support import open_challenge, register, submit_weights, trained_weights

pytestmark = [pytest.mark.innovation, pytest.mark.django_db]


def _counts():
    from innovation.models import Submission
    from provenance.models import LineageEvent

    return Submission.objects.count(), LineageEvent.objects.count()


@pytest.fixture
def challenge(world):
    challenge = open_challenge(world, slug="daily", daily_limit=1)
    register(world.researcher, challenge["slug"], "同济")
    return challenge


@pytest.fixture
def weights(world):
    """A model for the challenge's features (the hidden corpus's neighbourhoods, as in spec.json)."""
    from innovation.models import Challenge

    if not hasattr(world, "rooms_corpus"):
        open_challenge(world, slug="probe")
    return trained_weights(epochs=1, rooms=2000, neighbourhoods=Challenge.objects.first().spec["neighbourhoods"])


def test_the_daily_limit_refuses_the_next_submission_of_the_day(world, challenge, weights):
    first = submit_weights(world.researcher, challenge["slug"], weights)
    assert first.status_code == 201, first.content
    before = _counts()
    second = submit_weights(world.researcher, challenge["slug"], weights)
    assert second.status_code == 409 and "its 1 submissions of today" in second.json()["detail"]
    assert _counts() == before


def test_a_submission_after_the_deadline_is_refused(world, weights):
    open_challenge(world, slug="late", opens=-7200, final=-60, closes=3600)
    register(world.researcher, "late", "同济")
    before = _counts()
    response = submit_weights(world.researcher, "late", weights)
    assert response.status_code == 409 and "submission deadline of late passed" in response.json()["detail"]
    assert _counts() == before


def test_someone_in_no_registered_team_is_refused(world, challenge, weights):
    before = _counts()
    response = submit_weights(world.applicant, challenge["slug"], weights)
    assert response.status_code == 403 and "no team registered" in response.json()["detail"]
    bureau = submit_weights(world.bureau_applicant, challenge["slug"], weights)
    assert bureau.status_code == 403 and "holds its hidden test set" in bureau.json()["detail"]
    assert _counts() == before


def test_too_large_and_malformed_submissions_are_refused_naming_the_field(world, challenge, weights):
    import torch

    slug = challenge["slug"]
    wrong_shape = io.BytesIO()
    torch.save({"0.weight": torch.zeros(8, 3), "0.bias": torch.zeros(8)}, wrong_shape)
    pickled = io.BytesIO()  # a pickle of more than tensors: torch's safe loader refuses it
    torch.save({"when": datetime.date(2026, 12, 6)}, pickled)
    before = _counts()
    cases = [
        (b"\x00" * 2_000_001, "larger than 2000000 bytes, the most this challenge takes"),
        (b"not a checkpoint at all", "not a PyTorch state_dict"),
        (pickled.getvalue(), "not a PyTorch state_dict"),
        (wrong_shape.getvalue(), "do not fit the task's model"),
    ]
    for content, message in cases:
        response = submit_weights(world.researcher, slug, content)
        assert response.status_code == 400 and message in response.json()["file"][0], response.content
    broken = api_client(world.researcher).post("/api/submissions/", {"challenge": slug, "kind": "code",
                                                                     "code": "def predict(:\n"}, format="json")
    assert broken.status_code == 400 and "does not compile" in broken.json()["code"][0]
    empty = api_client(world.researcher).post("/api/submissions/", {"challenge": slug, "kind": "code", "code": ""},
                                              format="json")
    assert empty.status_code == 400 and "code" in empty.json()
    assert _counts() == before


def test_a_challenge_needs_a_compute_only_hidden_set_and_a_forward_timeline(world):
    from conftest import add_release

    from innovation_support import times

    w = add_release(world)  # an open corpus, which must not be a hidden test set
    open_challenge(w)  # the scenario and a valid challenge
    steward = api_client(w.steward)
    body = {"scenario": "building-use", "slug": "c2", "title": "x", "task": "room-use", "training_dataset": "huangpu-roads",
            "rules": "r", "daily_limit": 3}
    open_set = steward.post("/api/challenges/", {**body, "hidden_corpus": w.corpus.pk, **times()}, format="json")
    assert open_set.status_code == 400 and "must be compute-only" in open_set.json()["hidden_corpus"][0]
    backwards = steward.post("/api/challenges/", {**body, "hidden_corpus": w.rooms_corpus.pk,
                                                  **times(opens=600, final=60, closes=1200)}, format="json")
    assert backwards.status_code == 400 and "final_at" in backwards.json()
    unknown = steward.post("/api/challenges/", {**body, "slug": "c3", "task": "parking", "hidden_corpus": w.rooms_corpus.pk,
                                                **times()}, format="json")
    assert unknown.status_code == 400 and "task" in unknown.json()
    other = api_client(w.other_steward).post("/api/challenges/", {**body, "slug": "c4", "hidden_corpus": w.rooms_corpus.pk,
                                                                   **times()}, format="json")
    assert other.status_code == 403


def test_reuse_is_refused_where_the_licence_forbids_it(world, weights):
    from access import actions as access_actions
    from innovation import actions
    from innovation.models import Challenge, Submission
    from jobs import actions as job_actions
    from kernel.errors import Refused
    from sandbox_support import approve_lab

    w = world
    challenge = open_challenge(w)
    register(w.researcher, challenge["slug"], "同济")
    shared = []
    for _ in range(2):
        submission = Submission.objects.get(pk=submit_weights(w.researcher, challenge["slug"], weights).json()["id"])
        actions.record_score(submission_id=submission.pk, score=0.7)  # as the scoring task records it
        shared.append(submission)
    actions.close_challenge(actor=w.steward, challenge=Challenge.objects.get(slug=challenge["slug"]))
    actions.record_private_board(challenge_id=shared[0].challenge_id, scores={s.pk: 0.69 for s in shared})
    no_derivatives = actions.share_result(actor=w.researcher, submission=shared[0], title="nd", summary="s",
                                          licence="CC-BY-ND-4.0")
    non_commercial = actions.share_result(actor=w.researcher, submission=shared[1], title="nc", summary="s",
                                          licence="CC-BY-NC-4.0")
    approve_lab(w)
    params = {"epochs": 1, "target_epsilon": 1.0, "delta": 1e-5}
    with pytest.raises(Refused, match="no derivatives"):
        job_actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="centralized", title="ft", task="room-use",
                               params={**params, "base_model": no_derivatives.pk})
    application = access_actions.submit_application(actor=w.applicant, dataset=w.rooms, purpose="a room-use product for our customers")
    access_actions.approve_application(actor=w.steward, application=application, epsilon="5", delta="1e-5")
    refused = api_client(w.applicant).post("/api/jobs/", {
        "dataset": "district-rooms", "kind": "centralized", "title": "ft", "task": "room-use",
        "params": {**params, "base_model": non_commercial.pk}}, format="json")
    assert refused.status_code == 403 and "not for commercial use by a startup" in refused.json()["detail"]


ZEROS_1GIB_CRC32 = 0x5B64C2B0  # zlib.crc32(bytes(2**30)), computed once: 4 s here, for a constant


def _zeros_bomb(unpacked: int) -> bytes:
    """A torch checkpoint of one float tensor of `unpacked` bytes of zeros, its records
    deflated (torch.save stores them): about 1 MB on disk. Built by hand, segment by segment,
    so that the 1 GiB is never in memory."""
    import collections
    import pickle
    import struct
    import zlib

    import torch

    class Storage:
        pass

    class Zeros:
        def __reduce_ex__(self, protocol):
            return torch._utils._rebuild_tensor_v2, (Storage(), 0, (unpacked // 4,), (1,), False,
                                                     collections.OrderedDict())

    pickled = io.BytesIO()
    pickler = pickle.Pickler(pickled, protocol=2)
    pickler.persistent_id = lambda obj: ("storage", torch.FloatStorage, "0", "cpu", unpacked // 4) \
        if isinstance(obj, Storage) else None
    pickler.dump({"0.weight": Zeros()})
    segment = bytes(16 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed_segment = packer.compress(segment) + packer.flush(zlib.Z_FULL_FLUSH)  # restartable: repeats as is
    crc = ZEROS_1GIB_CRC32
    records = [("archive/data.pkl", pickled.getvalue()), ("archive/byteorder", b"little"),
               ("archive/version", b"3\n")]
    entries = [(name, zlib.crc32(raw), len(raw), _deflate(raw)) for name, raw in records]
    assert unpacked == 2**30  # the CRC above
    entries.append(("archive/data/0", crc, unpacked, packed_segment * (unpacked // len(segment)) + b"\x03\x00"))
    out, directory = io.BytesIO(), io.BytesIO()
    for name, crc, size, packed in entries:
        offset = out.tell()
        head = struct.pack("<IHHHHHIII", 0x04034B50, 20, 0, 8, 0, 0, crc, len(packed), size)
        out.write(head + struct.pack("<HH", len(name), 0) + name.encode() + packed)
        directory.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(packed), size,
                                    len(name), 0, 0, 0, 0, 0, offset) + name.encode())
    start = out.tell()
    out.write(directory.getvalue())
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory.getvalue()),
                          start, 0))
    return out.getvalue()


def _deflate(raw: bytes) -> bytes:
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(raw) + packer.flush()


def test_a_deflated_weights_bomb_is_refused_before_anything_loads_it(world, challenge):
    import resource
    import zipfile

    bomb = _zeros_bomb(2**30)
    assert len(bomb) < 1_100_000  # 1 MB on the wire, under the challenge's 2 MB
    assert sum(r.file_size for r in zipfile.ZipFile(io.BytesIO(bomb)).infolist()) > 2**30
    before = _counts()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    response = submit_weights(world.researcher, challenge["slug"], bomb)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert response.status_code == 400, response.content
    assert "unpack to 1073742" in response.json()["file"][0] and "refused before loading" in response.json()["file"][0]
    assert grew < 64 * 1024, f"the web process's peak memory grew by {grew} KiB"
    assert _counts() == before
