"""The columns of the results tables (DESIGN.md): what workers produce and the store writes.

Parts written before a column was added load with that column null (``ResultsStore.read_table``
reads every part against these schemas).
"""

from __future__ import annotations

import pyarrow as pa

TRIALS_SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("lr", pa.float64()),
        ("init", pa.string()),
        ("init_scale", pa.float64()),
        ("hidden", pa.string()),
        ("activation", pa.string()),
        ("batch_size", pa.int32()),
        ("seed", pa.int64()),
        ("epochs", pa.int32()),
        ("status", pa.string()),
        ("final_sse", pa.float64()),
        ("min_sse", pa.float64()),
        ("diverged_epoch", pa.int32()),
        ("stopped_epoch", pa.int32()),
        ("node", pa.string()),
        ("wall_s", pa.float64()),
        ("error", pa.string()),  # why a failed trial failed; null otherwise
    ]
)
HISTORY_SCHEMA = pa.schema(
    [("trial_id", pa.string()), ("epoch", pa.int32()), ("sse", pa.float64())]
)
