"""Interim monitoring: fast posterior path, predictive probability of success, decisions,
ledger, operating characteristics; public functions in ``api``.
"""
