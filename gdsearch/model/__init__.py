"""The maths layer: the MLP, its training, data sets, convergence analysis and stability theory.

numpy only (pandas for the analysis tables): no Ray, pyarrow or matplotlib, so every number here
can be checked without starting anything. Its public face is :mod:`gdsearch.mlp`,
:mod:`gdsearch.model.datasets`, :mod:`gdsearch.analysis` and :mod:`gdsearch.stability`.
"""
