"""Job files: read a TOML search job once, check every key, and expand it into trials.

A job has five tables: ``[job]`` (name, seed), ``[data]`` (the data set and its options),
``[model]`` and ``[train]`` (fixed settings) and ``[search]`` (the axes). ``activation`` and
``init_scale`` (model) and ``batch_size`` (train) may be fixed in their own table or searched
as an axis, not both. Every mistake raises :class:`JobError` naming the file, key and value.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdsearch.data import DATASETS, check_options, dataset_options, load_dataset
from gdsearch.errors import DataError, JobError, shown
from gdsearch.inits import DEFAULT_SCALE
from gdsearch.mlp import (
    DEFAULT_DIVERGENCE_FACTOR,
    DEFAULT_PATIENCE_TOLERANCE,
    GRAD_SCALES,
    RUNG_METRICS,
    layer_sizes,
)
from gdsearch.space import AXIS_CHECKS, Axis, grid, grid_size, parse_axis, sample
from gdsearch.trial import SAMPLER_STREAM, SCALED_INITS, Trial

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_JOB_BYTES = 1 << 20
MAX_KEY_PARTS = 32
"""A dotted TOML key (``a.b.c``) may have this many parts: the parser's time grows with the
square of a key's length, so a 100 kB key would hold it for minutes."""
MAX_TRIALS = 1_000_000
MAX_EPOCHS = 1_000_000
MAX_PARAMETERS = 10_000_000
"""Weights and biases of one network (80 MB as float64, and as much again for its gradient)."""
MAX_ACTIVATIONS = 100_000_000
"""Samples × the widths of every layer after the input: what one trial's forward pass holds."""
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

MODES = ("grid", "random", "bracket")
BRACKET_KEYS = {"bracket_width", "bracket_points", "bracket_rounds"}
MAX_BRACKET_POINTS = 64
MAX_BRACKET_ROUNDS = 50
SCHEDULERS = ("none", "halving")
HALVING_KEYS = {"scheduler", "min_epochs", "reduction_factor", "rung_metric"}

# Where an axis lives when it is fixed rather than searched.
HOME = {"activation": "model", "init_scale": "model", "batch_size": "train"}
DEFAULTS: dict[str, Any] = {
    "init": "xavier",
    "hidden": [],
    "seed": 0,
    "activation": "tanh",
    "init_scale": None,
    "batch_size": 0,
}
SECTION_KEYS = {
    "job": {"name", "seed", "description"},
    "data": None,  # the data set's own options, checked by gdsearch.data
    "model": {"activation", "init_scale"},
    "train": {
        "epochs",
        "grad_scale",
        "batch_size",
        "divergence_factor",
        "patience",
        "patience_tolerance",
    },
    "search": {"mode", "samples", *BRACKET_KEYS, *HALVING_KEYS, *AXIS_CHECKS},
}


@dataclass(frozen=True)
class JobSpec:
    """A checked job: fixed settings, the search axes, and where it came from."""

    name: str
    seed: int
    dataset: str
    data_options: dict[str, Any]
    epochs: int
    grad_scale: str
    divergence_factor: float
    mode: str
    samples: int
    axes: dict[str, Axis]
    fixed_axes: dict[str, Any]
    bracket_width: float = 0.05
    bracket_points: int = 3
    bracket_rounds: int = 10
    patience: int = 0
    patience_tolerance: float = DEFAULT_PATIENCE_TOLERANCE
    scheduler: str = "none"
    min_epochs: int = 0
    reduction_factor: int = 3
    rung_metric: str = "sse"
    description: str = ""
    source: str = ""
    path: str = ""
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def n_trials(self) -> int:
        """How many distinct trials the search expands to (repeated configurations count once)."""
        return len(self.trials())

    def trials(self) -> list[Trial]:
        """Every trial of the job, in a stable order, each trial_id once.

        In bracket mode these are the first round's trials (the grid); later rounds add trials
        at learning rates chosen from the stored results (:mod:`gdsearch.bracket`).
        """
        if self.mode in ("grid", "bracket"):
            points = grid(self.axes)
        else:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, SAMPLER_STREAM]))
            points = sample(self.axes, self.samples, rng)
        fixed: tuple[tuple[str, Any], ...] = (
            ("data", {"dataset": self.dataset, **self.data_options}),
            ("epochs", self.epochs),
            ("grad_scale", self.grad_scale),
            ("divergence_factor", self.divergence_factor),
        )
        if self.patience:  # only then, so that other jobs' trial_ids stay as they were
            fixed += (("patience", self.patience), ("patience_tolerance", self.patience_tolerance))
        unique: dict[str, Trial] = {}
        for point in points:
            trial = self._trial({**self.fixed_axes, **point}, fixed)
            unique.setdefault(trial.trial_id, trial)
        return list(unique.values())

    def _trial(self, values: dict[str, Any], fixed: tuple[tuple[str, Any], ...]) -> Trial:
        init = values["init"]
        scale = values["init_scale"]
        if init not in SCALED_INITS:
            scale = None  # the scheme ignores it, so it must not split trial ids
        elif scale is None:
            scale = DEFAULT_SCALE[init]
        return Trial(
            job_seed=self.seed,
            lr=values["lr"],
            init=init,
            hidden=tuple(values["hidden"]),
            seed=values["seed"],
            activation=values["activation"],
            init_scale=scale,
            batch_size=values["batch_size"],
            fixed=fixed,
        )

    def data_kwargs(self) -> dict[str, Any]:
        """The data set's options as the loader takes them: file paths made absolute."""
        options = dict(self.data_options)
        if self.dataset == "file" and options.get("path"):
            base = Path(self.path).parent if self.path else Path.cwd()
            options["path"] = str((base / options["path"]).resolve())
        if "seed" in dataset_options(self.dataset) and "seed" not in options:
            options["seed"] = self.seed
        return options

    def load_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Load the job's data set, X (n, d) and Y (n, k), and check every network fits it."""
        try:
            X, Y = load_dataset(self.dataset, **self.data_kwargs())
        except DataError as exc:
            raise DataError(f"{self.path or self.name}: [data] {exc}") from None
        try:
            for hidden in self.architectures():
                _check_network_size(hidden, X.shape, Y.shape)
        except JobError as exc:
            raise JobError(f"{self.path or self.name}: {exc}") from None
        return X, Y

    def architectures(self) -> list[tuple[int, ...]]:
        """Every hidden-layer list the job trains."""
        if "hidden" in self.axes:
            return list(self.axes["hidden"].values)
        return [tuple(self.fixed_axes["hidden"])]


def load_job(path: str | Path) -> JobSpec:
    """Read and check a job file.

    Args:
        path: a TOML job file.

    Returns:
        The checked :class:`JobSpec`.

    Raises:
        JobError: the file is missing, not TOML, or breaks a rule; the message names the key
            and the value.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:  # read no more than the limit, whatever the file is
            raw = handle.read(MAX_JOB_BYTES + 1)
    except OSError as exc:
        raise JobError(f"{path}: cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_JOB_BYTES:
        raise JobError(f"{path}: more than {MAX_JOB_BYTES:,} bytes, the most a job file may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JobError(f"{path}: not UTF-8 text") from None
    return parse_job(text, str(path))


def parse_job(text: str, path: str = "<job>") -> JobSpec:
    """Check a job given as TOML text; ``path`` is used in messages and to resolve data files."""
    parts, line = _longest_dotted_key(text)
    if parts > MAX_KEY_PARTS:
        raise JobError(
            f"{path}: line {line}: a dotted key of {parts:,} parts, "
            f"more than the {MAX_KEY_PARTS} allowed"
        )
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JobError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise JobError(f"{path}: not valid TOML: nested too deeply") from None
    try:
        return _build(document, text, path)
    except JobError as exc:
        raise JobError(f"{path}: {exc}") from None
    except DataError as exc:
        raise JobError(f"{path}: [data] {exc}") from None


def _build(doc: dict[str, Any], text: str, path: str) -> JobSpec:
    for section in doc:
        if section not in SECTION_KEYS:
            raise JobError(
                f"unknown table [{shown(section)[1:-1]}]; valid: {', '.join(SECTION_KEYS)}"
            )
    tables = {s: _table(doc, s) for s in SECTION_KEYS}
    for section, keys in SECTION_KEYS.items():
        for key in tables[section]:
            if keys is not None and key not in keys:
                raise JobError(
                    f"[{section}] unknown key {shown(key)}; valid: {', '.join(sorted(keys))}"
                )
    job, data, train, search = (tables[s] for s in ("job", "data", "train", "search"))

    name = _get(job, "job", "name", str, None)
    if not name or name[0] in "._-" or not set(name) <= NAME_CHARS or len(name) > 100:
        raise JobError(
            f"[job] name: must be 1-100 letters, digits, '.', '_' or '-', not starting with "
            f"'.', '_' or '-', but got {shown(name)}"
        )
    seed = _get(job, "job", "seed", int, 0)
    if not 0 <= seed < 2**63:
        raise JobError(f"[job] seed: must be an integer >= 0, but got {shown(seed)}")

    dataset = _get(data, "data", "dataset", str, None)
    if dataset not in DATASETS:
        raise JobError(
            f"[data] dataset: unknown name {shown(dataset)}; valid: {', '.join(sorted(DATASETS))}"
        )
    options = check_options(dataset, {k: v for k, v in data.items() if k != "dataset"})

    epochs = _get(train, "train", "epochs", int, 100)
    if not 1 <= epochs <= MAX_EPOCHS:
        raise JobError(
            f"[train] epochs: must be an integer in [1, {MAX_EPOCHS}], but got {shown(epochs)}"
        )
    grad_scale = _get(train, "train", "grad_scale", str, "mean")
    if grad_scale not in GRAD_SCALES:
        raise JobError(
            f"[train] grad_scale: must be one of {', '.join(GRAD_SCALES)}, "
            f"but got {shown(grad_scale)}"
        )
    factor = float(_get(train, "train", "divergence_factor", float, DEFAULT_DIVERGENCE_FACTOR))
    if not (math.isfinite(factor) and factor > 1):
        raise JobError(
            f"[train] divergence_factor: must be a finite number > 1, but got {shown(factor)}"
        )

    mode = _get(search, "search", "mode", str, "grid")
    if mode not in MODES:
        raise JobError(f"[search] mode: must be one of {', '.join(MODES)}, but got {shown(mode)}")
    samples = _get(search, "search", "samples", int, 0)
    if mode == "random" and not 1 <= samples <= MAX_TRIALS:
        raise JobError(
            f'[search] samples: mode = "random" needs an integer in [1, {MAX_TRIALS}], '
            f"but got {shown(samples)}"
        )
    if mode != "random" and "samples" in search:
        raise JobError(f'[search] samples: only for mode = "random", but got {shown(samples)}')
    bracket = _bracket_settings(search, mode)
    halving = _halving_settings(search, epochs)
    if halving and mode == "bracket":
        raise JobError(
            '[search] scheduler: "halving" stops trials before they can show whether they '
            'diverge, which mode = "bracket" needs; use one or the other, but got "halving"'
        )
    patience = _get(train, "train", "patience", int, 0)
    if not 0 <= patience <= MAX_EPOCHS:
        raise JobError(
            f"[train] patience: must be an integer in [0, {MAX_EPOCHS}] (0: never stop a "
            f"trial for not improving), but got {shown(patience)}"
        )
    tolerance = float(
        _get(train, "train", "patience_tolerance", float, DEFAULT_PATIENCE_TOLERANCE)
    )
    if not 0 <= tolerance < 1:
        raise JobError(
            f"[train] patience_tolerance: must be a number in [0, 1), but got {shown(tolerance)}"
        )
    if "lr" not in search:
        raise JobError("[search] lr: missing; every job searches learning rates")

    axes: dict[str, Axis] = {}
    fixed_axes: dict[str, Any] = {}
    for key in AXIS_CHECKS:
        home = HOME.get(key)
        fixed_here = home is not None and key in tables[home]
        if key in search and fixed_here:
            raise JobError(f"[search] {key}: also fixed in [{home}]; give it in one place only")
        if key in search:
            axes[key] = parse_axis(key, search[key], mode)
        elif fixed_here:
            assert home is not None
            value = tables[home][key]
            fixed_axes[key] = parse_axis(key, [value], mode, section=home).values[0]
        else:
            fixed_axes[key] = DEFAULTS[key]
    if mode == "grid" and grid_size(axes) > MAX_TRIALS:
        raise JobError(
            f"[search] the grid has {grid_size(axes):,} trials, "
            f"more than the {MAX_TRIALS:,} allowed"
        )

    if mode == "bracket" and len(axes["lr"].values) < 2:
        raise JobError(
            f'[search] lr: mode = "bracket" needs at least 2 learning rates to start from, '
            f"but got {shown(search['lr'])}"
        )

    description = _get(job, "job", "description", str, "")
    return JobSpec(
        name=name,
        seed=seed,
        dataset=dataset,
        data_options=options,
        epochs=epochs,
        grad_scale=grad_scale,
        divergence_factor=factor,
        mode=mode,
        samples=samples,
        axes=axes,
        fixed_axes=fixed_axes,
        **bracket,
        **halving,
        patience=patience,
        patience_tolerance=float(tolerance),
        description=description,
        source=text,
        path=path,
        document=doc,
    )


def _bracket_settings(search: dict[str, Any], mode: str) -> dict[str, Any]:
    """The bracket-mode keys, checked; they may appear only with mode = "bracket"."""
    if mode != "bracket":
        for key in sorted(BRACKET_KEYS & search.keys()):
            raise JobError(
                f'[search] {key}: only for mode = "bracket", but got {shown(search[key])}'
            )
        return {}
    width = float(_get(search, "search", "bracket_width", float, 0.05))
    if not (math.isfinite(width) and 0 < width <= 10):
        raise JobError(
            f"[search] bracket_width: must be a number in (0, 10] (the bracket's relative "
            f"width, hi / lo - 1), but got {shown(search['bracket_width'])}"
        )
    points = _get(search, "search", "bracket_points", int, 3)
    if not 1 <= points <= MAX_BRACKET_POINTS:
        raise JobError(
            f"[search] bracket_points: must be an integer in [1, {MAX_BRACKET_POINTS}], "
            f"but got {shown(points)}"
        )
    rounds = _get(search, "search", "bracket_rounds", int, 10)
    if not 1 <= rounds <= MAX_BRACKET_ROUNDS:
        raise JobError(
            f"[search] bracket_rounds: must be an integer in [1, {MAX_BRACKET_ROUNDS}], "
            f"but got {shown(rounds)}"
        )
    return {"bracket_width": width, "bracket_points": points, "bracket_rounds": rounds}


def _halving_settings(search: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The scheduler keys, checked; ``min_epochs`` and the rest only with a scheduler."""
    scheduler = _get(search, "search", "scheduler", str, "none")
    if scheduler not in SCHEDULERS:
        raise JobError(
            f"[search] scheduler: must be one of {', '.join(SCHEDULERS)}, "
            f"but got {shown(scheduler)}"
        )
    if scheduler == "none":
        for key in sorted((HALVING_KEYS - {"scheduler"}) & search.keys()):
            raise JobError(
                f'[search] {key}: only with scheduler = "halving", but got {shown(search[key])}'
            )
        return {}
    min_epochs = _get(search, "search", "min_epochs", int, None)
    if not 1 <= min_epochs < epochs:
        raise JobError(
            f"[search] min_epochs: must be an integer in [1, epochs) = [1, {epochs}), "
            f"but got {shown(min_epochs)}"
        )
    factor = _get(search, "search", "reduction_factor", int, 3)
    if not 2 <= factor <= 100:
        raise JobError(
            f"[search] reduction_factor: must be an integer in [2, 100], but got {shown(factor)}"
        )
    metric = _get(search, "search", "rung_metric", str, "sse")
    if metric not in RUNG_METRICS:
        raise JobError(
            f"[search] rung_metric: must be one of {', '.join(RUNG_METRICS)}, "
            f"but got {shown(metric)}"
        )
    return {"scheduler": scheduler, "min_epochs": min_epochs, "reduction_factor": factor,
            "rung_metric": metric}  # fmt: skip


def _table(doc: dict[str, Any], section: str) -> dict[str, Any]:
    table = doc.get(section, {})
    if not isinstance(table, dict):
        raise JobError(f"[{section}] must be a table, but got {shown(table)}")
    return table


def _get(table: dict[str, Any], section: str, key: str, kind: type, default: Any) -> Any:
    """A value of the given type, or the default; None as default means required."""
    if key not in table:
        if default is None:
            raise JobError(f"[{section}] {key}: missing")
        return default
    value = table[key]
    ok = isinstance(value, int | float) if kind is float else isinstance(value, kind)
    if isinstance(value, bool) or not ok:
        raise JobError(f"[{section}] {key}: must be {kind.__name__}, but got {shown(value)}")
    return value


def _check_network_size(
    hidden: tuple[int, ...], x_shape: tuple[int, ...], y_shape: tuple[int, ...]
) -> None:
    """Refuse a network too large to train: its parameters, or one forward pass's values."""
    sizes = layer_sizes(x_shape[1], hidden, y_shape[1])
    parameters = sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(sizes))
    where = (
        f"[search] hidden: {shown(list(hidden))} with {sizes[0]} inputs and {sizes[-1]} outputs"
    )
    if parameters > MAX_PARAMETERS:
        raise JobError(
            f"{where} has {parameters:,} weights and biases, more than the "
            f"{MAX_PARAMETERS:,} allowed"
        )
    activations = x_shape[0] * sum(sizes[1:])
    if activations > MAX_ACTIVATIONS:
        raise JobError(
            f"{where} on {x_shape[0]:,} samples holds {activations:,} activations per pass, "
            f"more than the {MAX_ACTIVATIONS:,} allowed"
        )


def _longest_dotted_key(text: str) -> tuple[int, int]:
    """The most parts of a dotted key in this TOML text, and its line (an upper bound)."""
    # Dots between two separators, outside strings and comments: a key's parts, or a number's
    # one dot. Cheap enough to run before the parser, which a long key would hold for minutes.
    if text.count(".") < MAX_KEY_PARTS:
        return 1, 1
    most, most_line, dots, line, i = 0, 1, 0, 1, 0
    while i < len(text):
        char = text[i]
        if char == ".":
            dots += 1
            if dots > most:
                most, most_line = dots, line
        elif char in "=,[]{}\n":
            dots = 0
            if char == "\n":
                line += 1
        elif char == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif char in "\"'":
            end = _string_end(text, i)
            line += text.count("\n", i, end)
            i = end
            continue
        i += 1
    return most + 1, most_line


def _string_end(text: str, start: int) -> int:
    """Where the TOML string opening at ``start`` ends (past its closing quotes)."""
    quote = text[start]
    delimiter = quote * 3 if text.startswith(quote * 3, start) else quote
    i = start + len(delimiter)
    while True:
        end = text.find(delimiter, i)
        if end < 0:
            return len(text)
        escapes = 0
        while quote == '"' and text[end - 1 - escapes] == "\\":
            escapes += 1
        if escapes % 2 == 0:
            return end + len(delimiter)
        i = end + 1
