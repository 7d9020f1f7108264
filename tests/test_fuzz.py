"""A schema-driven fuzz of every operation the API publishes (GET /api/v1/openapi.json),
over real HTTP against `chalice local` on the real local services.

schemathesis generates valid and invalid requests (paths, query strings, bodies, content
types) from the document. Anonymous and reader callers must write nothing (row counts of
every table and the queue, before and after); nobody, the operator included, may get a 5xx.
The suite's closing lines include `fuzz: N requests, 0 5xx, 0 writes`.
"""
from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.conftest import READER_TOKEN, snapshot

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (make venv)")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402  (after the skip)
from schemathesis.generation import GenerationMode  # noqa: E402

# Examples per operation, per generation mode, per caller: ~20 operations x 2 x 3.
EXAMPLES = 25


def fuzz_operations(schema: Any, base_url: str, token: str | None, examples: int,
                    ledger: Any) -> list[str]:
    """Drive every operation; returns what answered 5xx (empty is the goal)."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                strategy = operation.as_strategy(generation_mode=mode)
            except Exception:  # noqa: BLE001 - nothing negative to make of a bare GET
                continue

            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def run(case: Any) -> None:
                headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
                case.headers = headers
                if token:
                    headers = {**headers, "Authorization": f"Bearer {token}"}
                try:
                    # A connection per request: on a kept-alive one `chalice local` answers
                    # ~40 ms late (its header and body writes meet Nagle and delayed ACKs).
                    response = case.call(base_url=base_url, headers=headers, timeout=30)
                except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL,
                        UnicodeEncodeError, ValueError):
                    return  # the client would not send it: nothing reached the API
                ledger.requests += 1
                if response.status_code >= 500:
                    ledger.server_errors += 1
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                    f"{response.text[:200]}")
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - hypothesis could not generate: not a 5xx
                if "Unsatisfiable" not in type(exc).__name__ and "Unsatisfied" not in str(exc):
                    raise
    return failures


@pytest.fixture(scope="module")
def published(stack: Any) -> Any:
    document = requests.get(stack.api_url + "/api/v1/openapi.json", timeout=30,
                            headers={"Authorization": f"Bearer {READER_TOKEN}"}).json()["data"]
    return schemathesis.openapi.from_dict(document)


def test_the_document_describes_every_route_and_its_security(stack, app_module, db):
    document = requests.get(stack.api_url + "/api/v1/openapi.json", timeout=30,
                            headers={"Authorization": f"Bearer {READER_TOKEN}"}).json()["data"]
    described = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    routes = {(path, method) for path, methods in app_module.app.routes.items() for method in methods}
    assert described == routes
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op["summary"] != "undocumented", (method, path)
            assert op["x-stocksync-access"] != "undeclared", (method, path)
            protected = op["x-stocksync-access"] in ("operator", "reader")
            assert (op["security"] == [{"bearer": []}]) == protected, (method, path)
    assert document["paths"]["/api/v1/sync-status/sync/batch"]["post"]["x-stocksync-access"] == "operator"
    assert requests.get(stack.api_url + "/api/v1/openapi.json", timeout=30).status_code == 401


@pytest.mark.parametrize("caller", ["anonymous", "reader"])
def test_fuzz_as_a_caller_who_may_not_write(stack, db, published, fuzz_ledger, caller):
    token = READER_TOKEN if caller == "reader" else None
    before = snapshot(db, stack)
    failures = fuzz_operations(published, stack.api_url, token, EXAMPLES, fuzz_ledger)
    writes = sum(abs(after - before[name]) for name, after in snapshot(db, stack).items())
    fuzz_ledger.writes += writes
    assert failures == []
    assert writes == 0, snapshot(db, stack)


def test_fuzz_as_the_operator_never_gets_a_5xx(stack, db, published, fuzz_ledger):
    assert fuzz_operations(published, stack.api_url, stack.api_token, EXAMPLES, fuzz_ledger) == []
