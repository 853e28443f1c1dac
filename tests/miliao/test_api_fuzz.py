"""The API never answers 5xx, and answers as its schema says: Schemathesis generates requests
from the OpenAPI schema at /api/schema/ (data that fits it, and for operations with a body or
a numeric id, data that does not) and sends each to a live server on the test database as
every role (applicant, data holder, auditor, steward, admin); every answer is below 500, with
a status code, content type and body that the schema documents for the operation.

Deterministic for CI: Hypothesis derandomized (its seed fixed by the test), a bounded
number of examples per operation, no example database, no shrinking. Destructive requests
only touch this test's own committed world, which the flush after the test removes."""
from __future__ import annotations

import hypothesis
import hypothesis.errors
import pytest
import requests
from hypothesis import HealthCheck, Phase

from conftest import add_release, api_client

pytestmark = [pytest.mark.foundation, pytest.mark.django_db(transaction=True)]

# Examples per operation: ones that fit the schema, and ones that do not. Each is sent as
# every role. Negative data is generated only where it says something (a body, a numeric
# id): for an operation without either Hypothesis searches long for data that breaks nothing.
POSITIVE, NEGATIVE = 1, 2
# Admin last: what an admin creates or changes should not decide what the others meet.
# (Anonymous callers get 401 before any parsing; tests/accounts/test_permissions.py checks that.)
ROLES = ["applicant", "data_holder", "auditor", "steward", "admin"]


@pytest.fixture
def fuzz_world(live_world):
    """The committed world, with objects behind the ids the fuzzer tries (small ints): a
    release, a scenario and a challenge, a team and an invitation."""
    from innovation_support import open_challenge, register

    w = add_release(live_world, rooms=300)
    open_challenge(w, rooms=600)
    team = register(w.researcher, "room-use-2026", "同济")
    invited = api_client(w.researcher).post(f"/api/teams/{team['id']}/invite/", {"username": "applicant"},
                                            format="json")
    assert invited.status_code == 201, invited.content
    return w


def _negative_makes_sense(raw: dict, path: str, method: str) -> bool:
    operation = raw["paths"][path][method]
    parameters = raw["paths"][path].get("parameters", []) + operation.get("parameters", [])
    return "requestBody" in operation or any(
        p["in"] == "path" and p.get("schema", {}).get("type") == "integer" for p in parameters)


def generated_cases(raw: dict) -> list:
    """The requests to send, generated once from the schema."""
    import schemathesis
    from schemathesis import GenerationMode

    cases = []
    for result in schemathesis.openapi.from_dict(raw).get_all_operations():
        operation = result.ok()
        modes = [(GenerationMode.POSITIVE, POSITIVE)]
        if _negative_makes_sense(raw, operation.path, operation.method.lower()):
            modes.append((GenerationMode.NEGATIVE, NEGATIVE))
        for mode, examples in modes:

            @hypothesis.settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                                 phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=operation.as_strategy(mode))
            def collect(case):
                cases.append(case)

            try:
                collect()
            except hypothesis.errors.Unsatisfiable:  # nothing fits, or fails to fit, the schema
                continue
    return cases


def test_no_request_of_any_role_gets_a_5xx_or_an_answer_off_its_schema(fuzz_world, live_server):
    from rest_framework.authtoken.models import Token
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    w = fuzz_world
    raw = api_client(w.auditor).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    cases = generated_cases(raw)
    sent, errors = 0, []
    for role in ROLES:
        with requests.Session() as session:  # closed after each role, and the server's thread with it
            session.headers["Authorization"] = f"Token {Token.objects.get_or_create(user=w.by_role[role])[0].key}"
            for case in cases:
                response = case.call(base_url=live_server.url, session=session, timeout=60)
                sent += 1
                try:
                    case.validate_response(response, checks=checks)
                except (AssertionError, BaseExceptionGroup) as failure:  # every check that failed
                    errors.append(f"{role} {response.status_code} {case.method} {case.path}: "
                                  f"{str(failure)[:900]}\n  {case.as_curl_command()}")
    assert sent >= 1000, sent
    assert errors == [], f"{len(errors)} answers off the schema:\n" + "\n".join(errors[:20])
