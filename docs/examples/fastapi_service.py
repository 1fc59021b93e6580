"""A claims service over HTTP: FastAPI in front of one AsyncClaimService (an example, not a dependency).

Run it with `CLAIMS_DB=claims.db uvicorn fastapi_service:app --workers 2` (or a postgresql:// URL).
Who calls is taken from the `X-Actor` header ("buyer:alice") here; a real service takes it from its
authentication. Every claimstate error becomes an RFC 9457 problem with the status the error names.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse

from claimstate import AsyncClaimService, ClaimStateError

service = AsyncClaimService(os.environ.get("CLAIMS_DB", "claims.db"))


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    async with service:  # opens the database off the event loop; closes it (and its threads) at shutdown
        yield


app = FastAPI(lifespan=lifespan)


@app.exception_handler(ClaimStateError)
async def problem(request: Request, error: ClaimStateError) -> JSONResponse:
    body = {**error.to_problem(), "instance": str(request.url.path)}
    return JSONResponse(body, status_code=body["status"], media_type="application/problem+json")


@app.post("/claims", status_code=201)
async def file_claim(
    data: dict[str, Any], response: Response, idempotency_key: str | None = Header(None)
) -> dict[str, Any]:
    fired = await service.file_claim(data, idempotency_key=idempotency_key)
    response.status_code = 200 if fired.replayed else 201
    response.headers["Location"] = f"/claims/{fired.claim.id}"
    response.headers["ETag"] = f'"{fired.claim.version}"'
    return fired.claim.to_dict()


@app.post("/claims/{claim_id}/{trigger}")
async def fire(  # noqa: PLR0917  (FastAPI reads each parameter as a part of the request)
    claim_id: str,
    trigger: str,
    response: Response,
    data: dict[str, Any] | None = None,
    x_actor: str = Header(...),
    idempotency_key: str | None = Header(None),
    if_match: str | None = Header(None),
) -> dict[str, Any]:
    expected = None if if_match is None else int(if_match.strip('"'))
    fired = await service.fire(
        claim_id, trigger, x_actor, data, idempotency_key=idempotency_key, expected_version=expected
    )
    if fired.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["ETag"] = f'"{fired.claim.version}"'
    return fired.claim.to_dict()


@app.get("/claims/{claim_id}")
async def get_claim(claim_id: str, response: Response, x_actor: str | None = Header(None)) -> dict[str, Any]:
    view = await service.view(claim_id, x_actor)  # the claim, its history and what the caller may do: one read
    response.headers["ETag"] = f'"{view.claim.version}"'
    return view.to_dict()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}  # answers at once, however busy the database is: no call blocks the event loop
