"""The results layer: the Parquet store, its manifest and lock, repair, and ``load_results``.

pyarrow and pandas; never Ray or matplotlib. The search layer writes here through one driver;
anyone reads with ``gdsearch.load_results`` or plain pandas.
"""
