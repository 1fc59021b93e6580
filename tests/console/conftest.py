"""Fixtures of the console's tests: a database of known claims on each backend, served by a real server in
this process (uvicorn on a thread, the service's clock fixed at seeding.NOW), and a real browser.

The browser is Debian's Chromium driven by Playwright (its own download is never used: this machine has
no network for it); `.ci/run` installs Chromium, so there a missing one fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import Served
from seeding import NOW, seed

from claimstate import ClaimService
from claimstate.http import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
IN_CI = bool(os.environ.get("CI"))
WIDTH, HEIGHT = 1440, 900


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module's tests: Playwright's synchronous driver keeps an event loop running in this
    thread while it is open, which would stop other modules' tests on the same worker from running their
    own (asyncio.run), so it is closed as soon as the module's tests are done."""
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail("headless Chromium is missing, and .ci/run installs it")
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page at 1440x900 that fails the test on any script error, and fetches nothing from the network
    (every request but to 127.0.0.1 or a file is aborted and recorded in `page.outside`)."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    opened = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))

    def route(found: Any) -> None:
        url = found.request.url
        if url.startswith(("http://127.0.0.1", "file://", "data:", "about:")):
            found.continue_()
        else:
            outside.append(url)
            found.abort()

    opened.route("**/*", route)
    opened.outside = outside
    yield opened
    context.close()
    assert not errors, f"the page's script failed: {errors}"


@pytest.fixture(scope="module")
def seeded(shared_store_target: str) -> Iterator[ClaimService]:
    """The known claims (seeding.PLAN) on each backend, in a service whose clock says seeding.NOW."""
    with ClaimService(shared_store_target, clock=lambda: NOW) as service:
        seed(service)
        yield service


@pytest.fixture(scope="module")
def console(seeded: ClaimService) -> Iterator[str]:
    """The base URL of a real server of the console (and nothing else) over the seeded claims."""
    with Served(create_app(seeded, actor_from=None)) as served:
        yield served.url
