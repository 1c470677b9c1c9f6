"""Borrowing external or historical evidence into a trial's PFS analysis (``[borrowing]``).

``model``: the Weibull PH graph with an external-control likelihood term (full, power,
commensurate) or a MAP mixture prior; ``map_prior``: the meta-analytic-predictive prior;
``mixture``: normal mixtures (EM, robustification, ELIR effective sample size); ``summary``:
what was borrowed and whether prior and data conflict.
"""
