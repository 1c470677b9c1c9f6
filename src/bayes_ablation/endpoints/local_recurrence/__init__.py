"""Local recurrence per lesion: interval-censored LR with patient frailty and competing death
(see ``entry``).
"""
