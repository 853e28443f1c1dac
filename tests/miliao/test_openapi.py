"""The OpenAPI schema is valid and tells the truth, as outside tools read it: it is public (no
token), drf-spectacular generates it without a warning, openapi-spec-validator accepts it,
every operation has a summary, typed success bodies and its error answers in the one `Error`
schema, and an /api/ path that names nothing answers a JSON 404 in that schema.

(Whether the live API answers as the schema says is tests/miliao/test_api_fuzz.py's claim.)"""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.foundation, pytest.mark.django_db]

ERROR_REF = "#/components/schemas/Error"
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def generated():
    """The schema as an anonymous client fetches it, and the warnings its generation gave."""
    from django.test import Client
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    warnings = sorted(GENERATOR_STATS._warn_cache) + sorted(GENERATOR_STATS._error_cache)
    return response, warnings


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_the_schema_is_public_generates_without_warnings_and_validates(generated):
    from openapi_spec_validator import validate

    response, warnings = generated
    assert response.status_code == 200, response.content[:300]
    assert warnings == [], "drf-spectacular warned:\n" + "\n".join(warnings)
    schema = response.json()
    validate(schema)  # raises, naming the path in the schema, when it is not valid OpenAPI 3
    assert len(list(operations(schema))) >= 100


def test_every_operation_has_a_summary_typed_bodies_and_its_errors_in_one_schema(generated):
    schema = generated[0].json()
    error = schema["components"]["schemas"]["Error"]
    assert error["type"] == "object" and error["properties"]["detail"]["type"] == "string"
    problems = []
    for name, operation in operations(schema):
        if not operation.get("summary"):
            problems.append(f"{name}: no summary")
        responses = operation["responses"]
        authenticated = {} not in operation.get("security", [{}])
        for code in ["401", "403"] if authenticated else []:
            if code not in responses:
                problems.append(f"{name}: {code} undocumented")
        for code, answer in responses.items():
            if not answer.get("description"):
                problems.append(f"{name} {code}: empty description")
            for media_type, body in answer.get("content", {}).items():
                body_schema = body["schema"]
                if code.startswith("4"):
                    if body_schema != {"$ref": ERROR_REF}:
                        problems.append(f"{name} {code}: not the Error schema")
                elif body_schema.get("type") == "object" and "properties" not in body_schema:
                    problems.append(f"{name} {code} {media_type}: an untyped object")
    assert problems == []


def test_the_docs_are_public(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content


@pytest.mark.parametrize("method,path", [("get", "/api/no-such-thing/"), ("get", "/api/events/1.5/proof/"),
                                         ("post", "/api/jobs/1.5/release/")])
def test_an_api_path_that_names_nothing_answers_a_json_404(method, path):
    from django.test import Client

    response = getattr(Client(enforce_csrf_checks=True), method)(path)  # a POST meets no CSRF page first
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail"}
