"""Interim monitoring: designs, fast posterior path, predictive probability of success,
decisions, ledger, operating characteristics."""
