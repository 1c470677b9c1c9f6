"""Layer 4: one folder per endpoint (``pfs``, ``local_recurrence``, ``meta``), each with its
model graphs, estimands, predictive simulator, pointwise log-likelihood, checks, SBC adapters and
one ``entry`` module holding its :class:`~bayes_ablation.endpoints.registry.Endpoint` and
:class:`~bayes_ablation.endpoints.registry.Family` objects. Shared here: priors and site
hierarchy builders, the SBC adapter base, the kernel plan type, the registry.
"""
