"""Console helpers of the command line: timestamped messages on stderr and the usage error."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

from bayes_ablation.errors import BayesAblationError

_T0 = time.perf_counter()


class UsageError(BayesAblationError):
    """Arguments that do not fit the analysis (invalid input: exit code 2)."""

    exit_code = 2


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


class _ElapsedFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"[{time.perf_counter() - _T0:6.1f}s] {record.getMessage()}"


def configure_logging(quiet: bool = False) -> None:
    """Show the package's log messages (``logging.getLogger("bayes_ablation")``) on stderr,
    timestamped like :func:`say`; warnings only with ``quiet``. Library code never prints: the
    command line decides what reaches the console."""
    logger = logging.getLogger("bayes_ablation")
    for handler in list(logger.handlers):
        if getattr(handler, "_bayes_ablation_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ElapsedFormatter())
    handler._bayes_ablation_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    logger.disabled = False  # a library's logging.config.dictConfig may have disabled it
    warnings.showwarning = library_warning


def library_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: object = None, line: str | None = None) -> None:
    """A Python warning raised inside a library (NumPy, ArviZ, PyMC, …) and not handled by the
    package: said once, in the package's words, through its logger — never printed raw."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    logging.getLogger("bayes_ablation").warning(
        "note: a library warned %s: %s (at %s:%d; the command went on and its result is "
        "complete — if this recurs, please report it with the command you ran)",
        category.__name__, text, Path(filename).name, lineno)
