"""Layer 6: the result contract (``contract.AnalysisResult``), report sections and their
registry (``sections``), and the bundle format (``bundle``). Knows no HTML and no matplotlib.
"""
