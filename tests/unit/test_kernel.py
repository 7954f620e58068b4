"""The compiled kernel: the numpy portable path's bits, for everything training does.

The numpy path (gdsearch.mlp.network, elementary, optim) is the reference: every comparison
here trains the same trials through both and asks for equal bits (NaN equal to NaN), for every
activation, depth, output count, update rule, batch mode, held-out split, sharpness setting and
stopping rule, at sample counts that take each branch of numpy's pairwise sum.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from gdsearch import mlp
from gdsearch.data import load_dataset
from gdsearch.data.holdout import split
from gdsearch.mlp import compiled

pytest.importorskip("numba")


@contextmanager
def numpy_reference(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Train on the numpy portable path, the kernel's reference, inside the block."""
    with monkeypatch.context() as patch:
        patch.setattr(compiled, "kernel", lambda: None)
        yield


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def _assert_same_results(kernel: mlp.PopulationResult, reference: mlp.PopulationResult) -> None:
    for field in (
        "histories",
        "lengths",
        "diverged_epoch",
        "status",
        "sharpness",
        "val_sse",
        "val_accuracy",
    ):
        assert _same(getattr(kernel, field), getattr(reference, field)), field
    for layer, (Wb, Wb_reference) in enumerate(zip(kernel.params, reference.params, strict=True)):
        assert _same(Wb, Wb_reference), f"final weights of layer {layer}"


def _problem(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two inputs; k = 1: a regression target; k > 1: one-hot classes of k."""
    X, Y = load_dataset("moons", n_samples=max(n, 2), noise=0.2, seed=seed)
    X, Y = X[:n], Y[:n]
    if k == 1:
        return X, np.sin(3.0 * X[:, :1]) + 0.5 * Y
    classes = (np.floor((X[:, 0] - X[:, 0].min()) * 7.3).astype(int)) % k
    return X, np.eye(k)[classes]


def _train_both(
    monkeypatch: pytest.MonkeyPatch,
    hidden: list[int],
    settings: dict[str, Any],
    *,
    n: int = 60,
    k: int = 1,
    activation: str = "tanh",
    validation: float = 0.0,
    lrs: np.ndarray | None = None,
) -> tuple[mlp.PopulationResult, mlp.PopulationResult]:
    X, Y = _problem(n, k)
    X, Y, holdout = split(X, Y, validation, seed=3)
    sizes = mlp.layer_sizes(X.shape[1], hidden, Y.shape[1])
    seeds = range(3)
    params = mlp.stack_params([mlp.init_params(sizes, "xavier", s) for s in seeds for _ in "abcd"])
    lrs = np.tile(np.array([0.01, 0.3, 2.0, 40.0]), 3) if lrs is None else lrs
    config = mlp.TrainConfig(**{"epochs": 40, **settings})

    def run() -> mlp.PopulationResult:
        rngs = [np.random.default_rng(i) for i in range(len(lrs))] if config.batch_size else None
        return mlp.train_population(params, X, Y, lrs, config, activation, rngs, holdout)

    assert compiled.available()
    kernel = run()
    with numpy_reference(monkeypatch):
        reference = run()
    return kernel, reference


ACTIVATIONS = ["tanh", "sigmoid", "relu", "identity"]
DEPTHS = {"linear": [], "5": [5], "6-5": [6, 5], "4-3-5": [4, 3, 5]}


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", DEPTHS, ids=list(DEPTHS))
def test_every_activation_and_depth_gives_the_numpy_paths_bits(
    monkeypatch: pytest.MonkeyPatch, activation: str, depth: str
) -> None:
    kernel, reference = _train_both(monkeypatch, DEPTHS[depth], {}, activation=activation)
    _assert_same_results(kernel, reference)
    assert set(kernel.status) >= {mlp.STATUS_CODES.index("ok")}  # some train to the end


@pytest.mark.parametrize("n", [5, 8, 60, 128, 129, 200, 256, 300, 1000])
@pytest.mark.parametrize("k", [1, 3])
def test_every_branch_of_the_pairwise_sum_gives_the_numpy_paths_bits(
    monkeypatch: pytest.MonkeyPatch, n: int, k: int
) -> None:
    """Fewer than 8 samples; one block; two; a split tree of several (and k·n for the SSE)."""
    kernel, reference = _train_both(monkeypatch, [6], {"epochs": 15}, n=n, k=k)
    _assert_same_results(kernel, reference)


UPDATE_RULES = {
    "descent": {},
    "sum": {"grad_scale": "sum"},
    "momentum": {"momentum": 0.9},
    "nesterov-decay": {"momentum": 0.8, "nesterov": True, "weight_decay": 1e-3},
    "decay-only": {"weight_decay": 0.01},
    "step": {"lr_schedule": "step", "step_size": 7, "gamma": 0.5},
    "cosine-warmup": {"lr_schedule": "cosine", "warmup_epochs": 5},
}


@pytest.mark.parametrize("rule", UPDATE_RULES, ids=list(UPDATE_RULES))
@pytest.mark.parametrize("batch_size", [0, 16, 7], ids=["full", "batch-16", "batch-7"])
def test_every_update_rule_and_batch_mode_gives_the_numpy_paths_bits(
    monkeypatch: pytest.MonkeyPatch, rule: str, batch_size: int
) -> None:
    settings = {**UPDATE_RULES[rule], "batch_size": batch_size}
    kernel, reference = _train_both(monkeypatch, [5, 4], settings, activation="sigmoid")
    _assert_same_results(kernel, reference)


@pytest.mark.parametrize("k", [1, 3], ids=["one-output", "three-outputs"])
@pytest.mark.parametrize("classes", [False, True], ids=["regression", "classes"])
def test_held_out_error_and_accuracy_give_the_numpy_paths_bits(
    monkeypatch: pytest.MonkeyPatch, k: int, classes: bool
) -> None:
    X, Y = _problem(80, k)
    if classes and k == 1:
        Y = np.where(np.median(Y) < Y, 1.0, 0.0)  # above the median: class 1
    if not classes and k > 1:
        Y = Y + 0.1 * X[:, :1]
    validation = 0.25

    def run() -> mlp.PopulationResult:
        Xf, Yf, holdout = split(X, Y, validation, seed=1)
        assert holdout is not None and holdout.classes == classes
        params = mlp.stack_params([mlp.init_params([2, 6, k], "he", s) for s in range(4)])
        config = mlp.TrainConfig(epochs=30, patience=4)
        return mlp.train_population(
            params, Xf, Yf, np.array([0.05, 0.5, 3.0, 50.0]), config, "tanh", None, holdout
        )

    kernel = run()
    with numpy_reference(monkeypatch):
        reference = run()
    _assert_same_results(kernel, reference)
    assert kernel.val_sse is not None
    assert (kernel.val_accuracy is not None) is classes


@pytest.mark.parametrize(
    "settings",
    [
        {"sharpness_every": 5},
        {"sharpness_every": 3, "weight_decay": 1e-3, "batch_size": 16},
        {"sharpness_every": 1},
    ],
    ids=["every-5", "every-3-decay-batches", "every-epoch"],
)
def test_sharpness_gives_the_numpy_paths_bits(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any]
) -> None:
    kernel, reference = _train_both(monkeypatch, [6], {"epochs": 25, **settings})
    _assert_same_results(kernel, reference)
    assert kernel.sharpness is not None and np.isfinite(kernel.sharpness[:, 0]).all()


def test_patience_and_divergence_give_the_numpy_paths_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lrs = np.geomspace(1e-4, 30.0, 12)
    settings = {"epochs": 80, "patience": 4, "patience_tolerance": 0.05, "divergence_factor": 50}
    kernel, reference = _train_both(monkeypatch, [5], settings, lrs=lrs)
    _assert_same_results(kernel, reference)
    names = {mlp.STATUS_CODES[s] for s in kernel.status}
    assert {"plateaued", "diverged"} <= names


def test_training_in_calls_with_pruning_between_gives_the_numpy_paths_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As halving trains: advance to a rung, prune some, carry on (pickled between)."""
    import pickle

    X, Y = _problem(90, 1)
    params = mlp.stack_params([mlp.init_params([2, 7, 1], "normal", s) for s in range(8)])
    lrs = np.geomspace(0.01, 5.0, 8)
    config = mlp.TrainConfig(epochs=30, momentum=0.5, sharpness_every=4, batch_size=20)

    def run() -> mlp.PopulationResult:
        population = mlp.Population(
            params, lrs, config, "tanh", [np.random.default_rng(i) for i in range(8)]
        )
        for rung, pruned in ((5, [1, 6]), (13, [2]), (30, [])):
            population.prune(np.array(pruned, dtype=int))
            population = pickle.loads(pickle.dumps(population))
            population.advance(X, Y, rung)
        return population.result()

    kernel = run()
    with numpy_reference(monkeypatch):
        reference = run()
    _assert_same_results(kernel, reference)
    assert mlp.STATUS_CODES.index("pruned") in kernel.status


def test_a_rule_of_ones_own_runs_on_the_numpy_path() -> None:
    """The kernel knows the built-in rules only; a subclass keeps its own step."""
    steps: list[int] = []

    class Counting(mlp.GradientDescent):
        def step(self, params: mlp.Stacked, grads: mlp.Stacked) -> None:
            steps.append(1)
            super().step(params, grads)

    assert compiled.runs(mlp.GradientDescent(np.ones(2)))
    assert not compiled.runs(Counting(np.ones(2)))


def test_patience_on_the_held_out_sse_gives_the_numpy_paths_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lrs = np.geomspace(1e-3, 30.0, 12)
    settings = {"epochs": 120, "patience": 6, "patience_tolerance": 0.02}
    watched = {"patience_metric": "val_sse", **settings}
    kernel, reference = _train_both(monkeypatch, [5], watched, lrs=lrs, validation=0.3)
    _assert_same_results(kernel, reference)
    on_training, _ = _train_both(monkeypatch, [5], settings, lrs=lrs, validation=0.3)
    assert "plateaued" in {mlp.STATUS_CODES[s] for s in kernel.status}
    assert not np.array_equal(kernel.lengths, on_training.lengths)  # it watched something else
