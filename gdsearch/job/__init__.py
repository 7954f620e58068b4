"""The job layer: job files read and checked, expanded into trials with stable ids and seeds.

It imports the maths layer's tables of names and ``TrainConfig``; never Ray, pyarrow or
matplotlib.
"""
