"""The service: a facade (`ClaimService`) over one module per job, sharing one `Core`.

`service` files, fires, ticks and reads (`asynchronous` is its asyncio twin, running the same methods on
worker threads); `feed` delivers and acknowledges events; `verifying` runs verify;
`changes` refuses outdated opens and migrates; `definitions`, `idempotency`, `history`, `ids` and
`options` are what they say.
"""

from claimstate._service.asynchronous import AsyncClaimService
from claimstate._service.service import ClaimService
from claimstate._verify import Difference, Mismatch

__all__ = [
    "AsyncClaimService",
    "ClaimService",
    "Difference",
    "Mismatch",
]  # verify's report is part of the service's API
