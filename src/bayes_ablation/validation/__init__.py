"""Self-validation of the package's models: simulation-based calibration and coverage.

* :mod:`~bayes_ablation.validation.sbc` — SBC (Talts et al. 2018): prior draws → simulated
  trials → fits → uniformity of the ranks of the true parameters.
* :mod:`~bayes_ablation.validation.coverage` — fixed-truth coverage, bias and RMSE.
* :mod:`~bayes_ablation.validation.runner` — one simulation, and many in parallel (resumable).
* :mod:`~bayes_ablation.validation.adapters` — per model family: priors → simulator → posterior.
* :mod:`~bayes_ablation.validation.uniformity` — ranks and uniformity tests (pure NumPy/SciPy).

Command line: ``bayes-ablation validate sbc|coverage`` (:mod:`~bayes_ablation.validation.cli`).
"""
