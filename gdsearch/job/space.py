"""Search axes: the forms a job file may give them, their checks, and grid or random expansion."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdsearch.data import MAX_SAMPLES
from gdsearch.errors import JobError, shown
from gdsearch.job.limits import MAX_EPOCHS
from gdsearch.mlp.activations import ACTIVATIONS
from gdsearch.mlp.inits import INIT_SCHEMES
from gdsearch.mlp.optim import SCHEDULES

MAX_WIDTH = 4096
MAX_DEPTH = 16
MAX_RANGE_POINTS = 10_000


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_number(key: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise JobError(
            f"[search] {key}: every value must be a finite number > 0, but got {shown(value)}"
        )
    return float(value)


def _name_in(table: dict[str, Any]) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in table:
            raise JobError(
                f"[search] {key}: unknown name {shown(value)}; valid: {', '.join(sorted(table))}"
            )
        return str(value)

    return check


def _non_negative_int(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise JobError(
            f"[search] {key}: every value must be an integer >= 0, but got {shown(value)}"
        )
    return value


def _number_in(low: float, high: float, rule: str) -> Callable[[str, Any], float]:
    """A check for numbers with ``low <= value < high`` (``rule`` says it in words)."""

    def check(key: str, value: Any) -> float:
        if not _is_number(value) or not math.isfinite(value) or not low <= value < high:
            raise JobError(f"[search] {key}: every value must be {rule}, but got {shown(value)}")
        return float(value)

    return check


def _int_in(low: int, high: int) -> Callable[[str, Any], int]:
    """A check for integers in [low, high] (they are stored as int32 columns)."""

    def check(key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise JobError(
                f"[search] {key}: every value must be an integer in [{low}, {high:,}], "
                f"but got {shown(value)}"
            )
        return value

    return check


def _fraction(key: str, value: Any) -> float:
    if not _is_number(value) or not 0 < value <= 1:
        raise JobError(
            f"[search] {key}: every value must be a number in (0, 1], but got {shown(value)}"
        )
    return float(value)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise JobError(
            f"[search] {key}: every value must be true or false, but got {shown(value)}"
        )
    return value


def _hidden(key: str, value: Any) -> tuple[int, ...]:
    ok = isinstance(value, list) and all(
        isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WIDTH for w in value
    )
    if not ok:
        raise JobError(
            f"[search] {key}: every value must be a list of layer widths in [1, {MAX_WIDTH}] "
            f"([] is the linear model), but got {shown(value)}"
        )
    if len(value) > MAX_DEPTH:
        raise JobError(f"[search] {key}: at most {MAX_DEPTH} hidden layers, but got {len(value)}")
    return tuple(value)


AXIS_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "lr": _positive_number,
    "init": _name_in(INIT_SCHEMES),
    "hidden": _hidden,
    "seed": _non_negative_int,
    "activation": _name_in(ACTIVATIONS),
    "init_scale": _positive_number,
    "batch_size": _int_in(1, MAX_SAMPLES),
    "momentum": _number_in(0.0, 1.0, "a number in [0, 1)"),
    "nesterov": _bool,
    "weight_decay": _number_in(0.0, math.inf, "a finite number >= 0"),
    "lr_schedule": _name_in(SCHEDULES),
    "step_size": _int_in(1, MAX_EPOCHS),
    "gamma": _fraction,
    "warmup_epochs": _int_in(0, MAX_EPOCHS),
}
"""Every axis a job may search, with the check of one value."""

CONTINUOUS_AXES = ("lr", "init_scale")
"""Axes with range forms: {log|linear = [lo, hi], num = N}, {loguniform|uniform = [lo, hi]}."""


@dataclass(frozen=True)
class Axis:
    """One axis: a finite list of values, or (random mode) a continuous distribution."""

    key: str
    values: tuple[Any, ...] = ()
    distribution: str = ""  # "", "loguniform" or "uniform"
    low: float = 0.0
    high: float = 0.0

    def __len__(self) -> int:
        return len(self.values)

    def draw(self, rng: np.random.Generator) -> Any:
        """One random value: uniform over the list, or from the distribution."""
        if self.distribution == "loguniform":
            return _clean(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.distribution == "uniform":
            return _clean(rng.uniform(self.low, self.high))
        return self.values[int(rng.integers(len(self.values)))]


def _clean(value: float) -> float:
    """Round to 12 significant digits, so ids and tables do not hinge on the last bit."""
    return float(f"{value:.12g}")


def parse_axis(key: str, raw: Any, mode: str, section: str = "search") -> Axis:
    """Read one axis from its TOML value; raises JobError naming table, key and value."""
    try:
        return _parse_axis(key, raw, mode)
    except JobError as exc:
        if section == "search":
            raise
        raise JobError(str(exc).replace("[search]", f"[{section}]", 1)) from None


def _parse_axis(key: str, raw: Any, mode: str) -> Axis:
    check = AXIS_CHECKS[key]
    if isinstance(raw, list):
        values = raw
    elif isinstance(raw, dict) and key in CONTINUOUS_AXES:
        form = _range_form(key, raw, mode)
        if isinstance(form, Axis):
            return form
        values = form
    elif isinstance(raw, dict) and set(raw) == {"choice"} and isinstance(raw["choice"], list):
        values = raw["choice"]
    else:
        raise JobError(f"[search] {key}: must be a list of values, but got {shown(raw)}")
    if not values:
        raise JobError(f"[search] {key}: must hold at least one value, but got []")
    checked = tuple(check(key, value) for value in values)
    return Axis(key, tuple(dict.fromkeys(checked)))  # drop repeats, keep order


def _range_form(key: str, raw: dict[str, Any], mode: str) -> Axis | list[float]:
    forms = {"log", "linear", "loguniform", "uniform", "choice"}
    named = [f for f in raw if f in forms]
    form = named[0] if len(named) == 1 else ""
    extra = set(raw) - {form, "num"} if form in ("log", "linear") else set(raw) - {form}
    if not form or extra:
        raise JobError(
            f"[search] {key}: a range is {{log = [lo, hi], num = N}}, "
            f"{{linear = [lo, hi], num = N}}"
            f", {{loguniform = [lo, hi]}} or {{uniform = [lo, hi]}}, but got {shown(raw)}"
        )
    if form == "choice":
        return list(raw["choice"]) if isinstance(raw["choice"], list) else [raw["choice"]]
    bounds = raw[form]
    if not (isinstance(bounds, list) and len(bounds) == 2):
        raise JobError(f"[search] {key}.{form}: must be [lo, hi], but got {shown(bounds)}")
    low, high = (_positive_number(f"{key}.{form}", b) for b in bounds)
    if not low <= high:
        raise JobError(f"[search] {key}.{form}: `lo <= hi` must hold, but got {shown(bounds)}")
    if form in ("loguniform", "uniform"):
        if mode not in ("random", "sampler"):
            raise JobError(
                f'[search] {key}: {{{form} = ...}} needs mode = "random" or a sampler, but '
                f"mode is {mode!r}"
            )
        return Axis(key, distribution=form, low=low, high=high)
    num = raw.get("num")
    if not isinstance(num, int) or isinstance(num, bool) or not 1 <= num <= MAX_RANGE_POINTS:
        raise JobError(
            f"[search] {key}.num: must be an integer in [1, {MAX_RANGE_POINTS}], "
            f"but got {shown(num)}"
        )
    points = np.geomspace(low, high, num) if form == "log" else np.linspace(low, high, num)
    return [_clean(p) for p in points]


def grid_size(axes: dict[str, Axis]) -> int:
    """How many points the grid of these axes has (computed before anything is expanded)."""
    return math.prod(len(axis) for axis in axes.values())


def grid(axes: dict[str, Axis]) -> Iterator[dict[str, Any]]:
    """Every combination of axis values, the first axis varying slowest."""
    keys = list(axes)
    for index in np.ndindex(*(len(axes[k]) for k in keys)):
        yield {k: axes[k].values[i] for k, i in zip(keys, index, strict=True)}


def sample(
    axes: dict[str, Axis], samples: int, rng: np.random.Generator
) -> Iterator[dict[str, Any]]:
    """``samples`` random points, every axis drawn independently (axes in sorted order)."""
    keys = sorted(axes)
    for _ in range(samples):
        yield {k: axes[k].draw(rng) for k in keys}
