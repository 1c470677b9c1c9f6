"""Layer 9: argument parsing and sub-commands only (``main``; ``meta``, ``monitoring``,
``validation`` register theirs); shared console helpers in ``console``.
"""
