"""Write files in a forked child process while this process does other work.

``start(write)`` forks a child that runs ``write()`` and ends with exit code 0 (or 1 if it
raised) without running any exit handler; ``Forked.wait()`` says whether it succeeded. The
caller checks what the child delivered and does the work itself when it did not (the child
failed, or forking is unavailable: ``start`` then returns ``None``), so results never depend
on the child. A child never publishes anything: it writes into the caller's temporary folder,
which the caller publishes (or removes) after ``wait``.

Forking is used only on Linux with more than one core, when this process runs no other
Python thread (a thread holding a lock at the fork, e.g. h5py's, would leave the child
waiting for it forever; threads of compiled libraries, e.g. nutpie's, take no Python lock),
and not with ``BAYES_ABLATION_SERIAL_WRITES=1``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass


def can_fork() -> bool:
    """Linux (fork is unsafe on macOS), more than one core, no other Python thread, not
    switched off."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and (os.cpu_count() or 1) > 1 and threading.active_count() == 1
            and not os.environ.get("BAYES_ABLATION_SERIAL_WRITES"))


@dataclass
class Forked:
    """A running child (see :func:`start`)."""

    pid: int
    _status: int | None = None

    def wait(self) -> bool:
        """Wait for the child; True when it finished ``write`` without an error."""
        if self._status is None:
            _, status = os.waitpid(self.pid, 0)
            self._status = os.waitstatus_to_exitcode(status)
        return self._status == 0

    def stop(self) -> None:
        """End the child now (its output is not wanted) and reap it."""
        if self._status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()


def start(write: Callable[[], None]) -> Forked | None:
    """Run ``write()`` in a forked child; ``None`` when forking is unavailable."""
    if not can_fork():
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork"
        pid = os.fork()
    if pid == 0:  # child: write, and leave without running any exit handler
        code = 1
        try:
            write()
            code = 0
        finally:
            os._exit(code)
    return Forked(pid)
