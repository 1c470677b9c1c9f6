"""Layer 1: analysis plans as data. ``plan`` (analysis spec TOML → typed, hashed spec),
``design`` (interim-monitoring design), ``families`` (the one family table: priors, options,
checks and the dotted path of each family's implementation). PyMC-free.
"""
