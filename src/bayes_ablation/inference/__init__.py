"""Layer 5: sampling (nutpie with cached kernels, PyMC fallback; ``sampling``, ``kernels``), the
convergence gate (``convergence``), PSIS-LOO comparison of fits (``comparison``) and rank
uniformity tests of calibration studies (``uniformity``).
"""
