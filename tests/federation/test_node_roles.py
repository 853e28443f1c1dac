"""Every district-node endpoint against every role (tests/accounts/test_permissions.py's matrix
points here). The node is the world's district's; registering with a key that is not one, and
revoking a node that is already revoked, answer the allowed role with the input's or the
state's refusal before the SuperLink is asked, so the matrix needs no SuperLink. A refused
request writes nothing. Registering and revoking for real: test_nodes.py."""
from __future__ import annotations

import pytest

from conftest import per_test, rolled_back_at_the_end
from role_support import ROLES, assert_answers, row

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]

# (name, method, path, body, expected status per role, status meaning "it was done")
TABLE = [
    ("nodes-list", "get", lambda w: "/api/federation/nodes/", None,
     row(anonymous=401, researcher=403, applicant=403, steward=200, other_steward=200, data_holder=200, auditor=200,
         admin=200), None),
    ("nodes-register", "post", lambda w: "/api/federation/nodes/",
     lambda w: {"organisation": w.district.code, "name": "new-node", "public_key": "ssh-rsa AAAA"},
     row(anonymous=401, researcher=403, applicant=403, steward=400, other_steward=400, data_holder=403, auditor=403,
         admin=403), 201),
    ("nodes-revoke", "post", lambda w: f"/api/federation/nodes/{w.revoked.name}/revoke/", lambda w: {"reason": "x"},
     row(anonymous=401, researcher=403, applicant=403, steward=409, other_steward=409, data_holder=403, auditor=403,
         admin=403), 200),
    ("nodes-publish", "post", lambda w: f"/api/federation/nodes/{w.node.name}/publish/", lambda w: {"manifest": {}},
     row(anonymous=401, researcher=403, applicant=403, steward=403, other_steward=403, data_holder=400, auditor=403,
         admin=403), 200),
]
CASES = [(name, role) for name, *_ in TABLE for role in ROLES]


@pytest.fixture(scope="module")
def nodes_world(module_world, django_db_blocker):
    from django.utils import timezone

    from federation import actions
    from federation.models import DistrictNode, NodeStatus

    with rolled_back_at_the_end(django_db_blocker):
        w = per_test(module_world)
        key = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABh"
        w.node = actions._record_node(w.steward, w.district, "pudong-node", key + "BBBB", "101")
        w.revoked = actions._record_node(w.steward, w.district, "old-node", key + "CCCC", "102")
        DistrictNode.objects.filter(pk=w.revoked.pk).update(status=NodeStatus.REVOKED, revoked_by=w.steward,
                                                            revoked_at=timezone.now())
        yield w


@pytest.mark.parametrize("name,role", CASES, ids=[f"{n}-{r}" for n, r in CASES])
def test_node_endpoint_answers_each_role(nodes_world, name, role):
    _, method, path, body, expected, done = next(t for t in TABLE if t[0] == name)
    w = per_test(nodes_world)
    assert_answers(w, role, method, path(w), body(w) if body else None, expected, done)
