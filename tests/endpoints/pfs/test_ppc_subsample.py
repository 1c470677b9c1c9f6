"""The bounded stratified subsample the KM PPC runs on above its patient limit."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from bayes_ablation.survival.predictive import stratified_subsample


def test_all_rows_when_they_fit():
    assert stratified_subsample(np.array(["a", "b"] * 10), 20, seed=0) is None


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=12),
       max_size=st.integers(100, 5000), seed=st.integers(0, 2**31))
def test_subsample_is_bounded_proportional_and_keeps_every_stratum(sizes, max_size, seed):
    strata = np.repeat(np.arange(len(sizes)), sizes)
    np.random.default_rng(seed).shuffle(strata)
    keep = stratified_subsample(strata, max_size, seed)
    if strata.size <= max_size:
        assert keep is None
        return
    assert np.all(np.diff(keep) > 0) and keep[0] >= 0 and keep[-1] < strata.size
    taken = np.bincount(strata[keep], minlength=len(sizes))
    sizes = np.asarray(sizes)
    floor = np.minimum(sizes, 50)
    assert np.all(taken >= floor)                               # every stratum is checked
    assert np.all(taken <= sizes)
    share = np.round(max_size * sizes / sizes.sum())
    assert np.all(taken == np.minimum(sizes, np.maximum(share, floor)))
    assert keep.size <= max_size + 50 * len(sizes) + len(sizes)  # bounded
    again = stratified_subsample(strata, max_size, seed)
    assert np.array_equal(keep, again)                          # seeded


def test_strata_codes_equal_unique_of_the_strings_and_draw_the_same_rows():
    from bayes_ablation.endpoints.pfs.checks import site_arm_strata
    from bayes_ablation.survival.predictive import subsample_of_codes

    rng = np.random.default_rng(9)
    sites = rng.choice(["S10", "S2", "S01", "Z", "a b"], size=30_000)
    arms = rng.choice(["postoperative", "perioperative"], size=30_000)
    strings = np.char.add(np.char.add(sites.astype(str), " | "), arms.astype(str))
    levels, inverse = np.unique(strings, return_inverse=True)
    codes, names = site_arm_strata(sites, arms)
    assert names == list(levels)
    np.testing.assert_array_equal(codes, inverse)
    # as categoricals (the fit passes the model's codes), with an unused category
    as_categories = site_arm_strata(pd.Categorical(sites, categories=["Z", "S2", "x", "S01",
                                                                      "a b", "S10"]),
                                    pd.Categorical(arms))
    assert as_categories[1] == names
    np.testing.assert_array_equal(as_categories[0], codes)
    np.testing.assert_array_equal(subsample_of_codes(codes, len(names), 5000, seed=3),
                                  stratified_subsample(strings, 5000, seed=3))
