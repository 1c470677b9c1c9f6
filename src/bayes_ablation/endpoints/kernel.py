"""Types shared by the families' cached log-density kernels: the plan of one model structure
and the prior-family/transform codes the kernels understand."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOG_FAMILIES = ("halfnormal", "halfcauchy", "halfstudentt", "lognormal", "exponential",
                 "gamma", "lognormal_variance")


TRANSFORM_NAMES = {0: ("NoneType",), 1: ("LogTransform",), 2: ("Interval", "IntervalTransform")}


PARAM_ORDER = {"normal": ("mu", "sigma"), "studentt": ("nu", "mu", "sigma"),
                "halfnormal": ("sigma",), "halfcauchy": ("beta",),
                "halfstudentt": ("nu", "sigma"), "lognormal": ("mu", "sigma"),
                "exponential": ("lam",), "gamma": ("alpha", "beta"),
                "uniform": ("lower", "upper"), "lognormal_variance": ("mu", "sigma")}


class KernelUnavailable(Exception):
    """The model cannot use a cached kernel (the message says why)."""


@dataclass
class KernelPlan:
    """What the kernel needs to know about one model structure (data excluded)."""

    family: str
    blocks: np.ndarray          # (n_blocks, BLOCK_WIDTH)
    expand: np.ndarray          # (n_items, EXPAND_WIDTH)
    n_dim: int
    n_expanded: int
    names: list[str]            # trace variables: value vars, then the rest
    shapes: list[tuple[int, ...]]
    reparameterized: list[str]
    log_t_ref: float


def transform_code(family: str) -> int:
    return 2 if family == "uniform" else 1 if family in LOG_FAMILIES else 0
