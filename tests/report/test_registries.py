"""Every name a registry holds resolves: families, endpoints, report kinds and figure kinds."""

from __future__ import annotations

import inspect

import pytest

from bayes_ablation.endpoints.registry import ENDPOINTS, Endpoint, Family, endpoint, family
from bayes_ablation.report.plots import PLOTTERS, plotter
from bayes_ablation.results.sections import REPORTS, build_report
from bayes_ablation.spec.families import MODEL_REGISTRY


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_every_family_has_one_implementation_in_its_endpoint_folder(name):
    entry = MODEL_REGISTRY[name]
    fam = family(name)
    assert isinstance(fam, Family) and fam.name == name
    assert fam.endpoint in entry.endpoints
    assert entry.implementation.startswith(f"bayes_ablation.endpoints.{fam.endpoint}.")
    assert fam.sbc_adapter is not None, f"{name} has no SBC adapter"
    assert inspect.getmodule(fam.build).__name__.startswith(
        f"bayes_ablation.endpoints.{fam.endpoint}.")


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_every_endpoint_entry_resolves(name):
    ep = endpoint(name)
    assert isinstance(ep, Endpoint) and ep.name == name


@pytest.mark.parametrize("kind", sorted(PLOTTERS))
def test_every_figure_kind_has_a_plotter(kind):
    assert callable(plotter(kind))


def test_unknown_kinds_are_clear_errors():
    with pytest.raises(KeyError, match="no plotter"):
        plotter("nope")
    with pytest.raises(KeyError, match="no report builder"):
        build_report("nope", None)


def test_endpoint_and_workflow_reports_register():
    import bayes_ablation.workflows.monitoring.report
    import bayes_ablation.workflows.validation.report  # noqa: F401

    for kind in ("pfs", "local_recurrence", "meta"):
        with pytest.raises((AttributeError, TypeError, KeyError)):
            build_report(kind, None)       # the builder is found (and fails on None)
    assert {"monitor", "oc", "sbc", "coverage", "pfs", "local_recurrence", "meta"} <= set(REPORTS)
