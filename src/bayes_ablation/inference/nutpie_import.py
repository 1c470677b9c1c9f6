"""Import nutpie without paying for all of ArviZ (0.5–0.9 s in every process).

nutpie's Python package imports the ``arviz`` meta-package at module level. That package
imports ``arviz_base``, ``arviz_stats`` (→ ``scipy.stats``, ``xarray_einstats``) and
``arviz_plots`` (→ ``matplotlib.pyplot``), but nutpie uses only ``arviz.from_dict`` and
``arviz.dict_to_dataset`` — names ``arviz`` re-exports unchanged from ``arviz_base`` (a test
checks they are the same objects). :func:`nutpie_module` therefore imports nutpie with a
stand-in ``arviz`` module in :data:`sys.modules` (only when ArviZ is not imported yet) that

* answers those two names from ``arviz_base``, and the module metadata from the real
  package's import spec (``__file__``, ``__path__``, …: what ``inspect`` probes);
* imports the real ArviZ on the first use of any other name (``az.loo``, ``az.summary``,
  ``az.__version__``), replaces itself in :data:`sys.modules` and from then on hands every
  attribute to the real module.

So code that needs ArviZ gets exactly ArviZ, one attribute access later; a command that never
needs it (the PFS primary analysis: our own chain statistics, :mod:`bayes_ablation.inference.mcmc_stats`)
never imports it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

#: the names nutpie uses, which ``arviz`` re-exports from ``arviz_base``
FROM_ARVIZ_BASE = ("from_dict", "dict_to_dataset")

_LOCK = threading.RLock()


class DeferredArviz(types.ModuleType):
    """Stand-in for ``arviz`` until something needs more than :data:`FROM_ARVIZ_BASE`."""

    def __getattr__(self, name: str) -> Any:   # only for names not set on the module
        return getattr(real_arviz(), name)


def real_arviz() -> types.ModuleType:
    """The real ``arviz`` module (imported now if only the stand-in was)."""
    with _LOCK:
        module = sys.modules.get("arviz")
        if isinstance(module, DeferredArviz):
            del sys.modules["arviz"]
            try:
                return importlib.import_module("arviz")
            except BaseException:
                sys.modules.setdefault("arviz", module)
                raise
        return module if module is not None else importlib.import_module("arviz")


def defer_arviz() -> bool:
    """Put the stand-in into :data:`sys.modules` unless ``arviz`` is imported already (or not
    installed); True when the stand-in is in place."""
    with _LOCK:
        present = sys.modules.get("arviz")
        if present is not None:
            return isinstance(present, DeferredArviz)
        spec = importlib.util.find_spec("arviz")
        if spec is None:
            return False
        import arviz_base

        stand_in = DeferredArviz("arviz", "ArviZ, imported on first use (see "
                                          "bayes_ablation.inference.nutpie_import)")
        stand_in.__spec__ = spec
        stand_in.__loader__ = spec.loader
        stand_in.__file__ = spec.origin
        if spec.submodule_search_locations is not None:
            stand_in.__path__ = list(spec.submodule_search_locations)
        for name in FROM_ARVIZ_BASE:
            setattr(stand_in, name, getattr(arviz_base, name))
        sys.modules["arviz"] = stand_in
        return True


def nutpie_module() -> types.ModuleType:
    """``nutpie``, imported with ArviZ deferred (see module docstring)."""
    if "nutpie" not in sys.modules:
        defer_arviz()
    import nutpie

    return nutpie
