"""Job files: read a TOML search job once, check every key, and expand it into trials.

A job has five tables, each read by its own function here: ``[job]`` (name, seed), ``[data]``
(the data set and its options), ``[model]`` and ``[train]`` (fixed settings) and ``[search]``
(the axes, the mode, and the scheduler's settings). ``activation`` and ``init_scale`` (model)
and ``batch_size`` (train) may be fixed in their own table or searched as an axis, not both.
Scalar settings are declared in tables of :class:`Setting` (type, default, rule), so a new one is
one line. Every mistake raises :class:`JobError` naming the file, key and value.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from gdsearch.data import (
    DATASETS,
    check_options,
    data_digest,
    dataset_options,
    load_dataset,
)
from gdsearch.data.holdout import Holdout, holdout_indices, split, stratified_labels
from gdsearch.errors import DataError, JobError, shown
from gdsearch.job.limits import (
    MAX_BRACKET_POINTS,
    MAX_BRACKET_ROUNDS,
    MAX_EPOCHS,
    MAX_JOB_BYTES,
    MAX_KEY_PARTS,
    MAX_TRIALS,
    check_network_size,
    longest_dotted_key,
)
from gdsearch.job.space import AXIS_CHECKS, Axis, grid, grid_size, parse_axis, sample
from gdsearch.job.trial import SAMPLER_STREAM, SCALED_INITS, Trial
from gdsearch.mlp.config import (
    DEFAULT_DIVERGENCE_FACTOR,
    DEFAULT_PATIENCE_TOLERANCE,
    OPTIMIZER_FIELDS,
    PATIENCE_METRICS,
    TRAIN_DEFAULTS,
    TrainConfig,
)
from gdsearch.mlp.inits import DEFAULT_SCALE
from gdsearch.mlp.landscape import (
    MAX_LINE,
    MAX_MARGIN,
    MAX_PATH_POINTS,
    MAX_RESOLUTION,
    MAX_SPAN,
    LandscapeSettings,
)
from gdsearch.mlp.network import GRAD_SCALES
from gdsearch.mlp.numerics import DEFAULT_NUMERICS, NUMERICS
from gdsearch.mlp.population import RUNG_METRICS
from gdsearch.mlp.range_test import RangeSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
MODES = ("grid", "random", "bracket")
SCHEDULERS = ("none", "halving")


class Setting(NamedTuple):
    """One scalar key of a table: the field it fills, its type, default (None: required), and
    the rule its value must meet, as a test and as the words of the error."""

    field: str
    kind: type
    default: Any
    ok: Callable[[Any], bool] = lambda value: True
    rule: str = ""


def _finite(
    low: float, high: float, *, open_low: bool = False, open_high: bool = False
) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        above = value > low if open_low else value >= low
        below = value < high if open_high else value <= high
        finite = not isinstance(value, float) or math.isfinite(value)  # ints of any size
        return finite and above and below

    return ok


TRAIN_SETTINGS = {
    "epochs": Setting("epochs", int, 100, _finite(1, MAX_EPOCHS),
                      f"an integer in [1, {MAX_EPOCHS}]"),
    "grad_scale": Setting("grad_scale", str, "mean", lambda v: v in GRAD_SCALES,
                          f"one of {', '.join(GRAD_SCALES)}"),
    "divergence_factor": Setting("divergence_factor", float, DEFAULT_DIVERGENCE_FACTOR,
                                 _finite(1, math.inf, open_low=True, open_high=True),
                                 "a finite number > 1"),
    "patience": Setting("patience", int, 0, _finite(0, MAX_EPOCHS),
                        f"an integer in [0, {MAX_EPOCHS}] (0: never stop a trial for not "
                        "improving)"),
    "patience_tolerance": Setting("patience_tolerance", float, DEFAULT_PATIENCE_TOLERANCE,
                                  _finite(0, 1, open_high=True), "a number in [0, 1)"),
    "patience_metric": Setting("patience_metric", str, "sse",
                               lambda v: v in PATIENCE_METRICS,
                               f"one of {', '.join(PATIENCE_METRICS)} (the SSE trained on, or "
                               "the held-out SSE)"),
    "sharpness_every": Setting("sharpness_every", int, 0, _finite(0, MAX_EPOCHS),
                               f"an integer in [0, {MAX_EPOCHS}] (0: never measure the "
                               "sharpness)"),
    "numerics": Setting("numerics", str, DEFAULT_NUMERICS, lambda v: v in NUMERICS,
                        f"one of {', '.join(NUMERICS)}"),
}  # fmt: skip
"""``[train]``'s scalar keys, each a field of :class:`TrainConfig`."""
TRAIN_AXES = ("batch_size", *OPTIMIZER_FIELDS)
"""Fields of :class:`TrainConfig` that may be fixed in ``[train]`` or searched as axes."""
BRACKET_SETTINGS = {
    "bracket_width": Setting("width", float, 0.05, _finite(0, 10, open_low=True),
                             "a number in (0, 10] (the bracket's relative width, hi / lo - 1)"),
    "bracket_points": Setting("points", int, 3, _finite(1, MAX_BRACKET_POINTS),
                              f"an integer in [1, {MAX_BRACKET_POINTS}]"),
    "bracket_rounds": Setting("rounds", int, 10, _finite(1, MAX_BRACKET_ROUNDS),
                              f"an integer in [1, {MAX_BRACKET_ROUNDS}]"),
}  # fmt: skip
HALVING_SETTINGS = {
    "min_epochs": Setting("min_epochs", int, None),  # its rule depends on epochs: see _halving
    "reduction_factor": Setting("reduction_factor", int, 3, _finite(2, 100),
                                "an integer in [2, 100]"),
    "rung_metric": Setting("metric", str, "sse", lambda v: v in RUNG_METRICS,
                           f"one of {', '.join(RUNG_METRICS)}"),
}  # fmt: skip

LR_RANGE_SETTINGS = {
    "start_lr": Setting("start_lr", float, 1e-7, _finite(0, 1e6, open_low=True),
                        "a number in (0, 1e6] (the first step's rate)"),
    "end_lr": Setting("end_lr", float, 10.0, _finite(0, 1e6, open_low=True),
                      "a number in (0, 1e6], above start_lr (the last step's rate)"),
    "steps": Setting("steps", int, 100, _finite(2, 100_000), "an integer in [2, 100000]"),
    "stop_factor": Setting("stop_factor", float, 4.0, _finite(1, 1e6, open_low=True),
                           "a number in (1, 1e6] (stop once the loss exceeds this × its lowest)"),
    "smoothing": Setting("smoothing", float, 0.98, _finite(0, 1, open_high=True),
                         "a number in [0, 1) (the moving average's factor)"),
}  # fmt: skip
"""``[lr_range]``: after the run, the learning-rate range test of each comparison group and
replicate seed (:mod:`gdsearch.search.range_test`; fast.ai's ``lr_find`` defaults)."""
SAMPLERS = ("grid", "tpe", "cmaes", "random")
OBJECTIVES = ("final_sse", "final_val_sse", "min_val_sse")
SAMPLER_SETTINGS = {
    "sampler": Setting("sampler", str, "grid", lambda v: v in SAMPLERS,
                       f"one of {', '.join(SAMPLERS)} (grid: every point; the others ask "
                       "Optuna's sampler of that name for each batch)"),
    "budget": Setting("budget", int, 0, lambda v: 1 <= v <= MAX_TRIALS or v == 0,
                      f"an integer in [1, {MAX_TRIALS}] (the trials a sampler proposes)"),
    "batch": Setting("batch", int, 8, _finite(1, 4096),
                     "an integer in [1, 4096] (trials proposed, then trained, at a time)"),
    "objective": Setting("objective", str, "final_sse", lambda v: v in OBJECTIVES,
                         f"one of {', '.join(OBJECTIVES)} (what a sampler minimises)"),
}  # fmt: skip
"""``[search]``'s keys of model-based search (:mod:`gdsearch.search.sampled`)."""
LANDSCAPE_CHOICES = ("default", "all")
LANDSCAPE_SETTINGS = {
    "resolution": Setting("resolution", int, 51, lambda v: 3 <= v <= MAX_RESOLUTION and v % 2,
                          f"an odd integer in [3, {MAX_RESOLUTION}] (points along each axis of "
                          "every grid)"),
    "span": Setting("span", float, 1.0, _finite(0, MAX_SPAN, open_low=True),
                    f"a number in (0, {MAX_SPAN:g}] (the random slice's half-width)"),
    "line_from": Setting("line_from", float, -0.5, _finite(-MAX_LINE, 0),
                         f"a number in [-{MAX_LINE:g}, 0] (where the line starts, in α)"),
    "line_to": Setting("line_to", float, 1.5, _finite(1, MAX_LINE),
                       f"a number in [1, {MAX_LINE:g}] (where the line ends, in α)"),
    "biases": Setting("biases", bool, False, rule="true or false"),
    "sharpest_span": Setting("sharpest_span", float, 0.5, _finite(0, MAX_SPAN, open_low=True),
                             f"a number in (0, {MAX_SPAN:g}] (the sharpest direction's "
                             "half-width)"),
    "margin": Setting("margin", float, 0.25, _finite(0, MAX_MARGIN),
                      f"a number in [0, {MAX_MARGIN:g}]"),
    "path_points": Setting("path_points", int, 1000, _finite(2, MAX_PATH_POINTS),
                           f"an integer in [2, {MAX_PATH_POINTS}]"),
    "trials": Setting("trials", str, "default", lambda v: v in LANDSCAPE_CHOICES,
                      "default (each group's smallest, best and largest stable rate of its "
                      "first seed) or all"),
}  # fmt: skip
"""``[landscape]``: after the run, draw the loss landscapes of these trials
(:mod:`gdsearch.search.landscapes`; the settings are
:class:`~gdsearch.mlp.landscape.LandscapeSettings`'s)."""
DATA_SETTINGS = {
    "validation": Setting("validation", float, 0.0, _finite(0, 1, open_high=True),
                          "a number in [0, 1) (the share of the samples held out; 0: none)"),
    "stratify": Setting("stratify", bool, False, rule="true or false (class targets only: "
                        "hold out each class in proportion)"),
}  # fmt: skip
"""``[data]``'s own keys; the others are the data set's options."""

# Where an axis lives when it is fixed rather than searched.
HOME = {"activation": "model", "init_scale": "model", **{key: "train" for key in TRAIN_AXES}}
DEFAULTS: dict[str, Any] = {
    "init": "xavier",
    "hidden": [],
    "seed": 0,
    "activation": "tanh",
    "init_scale": None,
    **{key: TRAIN_DEFAULTS[key] for key in TRAIN_AXES},
}
SECTION_KEYS = {
    "job": {"name", "seed", "description"},
    "data": None,  # the data set's own options, checked by gdsearch.data
    "model": {"activation", "init_scale"},
    "train": {*TRAIN_SETTINGS, *TRAIN_AXES},
    "search": {"mode", "samples", "scheduler", *BRACKET_SETTINGS, *HALVING_SETTINGS,
               *SAMPLER_SETTINGS, *AXIS_CHECKS},
    "landscape": {*LANDSCAPE_SETTINGS},
    "lr_range": {*LR_RANGE_SETTINGS},
}  # fmt: skip


@dataclass(frozen=True)
class Sampling:
    """Model-based search's settings: which Optuna sampler proposes trials, how many in all
    and per batch, and what it minimises (see :mod:`gdsearch.search.sampled`)."""

    sampler: str
    budget: int
    batch: int = 8
    objective: str = "final_sse"


@dataclass(frozen=True)
class LandscapeJob:
    """A job's ``[landscape]`` table: which trials' landscapes a run draws, and how."""

    settings: LandscapeSettings
    trials: str = "default"


@dataclass(frozen=True)
class Bracket:
    """Bracket mode's settings (see :mod:`gdsearch.search.bracket`)."""

    width: float = 0.05
    points: int = 3
    rounds: int = 10


@dataclass(frozen=True)
class Halving:
    """Successive halving's settings (see :mod:`gdsearch.search.halving`)."""

    min_epochs: int
    reduction_factor: int = 3
    metric: str = "sse"

    def rungs(self, epochs: int) -> list[int]:
        """The epochs where decisions are taken: min_epochs × factorᵏ below ``epochs``."""
        out = []
        rung = self.min_epochs
        while rung < epochs:
            out.append(rung)
            rung *= self.reduction_factor
        return out


@dataclass(frozen=True)
class JobSpec:
    """A checked job: where it came from, its data, how its trials train, and its search.

    ``bracket`` and ``halving`` hold their settings when the job uses them, else None;
    ``validation`` is the share of the data held out (``[data] validation``; 0: none).
    """

    name: str
    seed: int
    dataset: str
    data_options: dict[str, Any]
    train: TrainConfig
    mode: str
    samples: int
    axes: dict[str, Axis]
    fixed_axes: dict[str, Any]
    bracket: Bracket | None = None
    halving: Halving | None = None
    landscape: LandscapeJob | None = None
    lr_range: RangeSettings | None = None
    sampling: Sampling | None = None
    validation: float = 0.0
    stratify: bool = False
    description: str = ""
    source: str = ""
    path: str = ""
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def n_trials(self) -> int:
        """How many distinct trials the search expands to (repeated configurations count once);
        with a sampler, its budget."""
        if self.sampling is not None:
            return self.sampling.budget
        return len(self.trials())

    def trials(self) -> list[Trial]:
        """Every trial of the job, in a stable order, each trial_id once.

        In bracket mode these are the first round's trials (the grid); later rounds add trials
        at learning rates chosen from the stored results (:mod:`gdsearch.search.bracket`).
        With a sampler there are none ahead: its trials are proposed as the run goes
        (:meth:`trial_at`).
        """
        if self.mode == "sampler":
            return []
        if self.mode in ("grid", "bracket"):
            points = grid(self.axes)
        else:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, SAMPLER_STREAM]))
            points = sample(self.axes, self.samples, rng)
        data = tuple(sorted(self.data_identity().items()))
        unique: dict[str, Trial] = {}
        for point in points:
            trial = self._trial({**self.fixed_axes, **point}, data)
            unique.setdefault(trial.trial_id, trial)
        return list(unique.values())

    def trial_at(self, point: dict[str, Any]) -> Trial:
        """The trial at one point of the search space: values of (some of) the axes, the
        others fixed as the job fixes them."""
        data = tuple(sorted(self.data_identity().items()))
        return self._trial({**self.fixed_axes, **point}, data)

    def cost_trials(self, trials: list[Trial]) -> list[Trial]:
        """Trials to model the run's cost with: its ``trials`` (:meth:`trials`, expanded
        already), or with a sampler as many random points of its space as its budget."""
        if self.sampling is None:
            return trials
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SAMPLER_STREAM]))
        return [self.trial_at(point) for point in sample(self.axes, self.sampling.budget, rng)]

    def _trial(self, values: dict[str, Any], data: tuple[tuple[str, Any], ...]) -> Trial:
        init = values["init"]
        scale = values["init_scale"]
        if init not in SCALED_INITS:
            scale = None  # the scheme ignores it, so it must not split trial ids
        elif scale is None:
            scale = DEFAULT_SCALE[init]
        train = {k: values[k] for k in TRAIN_AXES}
        if not train["momentum"]:  # Nesterov's form of no momentum is plain gradient descent
            train["nesterov"] = False
        if train["lr_schedule"] != "step":  # only a step schedule reads these
            train["step_size"], train["gamma"] = 0, TRAIN_DEFAULTS["gamma"]
        return Trial(
            job_seed=self.seed,
            lr=values["lr"],
            init=init,
            hidden=tuple(values["hidden"]),
            seed=values["seed"],
            activation=values["activation"],
            init_scale=scale,
            data=data,
            train=dataclasses.replace(self.train, **train),
        )

    def data_identity(self) -> dict[str, Any]:
        """The data as trials and result sets name it: the data set, its options, and the
        share held out where one is (a job that holds none out is named as before)."""
        held = {"validation": self.validation} if self.validation else {}
        if self.validation and self.stratify:  # other samples held out: other trials
            held["stratify"] = True
        return {"dataset": self.dataset, **self.data_options, **held}

    def compat_key(self, X: np.ndarray, Y: np.ndarray) -> dict[str, Any]:
        """The settings every stored trial of a result set must share, the data's content too.

        A setting that is off adds no key (as in a trial's id), so result sets written before
        it existed still match.
        """
        shared = self.train.identity()
        for axis in TRAIN_AXES:  # per trial, in each trial's id
            shared.pop(axis, None)
        if "patience" in shared:  # the form 0.1 recorded
            shared["patience"] = [shared["patience"], shared.pop("patience_tolerance")]
        key = {
            "job_seed": self.seed,
            "data": self.data_identity(),
            "data_sha256": data_digest(X, Y),
            **shared,
        }
        if self.train.sharpness_every:  # results with and without it do not mix
            key["sharpness_every"] = self.train.sharpness_every
        if self.halving is not None:
            h = self.halving
            key["scheduler"] = ["halving", h.min_epochs, h.reduction_factor, h.metric]
        return key

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
        """Load the job's data set, X (n, d) and Y (n, k), all of it (held-out samples too: see
        :meth:`held_out`), and check every network fits it and the share held out leaves
        samples on both sides."""
        try:
            X, Y = load_dataset(self.dataset, **self.data_kwargs())
            if self.validation:
                labels = stratified_labels(Y, self.stratify)
                holdout_indices(X.shape[0], self.validation, self.seed, labels)
        except DataError as exc:
            raise DataError(f"{self.path or self.name}: [data] {exc}") from None
        try:
            for hidden in self.architectures():
                check_network_size(hidden, X.shape, Y.shape)
        except JobError as exc:
            raise JobError(f"{self.path or self.name}: {exc}") from None
        return X, Y

    def held_out(
        self, X: np.ndarray, Y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, Holdout | None]:
        """The job's data (from :meth:`load_data`) split into the samples its trials train on
        and those held out (None where it holds none out), by the job seed."""
        return split(X, Y, self.validation, self.seed, self.stratify)

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
    parts, line = longest_dotted_key(text)
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
    tables = _tables(doc)
    name, seed, description = _job_table(tables["job"])
    dataset, options, validation, stratify = _data_table(tables["data"])
    train = TrainConfig(**_settings(tables["train"], "train", TRAIN_SETTINGS))
    search = tables["search"]
    mode, samples = _mode(search)
    sampling = _sampling(search, mode)
    if sampling is not None:
        mode = "sampler"
    bracket = _bracket(search, mode)
    halving = _halving(search, train.epochs)
    if halving and mode == "bracket":
        raise JobError(
            '[search] scheduler: "halving" stops trials before they can show whether they '
            'diverge, which mode = "bracket" needs; use one or the other, but got "halving"'
        )
    if train.watches_held_out and not validation:
        raise JobError(
            '[train] patience_metric: "val_sse" watches the held-out SSE, so it needs '
            "[data] validation > 0, but got validation = 0"
        )
    if sampling and sampling.objective != "final_sse" and not validation:
        raise JobError(
            f"[search] objective: {sampling.objective!r} is the held-out SSE, so it needs "
            "[data] validation > 0, but got validation = 0"
        )
    if halving and halving.metric.startswith("val_") and not validation:
        raise JobError(
            f"[search] rung_metric: {halving.metric!r} ranks by the held-out SSE, so it needs "
            "[data] validation > 0, but got validation = 0"
        )
    axes, fixed_axes = _axes(tables, mode)
    landscape = None
    if "landscape" in doc:
        values = _settings(tables["landscape"], "landscape", LANDSCAPE_SETTINGS)
        trials = values.pop("trials")
        values["line"] = (values.pop("line_from"), values.pop("line_to"))
        landscape = LandscapeJob(LandscapeSettings(**values), trials)
    lr_range = None
    if "lr_range" in doc:
        values = _settings(tables["lr_range"], "lr_range", LR_RANGE_SETTINGS)
        if values["end_lr"] <= values["start_lr"]:
            raise JobError(
                f"[lr_range] end_lr: must be above start_lr ({values['start_lr']!r}), "
                f"but got {values['end_lr']!r}"
            )
        lr_range = RangeSettings(**values)
        if sampling is not None:
            raise JobError(
                "[lr_range]: sweeps the comparison groups of a grid, but [search] sampler = "
                f"{sampling.sampler!r} proposes its trials as it goes; drop one of them"
            )
    return JobSpec(
        name=name,
        seed=seed,
        dataset=dataset,
        data_options=options,
        train=train,
        mode=mode,
        samples=samples,
        axes=axes,
        fixed_axes=fixed_axes,
        bracket=bracket,
        halving=halving,
        landscape=landscape,
        lr_range=lr_range,
        sampling=sampling,
        validation=validation,
        stratify=stratify,
        description=description,
        source=text,
        path=path,
        document=doc,
    )


def _tables(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The five tables (empty where absent), with unknown tables and keys refused."""
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
    return tables


def _job_table(job: dict[str, Any]) -> tuple[str, int, str]:
    name = _get(job, "job", "name", str, None)
    if not name or name[0] in "._-" or not set(name) <= NAME_CHARS or len(name) > 100:
        raise JobError(
            f"[job] name: must be 1-100 letters, digits, '.', '_' or '-', not starting with "
            f"'.', '_' or '-', but got {shown(name)}"
        )
    seed = _get(job, "job", "seed", int, 0)
    if not 0 <= seed < 2**63:
        raise JobError(f"[job] seed: must be an integer >= 0, but got {shown(seed)}")
    return name, seed, _get(job, "job", "description", str, "")


def _data_table(data: dict[str, Any]) -> tuple[str, dict[str, Any], float, bool]:
    """The data set's name, its options, the share of it held out and whether by class."""
    dataset = _get(data, "data", "dataset", str, None)
    if dataset not in DATASETS:
        raise JobError(
            f"[data] dataset: unknown name {shown(dataset)}; valid: {', '.join(sorted(DATASETS))}"
        )
    settings = _settings(data, "data", DATA_SETTINGS)
    if settings["stratify"] and not settings["validation"]:
        raise JobError(
            "[data] stratify: holds out each class in proportion, so it needs "
            "validation > 0, but got validation = 0"
        )
    options = {k: v for k, v in data.items() if k not in ("dataset", *DATA_SETTINGS)}
    return dataset, check_options(dataset, options), settings["validation"], settings["stratify"]


def _mode(search: dict[str, Any]) -> tuple[str, int]:
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
    return mode, samples


def _sampling(search: dict[str, Any], mode: str) -> Sampling | None:
    """Model-based search's keys, checked: None for a grid; only with mode = "grid" (the
    default) and no scheduler."""
    values = _settings(search, "search", SAMPLER_SETTINGS)
    if values["sampler"] == "grid":
        for key in ("budget", "batch", "objective"):
            if key in search:
                raise JobError(
                    f"[search] {key}: only with a sampler (tpe, cmaes or random), but got "
                    f"{shown(search[key])}"
                )
        return None
    if "budget" not in search:
        raise JobError(f"[search] budget: sampler = {values['sampler']!r} needs it: missing")
    if values["budget"] < 1:
        raise JobError(
            f"[search] budget: must be an integer in [1, {MAX_TRIALS}], but got "
            f"{shown(values['budget'])}"
        )
    if mode != "grid" or search.get("scheduler", "none") != "none":
        raise JobError(
            f"[search] sampler: {values['sampler']!r} proposes the trials itself; it goes with "
            f"neither mode = {mode!r} nor a scheduler"
        )
    return Sampling(**values)


def _bracket(search: dict[str, Any], mode: str) -> Bracket | None:
    """The bracket-mode keys, checked; they may appear only with mode = "bracket"."""
    if mode != "bracket":
        for key in sorted(BRACKET_SETTINGS.keys() & search.keys()):
            raise JobError(
                f'[search] {key}: only for mode = "bracket", but got {shown(search[key])}'
            )
        return None
    return Bracket(**_settings(search, "search", BRACKET_SETTINGS))


def _halving(search: dict[str, Any], epochs: int) -> Halving | None:
    """The scheduler keys, checked; ``min_epochs`` and the rest only with a scheduler."""
    scheduler = _get(search, "search", "scheduler", str, "none")
    if scheduler not in SCHEDULERS:
        raise JobError(
            f"[search] scheduler: must be one of {', '.join(SCHEDULERS)}, "
            f"but got {shown(scheduler)}"
        )
    if scheduler == "none":
        for key in sorted(HALVING_SETTINGS.keys() & search.keys()):
            raise JobError(
                f'[search] {key}: only with scheduler = "halving", but got {shown(search[key])}'
            )
        return None
    below_epochs = Setting(
        "min_epochs",
        int,
        None,
        _finite(1, epochs, open_high=True),
        f"an integer in [1, epochs) = [1, {epochs})",
    )
    return Halving(**_settings(search, "search", {**HALVING_SETTINGS, "min_epochs": below_epochs}))


def _axes(tables: dict[str, dict[str, Any]], mode: str) -> tuple[dict[str, Axis], dict[str, Any]]:
    """The searched axes, and the value of every axis not searched (fixed, or its default)."""
    search = tables["search"]
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
    _check_update_rule(tables, axes, fixed_axes)
    if mode == "bracket" and len(axes["lr"].values) < 2:
        raise JobError(
            f'[search] lr: mode = "bracket" needs at least 2 learning rates to start from, '
            f"but got {shown(search['lr'])}"
        )
    return axes, fixed_axes


def _check_update_rule(
    tables: dict[str, dict[str, Any]], axes: dict[str, Axis], fixed_axes: dict[str, Any]
) -> None:
    """Settings of the update rule that cannot go together.

    Where ``nesterov`` or ``momentum`` is searched, Nesterov's form at momentum 0 is plain
    gradient descent, already in the grid, and such points fold into it (see
    ``JobSpec._trial``); only where both are fixed is it an error.
    """

    def values(key: str) -> list[Any]:
        return list(axes[key].values) if key in axes else [fixed_axes[key]]

    def where(key: str) -> str:
        return "[search]" if key in axes else "[train]"

    searched = {"nesterov", "momentum"} & axes.keys()
    if not searched and fixed_axes["nesterov"] and not fixed_axes["momentum"]:
        raise JobError(
            "[train] nesterov: true needs momentum > 0 (Nesterov's form of no momentum is plain "
            f"gradient descent), but got momentum = {shown(fixed_axes['momentum'])}"
        )
    stepped = "step" in values("lr_schedule")
    given = [k for k in ("step_size", "gamma") if k in axes or k in tables["train"]]
    if stepped and "step_size" not in given:
        raise JobError(
            f'{where("lr_schedule")} lr_schedule: "step" needs step_size (an integer >= 1, the '
            "epochs between drops of the rate), but got none"
        )
    for key in given if not stepped else []:
        raise JobError(
            f'{where(key)} {key}: only with lr_schedule = "step", but got '
            f"{shown(values(key) if key in axes else values(key)[0])}"
        )


def _settings(table: dict[str, Any], section: str, settings: dict[str, Setting]) -> dict[str, Any]:
    """The table's values of these settings, checked, by field name (defaults filled in)."""
    values = {}
    for key, setting in settings.items():
        raw = _get(table, section, key, setting.kind, setting.default)
        value = float(raw) if setting.kind is float else raw
        if not setting.ok(value):
            raise JobError(f"[{section}] {key}: must be {setting.rule}, but got {shown(raw)}")
        values[setting.field] = value
    return values


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
    if (isinstance(value, bool) and kind is not bool) or not ok:
        raise JobError(f"[{section}] {key}: must be {kind.__name__}, but got {shown(value)}")
    return value
