"""Messages and progress of library code: ``logging`` (the CLI configures the handler) and
tqdm progress bars, shown by default only in an interactive session."""

from __future__ import annotations

import logging
import sys

#: the package's logger; library modules log to children of it (``logging.getLogger(__name__)``)
logger = logging.getLogger("bayes_ablation")


def interactive() -> bool:
    """True in a notebook or IPython session, or when stderr is a terminal."""
    if "ipykernel" in sys.modules or "IPython" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
