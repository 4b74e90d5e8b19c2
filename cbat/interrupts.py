"""SIGTERM (a batch scheduler's or ``kill``'s stop) as an exception, so ``finally`` blocks run.

By default SIGTERM ends a Python process on the spot: a sweep's workers are left to notice their parent is
gone, a notebook kernel is left running, and the command says nothing. Raised as ``Terminated`` instead, the
sweep stops its children, the report shuts its kernels down, and the CLI prints one line.
"""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Iterator, Optional, Sequence, Union

Child = Union[BaseProcess, subprocess.Popen]  # a sweep's workers, a report's notebook processes


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


def stop_children(children: Sequence[Child], timeout_s: float) -> None:
    """Interrupted: SIGTERM every child (so it can release its locks or shut its kernel down), then SIGKILL any
    still running ``timeout_s`` seconds later; no child outlives the command."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout_s
    for child in children:
        if not _exited(child, max(0.0, deadline - time.monotonic())):
            child.kill()
            _exited(child, None)


def _exited(child: Child, timeout_s: Optional[float]) -> bool:
    if isinstance(child, subprocess.Popen):
        try:
            child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    child.join(timeout_s)
    return not child.is_alive()
