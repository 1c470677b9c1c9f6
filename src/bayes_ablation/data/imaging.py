"""The trial's imaging protocol: nominal scan times after the ablation (time 0), in months.

Local recurrence is only seen at scans, so the protocol shapes every interval-censored LR
observation. The default is the CRLM ablation follow-up standard: every 3 months for the first
two years, then every 6 months. A spec may give its own list (``scan_protocol_months``); beyond
its last visit the protocol continues at its last spacing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayes_ablation.spec.families import DEFAULT_SCAN_PROTOCOL_MONTHS


def imaging_schedule(horizon_months: float,
                     protocol_months: Sequence[float] = DEFAULT_SCAN_PROTOCOL_MONTHS
                     ) -> np.ndarray:
    """Nominal scan times up to ``horizon_months`` (default: 3, 6, …, 24, 30, 36, …)."""
    listed = np.asarray(protocol_months, float)
    if listed.size == 0 or np.any(listed <= 0) or np.any(np.diff(listed) <= 0):
        raise ValueError(f"scan protocol must be increasing times > 0, got {list(listed)}")
    step = float(listed[-1] - listed[-2]) if listed.size > 1 else float(listed[0])
    n_more = max(0, int(np.ceil((horizon_months - listed[-1]) / step)) + 1)
    visits = np.concatenate([listed, listed[-1] + step * np.arange(1, n_more + 1)])
    return visits[visits <= horizon_months + 1e-9]


def protocol_spacing(visits: np.ndarray) -> np.ndarray:
    """Gap before each nominal visit (the first visit's gap is its time)."""
    visits = np.asarray(visits, float)
    return np.diff(np.concatenate([[0.0], visits]))
