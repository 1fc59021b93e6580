"""The service: a facade (`ClaimService`) over one module per job, sharing one `Core`.

`service` files, fires, ticks and reads (`asynchronous` is its asyncio twin, running the same methods on
worker threads); `feed` delivers and acknowledges events; `verifying` runs verify;
`changes` refuses outdated opens and migrates; `definitions`, `idempotency`, `history`, `ids` and
`options` are what they say.
"""

from typing import TYPE_CHECKING

from claimstate._service.service import ClaimService
from claimstate._store.backups import Backup
from claimstate._verify import Difference, Mismatch

if TYPE_CHECKING:
    from claimstate._service.asynchronous import AsyncClaimService

__all__ = [
    "AsyncClaimService",
    "Backup",
    "ClaimService",
    "Difference",
    "Mismatch",
]  # verify's report and a backup's are part of the service's API


def __getattr__(name: str) -> object:
    """`AsyncClaimService`, imported on first use: it brings asyncio (~45 ms), which a process that never
    awaits (a command, a worker thread pool) need not pay."""
    if name == "AsyncClaimService":
        from claimstate._service.asynchronous import AsyncClaimService  # noqa: PLC0415

        return AsyncClaimService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The package's names, `AsyncClaimService` (made on first use) included."""
    return sorted({*globals(), *__all__})
