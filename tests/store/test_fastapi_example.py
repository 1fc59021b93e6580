"""The docs' FastAPI example (docs/examples/fastapi_service.py) runs: filing, firing with an idempotency key
and If-Match, one-snapshot reads, problem+json errors, on both stores."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient
from helpers import EVIDENCE, filing

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "fastapi_service.py"


@pytest.fixture
def example(store_target: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("CLAIMS_DB", store_target)
    spec = importlib.util.spec_from_file_location("fastapi_service", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fastapi_service"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("fastapi_service", None)


def test_the_fastapi_example_files_fires_and_answers_problems(example: ModuleType) -> None:
    with TestClient(example.app) as client:
        filed = client.post("/claims", json=filing(), headers={"Idempotency-Key": "f-1"})
        assert filed.status_code == 201, filed.text
        claim_id = filed.json()["id"]
        assert filed.headers["Location"] == f"/claims/{claim_id}" and filed.headers["ETag"] == '"1"'
        again = client.post("/claims", json=filing(), headers={"Idempotency-Key": "f-1"})
        assert again.status_code == 200 and again.json()["id"] == claim_id  # a replay, not a second claim

        evidence = {"evidence": EVIDENCE}
        fired = client.post(
            f"/claims/{claim_id}/submit_evidence",
            json=evidence,
            headers={"X-Actor": "buyer:alice", "Idempotency-Key": "e-1", "If-Match": '"1"'},
        )
        assert fired.status_code == 200 and fired.json()["version"] == 2 and "Idempotent-Replayed" not in fired.headers
        replayed = client.post(
            f"/claims/{claim_id}/submit_evidence",
            json=evidence,
            headers={"X-Actor": "buyer:alice", "Idempotency-Key": "e-1"},
        )
        assert replayed.headers["Idempotent-Replayed"] == "true"

        stale = client.post(f"/claims/{claim_id}/escalate", headers={"X-Actor": "buyer:alice", "If-Match": '"1"'})
        assert stale.status_code == 412 and stale.headers["content-type"] == "application/problem+json"
        assert stale.json()["instance"] == f"/claims/{claim_id}/escalate"

        refused = client.post(f"/claims/{claim_id}/decide_full_refund", json={"rationale": "x"},
                              headers={"X-Actor": "buyer:alice"})  # fmt: skip
        assert refused.status_code == 403 and refused.json()["type"].startswith("urn:claimstate:problem:")

        view = client.get(f"/claims/{claim_id}", headers={"X-Actor": "agent:kim"}).json()
        assert view["claim"]["version"] == 2 and len(view["history"]) == 2
        assert any(a["allowed"] for a in view["available"])
        assert client.get("/claims/nope").status_code == 404
        assert client.get("/healthz").json() == {"status": "ok"}
