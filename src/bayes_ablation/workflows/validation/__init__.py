"""Self-validation of the package's models: simulation-based calibration (``sbc``) and
fixed-truth coverage (``coverage``), run by ``runner`` (parallel, resumable), reported by
``report``. The per-family adapters live with their endpoints (``endpoints/*/sbc*.py``).
"""
