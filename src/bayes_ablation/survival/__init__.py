"""Layer 2: endpoint-free survival mathematics on posterior draws (NumPy/xarray): S(t) from
log H(t) with site and covariate standardisation, RMST, median, contrasts (``estimands``),
Gauss–Hermite mixture kernels (``kernels``), piecewise-constant hazards (``piecewise``),
Kaplan–Meier and censoring draws (``predictive``), KM predictive checks (``ppc``), the
Turnbull NPMLE of interval-censored data (``turnbull``).
"""
