"""Progression-free survival per patient: Weibull and piecewise-exponential proportional
hazards with site effects (see ``entry``).
"""
