# %% [markdown]
# # PFS of perioperative vs postoperative chemotherapy around ablation — from Python
#
# A notebook in the "percent" format (open it in Jupyter with jupytext, in VS Code or in
# Spyder, or run it as a script): the pre-specified analysis of the bundled example trial
# through the Python API, with ArviZ on the posterior. The test suite executes this file
# (with fewer draws) so the example cannot drift from the API.
#
#     .venv/bin/python examples/notebook_pfs.py [OUT_DIR]

# %%
from __future__ import annotations

import os
import sys
from pathlib import Path

import arviz as az
import pandas as pd

import bayes_ablation as ba

HERE = Path(__file__).resolve().parent
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "results/notebook_pfs")

# %% [markdown]
# The analysis plan fixes priors, estimands and decision thresholds before the data are seen;
# the result records the spec's SHA-256. (`BAYES_ABLATION_EXAMPLE_DRAWS` shortens the run.)

# %%
spec = ba.load_spec(HERE.parent / "models" / "pfs_weibull_site.toml")
draws = int(os.environ.get("BAYES_ABLATION_EXAMPLE_DRAWS", spec.sampler.draws))
spec = spec.with_sampler(draws=draws, tune=min(spec.sampler.tune, max(draws, 200)))
print(spec.name, spec.model, "reference arm:", spec.reference_arm)

# %% [markdown]
# Any pandas DataFrame (or a CSV / Parquet path) goes straight in: it is validated exactly like
# a file, and bad rows are reported by row and column.

# %%
trial = pd.read_csv(HERE / "pfs_trial.csv")
patients = ba.read_patients(trial, spec)
print(patients.summary())

# %%
result = ba.fit(spec, patients, seed=20261206)
print("convergence gate passed:", result.gate_passed)

# %% [markdown]
# `summary()` is a DataFrame of every estimand (like lifelines' `summary`); the posterior is a
# DataTree that ArviZ reads directly.

# %%
summary = result.summary()
print(summary.loc[["hr[perioperative]", "rmst_difference[perioperative, new site]"],
                  ["median", "q2.5", "q97.5"]])
print(result.probabilities)
print(az.summary(result.posterior, var_names=["log_hr", "weibull_shape", "sigma_site"]))

# %% [markdown]
# The posterior describes itself: spec hash and provenance travel in its attributes.

# %%
print(result.posterior.attrs["spec_sha256"][:16], result.provenance["seed"])

# %%
result.report(OUT / "report.html")          # the HTML report alone
bundle = result.save(OUT / "bundle", force=True)   # posterior.nc, tables, summary, report
print("wrote", bundle)
