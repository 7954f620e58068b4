"""The columns of the results tables (docs/results.md): what workers make and the store writes.

Parts written before a column was added load with that column null (``ResultsStore.read_table``
reads every part against these schemas).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

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
        # The update rule (gdsearch.mlp.config.TrainConfig); null in parts written before.
        ("momentum", pa.float64()),
        ("nesterov", pa.bool_()),
        ("weight_decay", pa.float64()),
        ("lr_schedule", pa.string()),
        ("step_size", pa.int32()),  # null unless lr_schedule is "step"
        ("gamma", pa.float64()),  # null unless lr_schedule is "step"
        ("warmup_epochs", pa.int32()),
        # What computed the trial (gdsearch.mlp.numerics.label): "portable; version 1", or
        # the BLAS path and the machine's libraries and SIMD; null in parts written before.
        ("numerics", pa.string()),
        # What the trial's own history says of it (gdsearch.analysis.trajectory), computed by the
        # worker; null in parts written before, and where a trial has no history.
        ("final_epoch", pa.int32()),  # its last epoch
        ("min_epoch", pa.int32()),  # the first epoch of its lowest SSE
        ("contraction", pa.float64()),  # median SSE(t+1)/SSE(t) over the late phase
        ("rise_share", pa.float64()),  # share of late steps whose SSE rose
        ("late_gain", pa.float64()),  # relative fall of the SSE over the late phase
        # With held-out data (``[data] validation``, gdsearch.data.holdout): its SSE at the
        # last epoch, its lowest SSE and the first epoch of it, and for class targets the
        # accuracy at the last epoch and the highest; null without held-out data.
        ("final_val_sse", pa.float64()),
        ("min_val_sse", pa.float64()),
        ("min_val_epoch", pa.int32()),
        ("final_val_accuracy", pa.float64()),
        ("best_val_accuracy", pa.float64()),
        # With a sampler ([search] sampler, gdsearch.search.sampled): the round that proposed
        # the trial and its place in it; null otherwise.
        ("sampler_round", pa.int32()),
        ("sampler_index", pa.int32()),
    ]
)
PROPOSAL_COLUMNS = ("sampler_round", "sampler_index")
"""The trials table's record of which round of a sampler, and which place in it, proposed a
trial (null for trials no sampler proposed)."""
HELD_OUT_COLUMNS = (
    "final_val_sse",
    "min_val_sse",
    "min_val_epoch",
    "final_val_accuracy",
    "best_val_accuracy",
)
IMPLIED = {
    "momentum": 0.0,
    "nesterov": False,
    "weight_decay": 0.0,
    "lr_schedule": "constant",
    "warmup_epochs": 0,
}
"""What a trials part written before a column existed meant by it: its trials trained with
that setting off. ``load_results`` fills these in, so old and new trials of one result set
compare in one group."""


def fill_implied(trials: pa.Table) -> pa.Table:
    """The trials table with ``IMPLIED`` values in place of the nulls of older parts."""
    for name, value in IMPLIED.items():
        index = trials.schema.get_field_index(name)
        if index >= 0 and trials.column(index).null_count:
            column = pc.fill_null(
                trials.column(index), pa.scalar(value, trials.schema.field(index).type)
            )
            trials = trials.set_column(index, name, column)
    return trials


SHARPNESS_SCHEMA = pa.schema(
    [("trial_id", pa.string()), ("epoch", pa.int32()), ("sharpness", pa.float64())]
)
"""With ``sharpness_every`` = k: the top Hessian eigenvalue of the loss at epochs 0, k, 2k, …"""
HISTORY_SCHEMA = pa.schema(
    [("trial_id", pa.string()), ("epoch", pa.int32()), ("sse", pa.float64())]
)
"""Each trial's SSE on the data it trains on at epochs 0 … its last."""
HELD_OUT_HISTORY = HISTORY_SCHEMA.append(pa.field("val_sse", pa.float64()))
"""The history of a job that holds data out: also the held-out samples' SSE at each epoch's
weights. A result set's history parts are all of one of the two schemas."""


LANDSCAPE_SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("kind", pa.string()),  # gdsearch.mlp.landscape.Slice: line, random, plane, path, sharpest
        ("x", pa.float64()),  # α on the line, t along the sharpest direction
        ("y", pa.float64()),  # null on a 1-D slice
        ("epoch", pa.int32()),  # a path row's epoch; null elsewhere
        ("sse", pa.float64()),
    ]
)
"""``gdsearch landscape``: each chosen trial's SSE on slices through weight space around its
final weights (gdsearch.mlp.landscape), one row per point."""
LANDSCAPE_TRIALS_SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("lr", pa.float64()),
        ("final_epoch", pa.int32()),  # θ_T is the weights at this epoch (its history's last)
        ("path_epochs", pa.int32()),  # how many epochs the path keeps
        ("explained", pa.float64()),  # the share of the path's squared length in its plane
        ("sharpness", pa.float64()),  # λ at θ_T, the sharpest direction's curvature of the loss
        ("loss_scale", pa.float64()),  # s of the loss s·SSE (1/n for grad_scale "mean")
        ("resolution", pa.int32()),
        ("span", pa.float64()),
        ("line_from", pa.float64()),
        ("line_to", pa.float64()),
        ("biases", pa.bool_()),
        ("sharpest_span", pa.float64()),
        ("margin", pa.float64()),
        ("path_points", pa.int32()),
        ("node", pa.string()),
        ("wall_s", pa.float64()),
    ]
)
"""One row per trial whose landscape is stored, with the settings it was drawn with; its part
is written after the landscape part of the same name, so a trial's landscape counts as stored
exactly when its row here exists."""


LR_RANGE_SCHEMA = pa.schema(
    [
        *(TRIALS_SCHEMA.field(name) for name in (
            "init", "init_scale", "hidden", "activation", "batch_size", "seed", "momentum",
            "nesterov", "weight_decay", "lr_schedule", "step_size", "gamma", "warmup_epochs",
        )),
        ("step", pa.int32()),
        ("lr", pa.float64()),  # the rate of this step
        ("sse", pa.float64()),  # the SSE at the weights before it
        ("smoothed_sse", pa.float64()),  # its debiased moving average (fast.ai's smooth_loss)
        ("planned", pa.int32()),  # the sweep's steps, of which these are the ones taken
    ]
)  # fmt: skip
"""``[lr_range]``: the learning-rate range test of each comparison group and replicate seed
(gdsearch.mlp.range_test), one row per step taken."""
