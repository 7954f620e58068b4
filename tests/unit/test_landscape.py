"""gdsearch.mlp.landscape: its grids hold their origins exactly, filter normalisation gives each
neuron its weights' length, the trajectory plane of a two-parameter model holds its whole path,
and every slice's SSE equals an independent plain-numpy forward pass written here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gdsearch.errors import InputError
from gdsearch.mlp import init_params
from gdsearch.mlp.landscape import (
    Evaluator,
    LandscapeSettings,
    Slice,
    centred_axis,
    covering_axis,
    filter_normalised,
    landscape,
    line_axis,
    path_epochs,
    sharpest_directions,
    trajectory_plane,
)
from gdsearch.mlp.network import flatten, stack_params


def plain_sse(theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: list[int]) -> float:
    """The SSE of a tanh MLP whose weights are laid out as gdsearch flattens them: per layer a
    (fan_in + 1, fan_out) block in C order, the bias row last. Written here, in plain numpy."""
    a, at = X, 0
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        block = theta[at : at + (fan_in + 1) * fan_out].reshape(fan_in + 1, fan_out)
        at += (fan_in + 1) * fan_out
        z = a @ block[:-1] + block[-1]
        a = z if layer == len(sizes) - 2 else np.tanh(z)
    return float(np.sum((a - Y) ** 2))


@pytest.fixture
def moons() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    Y = np.tanh(X[:, :1] - 0.5 * X[:, 1:]) + 0.1 * rng.normal(size=(40, 1))
    return X, Y


def test_axes_hold_their_origins_exactly() -> None:
    assert centred_axis(0.7, 51)[25] == 0.0 and centred_axis(0.7, 51)[[0, -1]].tolist() == [
        -0.7,
        0.7,
    ]
    alphas = line_axis(-0.5, 1.5, 51)
    assert 0.0 in alphas and 1.0 in alphas and alphas[0] == -0.5 and alphas[-1] == 1.5
    for low, high in [(-3.2, 0.4), (0.0, 2.5), (-1.0, 0.0), (-0.013, 7.1)]:
        axis = covering_axis(low, high, 31)
        assert len(axis) == 31 and 0.0 in axis
        assert axis[0] <= low and axis[-1] >= high  # the whole range is covered


def test_filter_normalisation_gives_each_neuron_its_weights_length() -> None:
    sizes = [3, 5, 2]
    theta = flatten(stack_params([init_params(sizes, "normal", 0, 0.7)]))[0]
    direction = np.random.default_rng(1).normal(size=theta.size)
    for biases in (False, True):
        d = filter_normalised(direction, theta, sizes, biases)
        at = 0
        for fan_in, fan_out in itertools.pairwise(sizes):
            size = (fan_in + 1) * fan_out
            dw = d[at : at + size].reshape(fan_in + 1, fan_out)
            w = theta[at : at + size].reshape(fan_in + 1, fan_out)
            rows = fan_in + 1 if biases else fan_in
            np.testing.assert_allclose(
                np.linalg.norm(dw[:rows], axis=0), np.linalg.norm(w[:rows], axis=0), rtol=1e-12
            )
            if not biases:
                assert not dw[-1].any()  # biases get no direction
            # Each neuron's direction points where the raw one did: only its length changed.
            raw = direction[at : at + size].reshape(fan_in + 1, fan_out)[:rows]
            cosine = np.sum(raw * dw[:rows], axis=0) / (
                np.linalg.norm(raw, axis=0) * np.linalg.norm(dw[:rows], axis=0)
            )
            np.testing.assert_allclose(cosine, 1.0, rtol=1e-12)
            at += size


def test_the_plane_of_a_path_in_two_parameters_holds_all_of_it() -> None:
    path = np.random.default_rng(2).normal(size=(30, 2))
    axes, coords, explained = trajectory_plane(path, path[-1])
    assert explained == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(coords @ axes, path - path[-1], atol=1e-12)
    assert (coords[0] >= 0).all()  # signed so that θ₀ lies on the positive side


def test_the_plane_explains_the_share_of_the_squared_length_it_holds() -> None:
    rng = np.random.default_rng(4)
    path = np.zeros((50, 6))
    path[:, 0] = np.linspace(5, 0, 50)  # a long walk along one axis
    path[:, 1] = np.sin(np.arange(50)) * 0.5  # a zig-zag across it
    path[:, 2:] = 0.01 * rng.normal(size=(50, 4))  # and a little of everything else
    path[-1] = 0.0
    axes, coords, explained = trajectory_plane(path, path[-1])
    M = path - path[-1]
    assert explained == pytest.approx(np.sum(coords**2) / np.sum(M**2), rel=1e-12)
    assert 0.99 < explained < 1.0
    assert abs(axes[0, 0]) > 0.99  # the long walk is the first direction


def test_path_epochs_keep_the_first_and_last_and_at_most_the_points_asked() -> None:
    assert path_epochs(10, 100).tolist() == list(range(11))
    kept = path_epochs(20_000, 1000)
    assert kept[0] == 0 and kept[-1] == 20_000 and len(kept) <= 1000
    assert (np.diff(kept) > 0).all()


@pytest.mark.parametrize("numerics", ["portable", "blas"])
def test_the_evaluator_gives_the_sse_of_plain_numpy(
    moons: tuple[np.ndarray, np.ndarray], numerics: str
) -> None:
    X, Y = moons
    sizes = [2, 6, 1]
    thetas = np.random.default_rng(5).normal(size=(9, 25))
    got = Evaluator(X, Y, sizes, "tanh", numerics)(thetas)
    want = [plain_sse(theta, X, Y, sizes) for theta in thetas]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_each_slice_matches_plain_numpy_at_its_points(
    moons: tuple[np.ndarray, np.ndarray],
) -> None:
    X, Y = moons
    sizes = [2, 6, 1]
    rng = np.random.default_rng(6)
    path = np.cumsum(0.05 * rng.normal(size=(40, 25)), axis=0)
    epochs = np.arange(40)
    evaluate = Evaluator(X, Y, sizes, "tanh")
    path_sse = evaluate(path)
    raw = rng.normal(size=(2, 25))
    values, vectors = sharpest_directions(path[-1:], X, Y, sizes, "tanh", 1 / len(X))
    settings = LandscapeSettings(resolution=7, span=0.8, sharpest_span=0.3)
    drawn = landscape(
        path[0], path, epochs, path_sse, raw, (values[0], vectors[0]), sizes, evaluate,
        settings, 1 / len(X),
    )  # fmt: skip
    final = path[-1]
    rows = {kind: drawn.kind == kind.value for kind in Slice}
    # The line: (1 − α)·θ₀ + α·θ_T.
    for x, sse in zip(drawn.x[rows[Slice.LINE]], drawn.sse[rows[Slice.LINE]], strict=True):
        theta = (1 - x) * path[0] + x * final
        assert sse == pytest.approx(plain_sse(theta, X, Y, sizes), rel=1e-12)
    # The random slice: the filter-normalised directions, normalised again here by hand.
    axes = []
    for d in raw:
        out, at = np.zeros_like(d), 0
        for fan_in, fan_out in itertools.pairwise(sizes):
            size = (fan_in + 1) * fan_out
            block, weights = d[at : at + size].reshape(fan_in + 1, fan_out), final[at : at + size]
            weights = weights.reshape(fan_in + 1, fan_out)
            scaled = (
                block[:-1]
                / np.linalg.norm(block[:-1], axis=0)
                * np.linalg.norm(weights[:-1], axis=0)
            )
            out[at : at + size] = np.vstack([scaled, np.zeros(fan_out)]).ravel()
            at += size
        axes.append(out)
    picked = np.flatnonzero(rows[Slice.RANDOM])[::5]
    for i in picked:
        theta = final + drawn.x[i] * axes[0] + drawn.y[i] * axes[1]
        assert drawn.sse[i] == pytest.approx(plain_sse(theta, X, Y, sizes), rel=1e-12)
    # The plane: the top two right singular vectors of the path's differences, by numpy here.
    _, _, vt = np.linalg.svd(path - final)
    for i in np.flatnonzero(rows[Slice.PLANE])[::6]:
        point = drawn.x[i] * vt[0] * np.sign(vt[0] @ (path[0] - final))
        point += drawn.y[i] * vt[1] * np.sign(vt[1] @ (path[0] - final))
        assert drawn.sse[i] == pytest.approx(plain_sse(final + point, X, Y, sizes), rel=1e-10)
    assert drawn.explained == pytest.approx(
        np.sum(np.linalg.svd(path - final, compute_uv=False)[:2] ** 2)
        / np.sum((path - final) ** 2),
        rel=1e-12,
    )
    path_rows = rows[Slice.PATH]
    assert drawn.epoch[path_rows].tolist() == epochs.tolist()
    np.testing.assert_array_equal(drawn.sse[path_rows], path_sse)
    # The sharpest direction: the top eigenvector of a Hessian built here by central differences
    # of the SSE, up to its sign.
    P, h = final.size, 1e-4
    H = np.empty((P, P))
    for i in range(P):
        for j in range(P):
            e_i, e_j = np.eye(P)[i] * h, np.eye(P)[j] * h
            H[i, j] = (
                plain_sse(final + e_i + e_j, X, Y, sizes)
                - plain_sse(final + e_i - e_j, X, Y, sizes)
                - plain_sse(final - e_i + e_j, X, Y, sizes)
                + plain_sse(final - e_i - e_j, X, Y, sizes)
            ) / (4 * h * h)
    eigenvalues, eigenvectors = np.linalg.eigh(H / len(X))
    assert drawn.sharpness == pytest.approx(eigenvalues[-1], rel=1e-3)
    top = eigenvectors[:, -1] * np.sign(eigenvectors[:, -1] @ vectors[0])
    for x, sse in zip(drawn.x[rows[Slice.SHARPEST]], drawn.sse[rows[Slice.SHARPEST]], strict=True):
        assert sse == pytest.approx(plain_sse(final + x * top, X, Y, sizes), rel=1e-3)


def test_every_grid_gives_the_final_sse_exactly_at_its_origin(
    moons: tuple[np.ndarray, np.ndarray],
) -> None:
    X, Y = moons
    sizes = [2, 6, 1]
    rng = np.random.default_rng(7)
    path = np.cumsum(0.05 * rng.normal(size=(12, 25)), axis=0)
    evaluate = Evaluator(X, Y, sizes, "tanh")
    path_sse = evaluate(path)
    values, vectors = sharpest_directions(path[-1:], X, Y, sizes, "tanh", 1 / len(X))
    drawn = landscape(
        path[0], path, np.arange(12), path_sse, rng.normal(size=(2, 25)),
        (values[0], vectors[0]), sizes, evaluate, LandscapeSettings(resolution=9), 1 / len(X),
    )  # fmt: skip
    origin = (drawn.x == 0) & ((drawn.y == 0) | np.isnan(drawn.y))
    for kind in (Slice.RANDOM, Slice.PLANE, Slice.SHARPEST, Slice.LINE):
        at = origin & (drawn.kind == kind.value)
        want = path_sse[0] if kind is Slice.LINE else path_sse[-1]
        assert drawn.sse[at].tolist() == [want], kind  # bit for bit
    line_end = (drawn.kind == Slice.LINE.value) & (drawn.x == 1)
    assert drawn.sse[line_end].tolist() == [path_sse[-1]]


@pytest.mark.parametrize("numerics", ["portable", "blas"])
def test_a_grid_evaluated_a_few_points_at_a_time_equals_it_evaluated_whole(
    moons: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch, numerics: str
) -> None:
    from gdsearch.mlp import landscape as module

    X, Y = moons
    sizes = [2, 6, 1]
    rng = np.random.default_rng(8)
    path = np.cumsum(0.05 * rng.normal(size=(12, 25)), axis=0)
    evaluate = Evaluator(X, Y, sizes, "tanh", numerics)
    values, vectors = sharpest_directions(path[-1:], X, Y, sizes, "tanh", 1 / len(X))
    args = (
        path[0], path, np.arange(12), evaluate(path), rng.normal(size=(2, 25)),
        (values[0], vectors[0]), sizes, evaluate, LandscapeSettings(resolution=7), 1 / len(X),
    )  # fmt: skip
    whole = landscape(*args)
    calls: list[int] = []

    def counted(thetas: np.ndarray) -> np.ndarray:
        calls.append(len(thetas))
        return evaluate(thetas)

    monkeypatch.setattr(module, "GRID_ELEMENTS", 3 * 25)  # 3 points a batch: 49 = 16·3 + 1
    batched = landscape(*args[:7], counted, *args[8:])
    assert calls == [
        9,
        *[3] * 16,
        1,
        *[3] * 16,
        1,
        7,
    ]  # line (with 0 and 1), random, plane, sharpest
    for field in ("kind", "x", "y", "epoch", "sse"):
        np.testing.assert_array_equal(getattr(batched, field), getattr(whole, field))


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"resolution": 50}, "`resolution` must be an odd integer >= 3, but got 50"),
        ({"resolution": 1}, "`resolution`"),
        ({"span": 0.0}, "`span` must be a number > 0, but got 0.0"),
        ({"sharpest_span": float("nan")}, "`sharpest_span`"),
        ({"line": (0.2, 1.5)}, "`line` must be [low, high] with low <= 0 and high >= 1"),
        ({"margin": -1.0}, "`margin` must be a number >= 0, but got -1.0"),
        ({"path_points": 1}, "`path_points` must be an integer >= 2, but got 1"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting_and_value(
    settings: dict[str, object], named: str
) -> None:
    with pytest.raises(InputError) as caught:
        LandscapeSettings(**settings)  # type: ignore[arg-type]
    assert named in str(caught.value)
