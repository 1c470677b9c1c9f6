"""Layer 8: what a user runs — ``fit`` (one generic pipeline over the endpoint entries),
``meta`` (evidence pooling), ``save`` (the only place joining report and bundle), ``compare``,
``monitoring`` (interim looks, operating characteristics) and ``validation`` (SBC, coverage),
each with its own report.
"""
