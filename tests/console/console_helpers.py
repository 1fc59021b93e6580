"""What the console's tests share beside their fixtures: a real server on a thread, and screenshots kept to
be looked at."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

# Where the tests leave their screenshots to be looked at (a temporary folder unless set).
SCREENSHOTS = os.environ.get("CLAIMSTATE_SCREENSHOTS")


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Write the page's screenshot to $CLAIMSTATE_SCREENSHOTS (or the test's folder) to be looked at."""
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path


class Served:
    """A uvicorn server on a thread, on a port of its own, stopped on exit."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console's server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()
