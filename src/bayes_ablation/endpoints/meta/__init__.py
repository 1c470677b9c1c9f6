"""Evidence pooling: random-effects meta-analysis of hazard ratios (exact quadrature, MCMC,
aggregate data joint with individual patient data; see ``entry``).
"""
