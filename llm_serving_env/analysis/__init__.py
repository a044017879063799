"""Experiments on the engine: statistics (warm-up, confidence intervals, common random numbers),
queueing closed forms, capacity search, stability, comparisons and sweeps.
"""
