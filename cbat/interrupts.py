"""SIGTERM (a batch scheduler's or ``kill``'s stop) as an exception, so ``finally`` blocks run.

By default SIGTERM ends a Python process on the spot: a sweep's workers are left to notice their parent is
gone, a notebook kernel is left running, and the command says nothing. Raised as ``Terminated`` instead, the
sweep stops its children, the report shuts its kernels down, and the CLI prints one line.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Terminated(SystemExit):
    """SIGTERM arrived; exits with 143 (128 + SIGTERM), the code of a process the signal ended."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` in the main thread (elsewhere signals cannot be
    handled, so the block changes nothing there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
