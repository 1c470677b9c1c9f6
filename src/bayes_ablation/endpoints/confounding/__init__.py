"""Design diagnostics and sensitivity analyses of non-randomised (cohort) comparisons.

Functions of the validated patient table (arm, site, covariates) and of posterior draws; no
model graphs. ``propensity``: the propensity model (penalised ML logistic regression with site
intercepts), overlap, covariate balance and positivity warnings. ``weighting``: weighted
Kaplan–Meier companion estimates (IPW for ATE/ATT, overlap weights) with a Bayesian-bootstrap
interval. ``sensitivity``: bias-parameter analysis of an unmeasured binary confounder and the
E-value. ``analysis``: all of it for one result, as ``summary.json`` entries and tables.
"""
