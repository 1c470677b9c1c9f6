"""Layer 0, imports nothing of the package: errors' friends — atomic file writes and
manifests (``files``), provenance and timings (``provenance``), logging and interactivity
(``console``), seeded parallel runs with checkpoints (``parallel``).
"""
