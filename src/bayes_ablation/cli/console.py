"""Console helpers of the command line: timestamped messages on stderr and the usage error."""

from __future__ import annotations

import sys
import time

from bayes_ablation.errors import BayesAblationError

_T0 = time.perf_counter()


class UsageError(BayesAblationError):
    """Arguments that do not fit the analysis (invalid input: exit code 2)."""

    exit_code = 2


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)
