"""The HTTP API against its own OpenAPI document, by property (Schemathesis): a real `claimstate serve` on each
backend, every operation driven from the document, as the agent and as a buyer by turns.

Per operation, Schemathesis's coverage cases (each constraint of the document at its boundaries, kept and
broken), then fuzzed valid cases. Every answer must be no 5xx; a status, content type, headers and body the
document gives for the operation; an error as an RFC 9457 problem; a refusal of what breaks the document, and
for what keeps it an acceptance or a refusal by the lifecycle's rules. The same cases each run (derandomized).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from claimstate import CLAIM_LIFECYCLE
from claimstate.http import openapi
from claimstate.http._openapi import MAX_WAIT

TOKENS = {
    "alice-token-0123456789": "buyer:alice",
    "bob-token-01234567890x": "buyer:bob",
    "acme-token-0123456789x": "supplier:acme",
    "kim-token-0123456789xx": "agent:kim",
    "system-token-012345678": "system",
}
ALICE, BOB, ACME, KIM, SYSTEM = TOKENS
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
# Fuzzed cases per operation, after its coverage cases: valid ones, as the coverage cases already break each
# constraint of the document one by one (and an invalid case costs Schemathesis ~40 ms to draw).
FUZZED = 4
DOCUMENT = openapi(CLAIM_LIFECYCLE)


def problem_json(_ctx: Any, response: schemathesis.Response, _case: Case) -> None:
    """Every error is an RFC 9457 problem."""
    if response.status_code >= 400:
        media = response.headers.get("content-type", [""])[0].partition(";")[0].strip()
        assert media == "application/problem+json", f"a {response.status_code} answered {media or 'no body type'}"


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    problem_json,
]

# The document's `printable` format: every character printable by Python's str.isprintable (none of Unicode's
# other or separator categories but the space), as the service reads ids and keys.
schemathesis.openapi.format("printable", st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"]) | st.just(" "),
    min_size=1))  # fmt: skip
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(modes=MODES, with_security_parameters=False)  # the callers' tokens, not drawn ones
schema.config.phases.coverage.unexpected_methods = {"put", "delete"}  # one 405 handler answers every method
# Data that keeps to the document may still be refused by the lifecycle's rules (422: a guard, or an idempotency
# key used for another request) or by a precondition (412: If-Match names another version); RFC 9110 judges
# If-Match before the request's content, so a stale one answers 412 to data that breaks the document too.
judged = schema.config.checks
judged.positive_data_acceptance.expected_statuses = [*judged.positive_data_acceptance.expected_statuses, "412", "422"]
judged.negative_data_rejection.expected_statuses = [*judged.negative_data_rejection.expected_statuses, "412"]


@dataclass
class Server:
    """A running server, and what the cases sent to it take by turns: the caller (the agent, a buyer), and the
    claim a case on a claim's route goes to (each seeded claim, then the id the case drew)."""

    url: str
    session: requests.Session
    claims: Iterator[str | None]
    callers: Iterator[str] = field(default_factory=lambda: itertools.cycle((KIM, ALICE)))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _started(target: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`claimstate serve` on `target` and a free port (uvicorn's, told 0), and its URL once it listens."""
    tokens = folder / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    log = folder / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "CLAIMSTATE_DB"}
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claimstate", "serve", "--db", target, "--tokens", str(tokens), "--port", "0"],
            stdout=subprocess.DEVNULL, stderr=err, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        listening = re.search(r"Uvicorn running on (http://\S+)", log.read_text())
        if listening:
            return proc, listening[1]
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    pytest.fail(f"claimstate serve did not start: {log.read_text()[-2000:]}")


def _seeded(url: str, session: requests.Session) -> list[str]:
    """Six claims for the cases to find: alice's in five states, and bob's (not hers). Six and the drawn id
    take turns with two callers, so each claim meets both. Their currency has the most decimals any has: a
    static document cannot know a claim's currency, so its amounts take as many (as the HTTP guide says),
    which on these claims is exact."""
    orders: list[str] = []

    def post(path: str, token: str, data: dict[str, Any]) -> str:
        answer = session.post(url + path, json=data, headers=_auth(token), timeout=10)
        assert answer.status_code in (200, 201), answer.text
        return str(answer.json()["id"])

    def filed(buyer: str, token: str) -> str:
        orders.append(f"o-{len(orders) + 1}")
        return post("/claims", token, {"order_id": orders[-1], "buyer_id": buyer, "supplier_id": "acme",
                                       "currency": "CLF", "amount": "25.00", "reason": "arrived broken",
                                       "resolution": "full_refund"})  # fmt: skip

    evidence = {"evidence": [{"kind": "photo", "description": "the lid arrived cracked"}]}
    fresh, mediated, offered, reviewed, withdrawn = (filed("alice", ALICE) for _ in range(5))
    for claim in (mediated, offered, reviewed):
        post(f"/claims/{claim}/submit_evidence", ALICE, evidence)
    post(f"/claims/{offered}/make_offer", ACME, {"kind": "partial_refund", "amount": "10.00"})
    post(f"/claims/{reviewed}/escalate", ALICE, {})
    post(f"/claims/{withdrawn}/withdraw", ALICE, {"reason": "sorted it out"})
    return [fresh, mediated, offered, reviewed, withdrawn, filed("bob", BOB)]


@pytest.fixture
def server(store_target: str, tmp_path: Path) -> Iterator[Server]:
    """A `claimstate serve` on the test's backend, holding the seeded claims; the document it serves is the
    one the cases are drawn from."""
    proc, url = _started(store_target, tmp_path)
    try:
        with requests.Session() as session:
            assert session.get(f"{url}/openapi.json", timeout=10).json() == json.loads(json.dumps(DOCUMENT))
            yield Server(url, session, itertools.cycle([*_seeded(url, session), None]))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _sent(case: Case, server: Server) -> None:
    """`case` sent as the next caller, its answer checked."""
    caller = next(server.callers)
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    claim = case.path_parameters.get("claim_id") if case.path_parameters else None
    if claim is not None and not (case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH)):
        case.path_parameters = {**case.path_parameters, "claim_id": next(server.claims) or claim}
    if case.operation.label == "POST /claims" and positive and caller == ALICE and isinstance(case.body, dict):
        case.body = {**case.body, "buyer_id": "alice"}  # a buyer files in her own name: a guard's rule
    wait = case.query.get("wait") if case.query else None
    if isinstance(wait, int | float) and not isinstance(wait, bool) and 0 <= wait <= MAX_WAIT:
        # A poll of /events waits up to `wait` seconds when no event is there to take: cut short, still valid.
        case.query = {**case.query, "wait": min(wait, 0.1)}
    for header in case.operation.headers if positive and case.headers else ():
        # Schemathesis 4.32's coverage phase draws header values of letters and digits alone; where a header's
        # pattern needs others (If-Match: `*` or a quoted version) it sends `0` and calls the case valid. Such a
        # header, which the document itself refuses, is left out (each header here is optional).
        if header.name in case.headers and not header.is_valid(case.headers[header.name]):
            assert not header.is_required
            del case.headers[header.name]
    # An `ack` is valid only if it names an event delivered to the caller, which no schema can know: the feed
    # refuses the rest as invalid input (400).
    unjudged = [positive_data_acceptance] if case.query and "ack" in case.query else []
    case.call_and_validate(base_url=server.url, session=server.session, headers=_auth(caller),
                           checks=CHECKS, excluded_checks=unjudged, timeout=10)  # fmt: skip


def _fuzzed(operation: schemathesis.APIOperation, server: Server) -> None:
    @hypothesis.settings(max_examples=FUZZED, derandomize=True, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck), report_multiple_bugs=False)  # fmt: skip
    @hypothesis.given(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def fuzz(case: Case) -> None:
        _sent(case, server)

    fuzz()


@pytest.mark.slow
def test_every_operation_answers_as_its_document_says(server: Server, backend: str) -> None:
    """Every failure is reported, the first of each kind per operation, once all operations have run."""
    failures: dict[tuple[str, ...], str] = {}

    def reported(operation: schemathesis.APIOperation, send: Callable[..., None], *args: Any) -> None:
        try:
            send(*args)
        except FailureGroup as group:
            kinds = tuple(sorted(f"{failure.code} {failure.title}" for failure in group.exceptions))
            failures.setdefault((operation.label, *kinds), str(group))

    # The coverage cases (each constraint of the document kept and broken in turn) try the HTTP layer, the same
    # over either store: one backend runs them; both run the fuzzed valid cases, which reach the store.
    for operation in (result.ok() for result in schema.get_all_operations()):
        if backend == "sqlite":
            for case in schema.iter_coverage_cases(operation, generation_modes=MODES,
                                                   generation_config=schema.config.generation):  # fmt: skip
                reported(operation, _sent, case, server)
        reported(operation, _fuzzed, operation, server)
    assert not failures, "\n\n".join(failures.values())
