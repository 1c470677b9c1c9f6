"""``constant_data`` / ``observed_data`` of a model: per-row labels kept, long ones unindexed."""

import numpy as np
import pymc as pm
import pytest

from bayes_ablation.inference import sampling


def _model(n: int) -> pm.Model:
    with pm.Model(coords={"patient": [f"P{i}" for i in range(n)], "site": ["a", "b"]}) as m:
        pm.Data("time_months", np.arange(1.0, n + 1.0), dims="patient")
        pm.Data("site_size", np.array([3.0, 4.0]), dims="site")
        mu = pm.Normal("mu")
        pm.Normal("y", mu, 1.0, observed=np.zeros(n), dims="patient")
    return m


@pytest.mark.parametrize("limit, indexed", [(10_000, True), (5, False)])
def test_long_coordinates_are_labels_without_an_index(monkeypatch, limit, indexed):
    monkeypatch.setattr(sampling, "INDEXED_COORD_MAX", limit)
    constant, observed = sampling.data_groups(_model(12))
    for ds in (constant, observed):
        assert list(ds["patient"].values) == [f"P{i}" for i in range(12)]
        assert ("patient" in ds.xindexes) is indexed
    assert "site" in constant.xindexes    # short coordinates keep their index
    assert list(constant["site"].values) == ["a", "b"]
    np.testing.assert_array_equal(constant["time_months"].values, np.arange(1.0, 13.0))
    np.testing.assert_array_equal(observed["y"].values, np.zeros(12))
