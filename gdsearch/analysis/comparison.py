"""The comparison group: the trials a learning-rate study sets side by side.

A group is every trial that shares these columns of the trials table, so that its trials differ
only in learning rate and replicate seed. Analysis summarises per group and lr, a report draws
one panel per group, bracket mode narrows one critical learning rate per group, and halving
ranks the trials of one group against each other. This is the one place that says what a group
is; a new setting that changes how a trial trains is added here as a column.
"""

from __future__ import annotations

from gdsearch.mlp.config import OPTIMIZER_FIELDS

GROUP = ["init", "hidden", "activation", "init_scale", "batch_size", *OPTIMIZER_FIELDS]
"""The trials table's columns that define a comparison group: the model, its starting weights'
scheme, and every training setting but the learning rate (the update rule included, since the
stability limit moves with it)."""
