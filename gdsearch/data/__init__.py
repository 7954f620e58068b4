"""Data sets: built-in generators and files, as X (n, d) and Y (n, k) float64.

- :mod:`~gdsearch.data.generators`: the seed notebook's sine points and seeded toy problems
  (wave, xor, moons, circles, spirals);
- :mod:`~gdsearch.data.files`: CSV and Parquet files, checked before they are read;
- :mod:`~gdsearch.data.catalog`: data sets by name (:data:`DATASETS`), their options checked,
  :func:`load_dataset`;
- :mod:`~gdsearch.data.holdout`: the held-out split a job asks for.
"""

from __future__ import annotations

from gdsearch.data.catalog import (
    DATASETS,
    check_options,
    data_digest,
    dataset_options,
    load_dataset,
)
from gdsearch.data.files import (
    MAX_DATA_VALUES,
    MAX_FILE_BYTES,
    MAX_FILE_COLUMNS,
    MAX_FOOTER_BYTES,
    MAX_HEADER_BYTES,
    MAX_SAMPLES,
    file,
)
from gdsearch.data.generators import Dataset, circles, moons, sine, spirals, wave, xor

__all__ = [
    "DATASETS",
    "MAX_DATA_VALUES",
    "MAX_FILE_BYTES",
    "MAX_FILE_COLUMNS",
    "MAX_FOOTER_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_SAMPLES",
    "Dataset",
    "check_options",
    "circles",
    "data_digest",
    "dataset_options",
    "file",
    "load_dataset",
    "moons",
    "sine",
    "spirals",
    "wave",
    "xor",
]
