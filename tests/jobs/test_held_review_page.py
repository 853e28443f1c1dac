"""The steward opens a trained model held for review before releasing it: the job page shows
the held files (the model's tensors, shape by shape, and its result) to the stewards of the
data's bureau, and to no one else."""
from __future__ import annotations

import pytest

from sandbox_support import add_rooms_corpus, approve_lab, job_in_review

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]


def test_only_the_data_owners_steward_opens_the_held_model_on_the_job_page(world, client):
    w = world
    add_rooms_corpus(w, rooms=300)
    approve_lab(w)
    job = job_in_review(w)
    client.force_login(w.steward)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    model = page.split('data-testid="job-held-model"', 1)[1].split("</table>", 1)[0]
    assert model.count("<tr>") > 2 and "float32" in model and "<code>" in model  # tensor, shape, type, count
    assert "model.pt" in page and "result.json" in page and 'data-testid="job-decide"' in page
    for who in (w.researcher, w.other_steward, w.auditor, w.admin):
        client.force_login(who)
        response = client.get(f"/jobs/{job.pk}/")
        assert response.status_code in (200, 404)
        assert 'data-testid="job-held' not in response.content.decode(), who.username
