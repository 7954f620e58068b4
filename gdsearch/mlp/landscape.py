"""The SSE as a function of the weights around a trained network, and the descent drawn on it.

For a trial trained from θ₀ to θ_T through the weights θ_t of every epoch, :func:`landscape`
evaluates the SSE on four kinds of slice (:class:`Slice`) through weight space:

1. the **line** θ(α) = (1 − α)·θ₀ + α·θ_T (Goodfellow et al., ICLR 2015), α from
   ``line[0]`` to ``line[1]`` (−0.5 to 1.5): a monotone fall, or a barrier on the way;
2. a **random** 2-D slice θ_T + a·d₁ + b·d₂ along two Gaussian directions, each normalised per
   neuron to the norm of that neuron's incoming weights (the "filter normalisation" of Li et
   al., "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018), so that slices of
   networks with weights of different scales compare; biases get no direction unless asked
   (then a neuron's bias is normalised with its weights);
3. the **plane** of the path: the top two principal directions of {θ_t − θ_T} (Li et al.'s
   trajectory plot), the path projected onto it (:attr:`Slice.PATH`), the SSE on a grid over
   it, and the share of the path's squared length that the plane holds;
4. the **sharpest** direction: θ_T + t·v along the top Hessian eigenvector v of the loss
   (unit length), whose curvature is the sharpness λ: gradient descent at rate lr is stable
   along v while λ < 2/lr.

Every grid holds its origin exactly: the line's α = 0 and 1 are θ₀ and θ_T bit for bit, and
each 2-D grid's (0, 0) and the sharpest profile's 0 are θ_T, so they give exactly the SSE the
trial's history holds there. The SSE is computed as training measures it (the compiled kernel's
forward pass on the portable path, the same bits as the numpy path), many weight vectors at a
time.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gdsearch.errors import InputError
from gdsearch.mlp import compiled
from gdsearch.mlp.network import Workspace, forward, residual_sse, unflatten, with_ones_t
from gdsearch.mlp.numerics import DEFAULT_NUMERICS
from gdsearch.mlp.sharpness import SharpnessMeter

EVALUATION_ELEMENTS = 1 << 18
"""The numpy path evaluates weight vectors in batches of about this many activation values."""

GRID_ELEMENTS = 1 << 21
"""A grid's weight vectors are built and evaluated this many numbers at a time (16 MiB): at 501²
points, a network of 4,417 weights (2-64-64-1) would otherwise hold 8.9 GB of them at once."""


MAX_RESOLUTION = 501
MAX_SPAN = 100.0
MAX_LINE = 100.0
MAX_MARGIN = 10.0
MAX_PATH_POINTS = 100_000
"""The largest settings a landscape takes (a grid of 501² points is 251,001 forward passes)."""


class Slice(str, enum.Enum):
    """The kinds of rows of a landscape table."""

    LINE = "line"
    RANDOM = "random"
    PLANE = "plane"
    PATH = "path"
    SHARPEST = "sharpest"


@dataclass(frozen=True)
class LandscapeSettings:
    """How finely and how far each slice is drawn.

    Attributes:
        resolution: points along each axis of every grid (odd, so that the middle of a
            centred axis is its origin).
        span: the random slice's half-width, in filter-normalised units (1: as far again as
            each neuron's weights are long).
        line: the line's ends, in α (0 at θ₀, 1 at θ_T).
        biases: give biases a direction in the random slice too.
        sharpest_span: the sharpest direction's half-width, in units of weight (v has length 1).
        margin: the plane's grid reaches this share of the path's extent beyond it on every side.
        path_points: the path keeps at most this many epochs, evenly spaced, the first and the
            last always.
    """

    resolution: int = 51
    span: float = 1.0
    line: tuple[float, float] = (-0.5, 1.5)
    biases: bool = False
    sharpest_span: float = 0.5
    margin: float = 0.25
    path_points: int = 1000

    def __post_init__(self) -> None:
        if not (isinstance(self.resolution, int) and self.resolution >= 3 and self.resolution % 2):
            raise InputError(
                f"`resolution` must be an odd integer >= 3, but got {self.resolution!r}"
            )
        if self.resolution > MAX_RESOLUTION:
            raise InputError(
                f"`resolution` must be at most {MAX_RESOLUTION}, but got {self.resolution!r}"
            )
        for name in ("span", "sharpest_span"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"`{name}` must be a number > 0, but got {value!r}")
            if value > MAX_SPAN:
                raise InputError(f"`{name}` must be at most {MAX_SPAN:g}, but got {value!r}")
        low, high = self.line
        if not (np.isfinite(low) and np.isfinite(high) and low <= 0 and high >= 1):
            raise InputError(
                "`line` must be [low, high] with low <= 0 and high >= 1, "
                f"but got {list(self.line)}"
            )
        if not (low >= -MAX_LINE and high <= MAX_LINE):
            raise InputError(
                f"`line` must lie within [-{MAX_LINE:g}, {MAX_LINE:g}], but got {list(self.line)}"
            )
        if not (np.isfinite(self.margin) and self.margin >= 0):
            raise InputError(f"`margin` must be a number >= 0, but got {self.margin!r}")
        if not (isinstance(self.path_points, int) and self.path_points >= 2):
            raise InputError(
                f"`path_points` must be an integer >= 2, but got {self.path_points!r}"
            )
        for name, most in (("margin", MAX_MARGIN), ("path_points", MAX_PATH_POINTS)):
            if getattr(self, name) > most:
                raise InputError(
                    f"`{name}` must be at most {most:g}, but got {getattr(self, name)!r}"
                )


@dataclass
class Landscape:
    """One trial's slices: rows of (kind, x, y, epoch, sse), and what describes them.

    Attributes:
        kind: (R,) the :class:`Slice` of each row, by value.
        x, y: (R,) its coordinates (α on the line, t along the sharpest direction; y is NaN on
            a 1-D slice).
        epoch: (R,) the epoch of a path row, -1 elsewhere.
        sse: (R,) the SSE there (a path row: the SSE training measured at that epoch).
        explained: the share of the path's squared length in the plane (1 for a path that
            never leaves it).
        sharpness: λ, the top Hessian eigenvalue of the loss at θ_T, measured for the
            sharpest direction (the curvature of ``scale`` · SSE along it, plus weight decay).
        scale: s of the loss s·SSE whose curvature λ is (1/n for ``grad_scale = "mean"``).
    """

    kind: np.ndarray
    x: np.ndarray
    y: np.ndarray
    epoch: np.ndarray
    sse: np.ndarray
    explained: float
    sharpness: float
    scale: float


class Evaluator:
    """The SSE of many weight vectors (K, P) of one geometry on the same samples, computed as
    training measures it: the compiled kernel on the portable path where it runs, else numpy.

    Args:
        X: inputs, (n, d).
        Y: targets, (n, k).
        sizes: layer widths, input first.
        activation: hidden activation name.
        numerics: the trials' numerics (``"portable"`` or ``"blas"``).
    """

    def __init__(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        sizes: Sequence[int],
        activation: str,
        numerics: str = DEFAULT_NUMERICS,
    ) -> None:
        self.X1_t, self.Y_t = with_ones_t(X), np.ascontiguousarray(Y.T)
        self.sizes, self.activation, self.numerics = list(sizes), activation, numerics
        self.kernel = (
            compiled.Gradients(self.X1_t, self.Y_t, sizes, activation)
            if numerics == "portable" and compiled.available()
            else None
        )

    def __call__(self, thetas: np.ndarray) -> np.ndarray:
        """(K,) the SSE at each row of ``thetas`` (K, P)."""
        if self.kernel is not None:
            return self.kernel.sse(thetas)
        n, widest = self.X1_t.shape[1], max(self.sizes)
        chunk = max(1, EVALUATION_ELEMENTS // (n * widest))
        out = np.empty(len(thetas))
        like = [np.empty((1, a + 1, b)) for a, b in zip(self.sizes, self.sizes[1:], strict=False)]
        with np.errstate(all="ignore"):
            for start in range(0, len(thetas), chunk):
                part = thetas[start : start + chunk]
                ws = Workspace(len(part), self.X1_t, self.sizes, self.numerics)
                forward(unflatten(part, like), ws, self.activation)
                out[start : start + len(part)] = residual_sse(ws, self.Y_t)
        return out


def centred_axis(span: float, resolution: int) -> np.ndarray:
    """``resolution`` (odd) points from −span to span, the middle one exactly 0."""
    half = resolution // 2
    return span * (np.arange(resolution) - half) / half


def line_axis(low: float, high: float, resolution: int) -> np.ndarray:
    """``resolution`` points from ``low`` to ``high``, with 0 and 1 (θ₀ and θ_T) among them
    exactly (added where the even spacing misses them)."""
    alphas = np.linspace(low, high, resolution)
    return np.unique(np.concatenate([alphas, [0.0, 1.0]]))


def covering_axis(low: float, high: float, resolution: int) -> np.ndarray:
    """``resolution`` evenly spaced points covering [low, high] (low ≤ 0 ≤ high), one of them
    exactly 0: the spacing leaves one step spare, so that the grid can be shifted onto 0."""
    if high - low <= 0:
        return centred_axis(1.0, resolution)
    step = (high - low) / (resolution - 2)
    below = int(np.ceil(-low / step - 1e-12))  # points below 0
    return step * (np.arange(resolution) - below)


def filter_normalised(
    direction: np.ndarray, theta: np.ndarray, sizes: Sequence[int], biases: bool = False
) -> np.ndarray:
    """A direction (P,) scaled per neuron to the norm of that neuron's weights in ``theta``
    (P,): each neuron's incoming weights (with its bias where ``biases``) take the length of
    the same weights of θ; biases get no direction otherwise (Li et al.'s filter
    normalisation for fully connected layers). A neuron whose direction is 0 keeps 0."""
    out = np.zeros_like(direction)
    at = 0
    for fan_in, fan_out in itertools.pairwise(sizes):
        size = (fan_in + 1) * fan_out
        d = direction[at : at + size].reshape(fan_in + 1, fan_out)  # the bias row last
        w = theta[at : at + size].reshape(fan_in + 1, fan_out)
        rows = slice(None) if biases else slice(0, fan_in)
        d_norm = np.sqrt(np.sum(np.square(d[rows]), axis=0))  # (fan_out,) one per neuron
        w_norm = np.sqrt(np.sum(np.square(w[rows]), axis=0))
        factor = np.divide(w_norm, d_norm, out=np.zeros_like(w_norm), where=d_norm > 0)
        out[at : at + size].reshape(fan_in + 1, fan_out)[rows] = d[rows] * factor
        at += size
    return out


def trajectory_plane(path: np.ndarray, final: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The plane of a path (S, P) that ends at ``final`` (P,): the top two principal
    directions of {θ_t − θ_T} (uncentred, as Li et al.), the path's coordinates in it, and the
    share of Σ‖θ_t − θ_T‖² it holds.

    Returns:
        (2, P) orthonormal directions, each signed so that θ₀ lies on its positive side;
        (S, 2) the path's coordinates; the share (1 where the path has no length).
    """
    M = path - final  # (S, P)
    _, s, vt = np.linalg.svd(M, full_matrices=False)
    axes = np.zeros((2, M.shape[1]))
    axes[: min(2, len(vt))] = vt[:2]
    if len(vt) < 2:  # a path of one point: any second direction orthogonal to the first
        axes[1, int(np.argmin(np.abs(axes[0])))] = 1.0
    signs = np.where(M[0] @ axes.T < 0, -1.0, 1.0)  # (2,)
    axes *= signs[:, None]
    total = float(np.sum(np.square(s)))
    explained = float(np.sum(np.square(s[:2])) / total) if total > 0 else 1.0
    return axes, M @ axes.T, explained


def path_epochs(final_epoch: int, points: int) -> np.ndarray:
    """The epochs of a path kept: every one up to ``final_epoch`` if they are at most
    ``points``, else ``points`` of them evenly spaced, 0 and ``final_epoch`` among them."""
    if final_epoch + 1 <= points:
        return np.arange(final_epoch + 1)
    return np.unique(np.round(np.linspace(0, final_epoch, points)).astype(np.int64))


def sharpest_directions(
    finals: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    sizes: Sequence[int],
    activation: str,
    scale: float,
    weight_decay: float = 0.0,
    numerics: str = DEFAULT_NUMERICS,
) -> tuple[np.ndarray, np.ndarray]:
    """λ and the unit top eigenvector of the loss's Hessian at each of K weight vectors
    (K, P), by the sharpness meter (:mod:`gdsearch.mlp.sharpness`): (K,) and (K, P)."""
    X1_t, Y_t = with_ones_t(X), np.ascontiguousarray(Y.T)
    meter = SharpnessMeter(X1_t, Y_t, sizes, activation, scale, weight_decay, numerics)
    like = [np.empty((len(finals), a + 1, b)) for a, b in itertools.pairwise(sizes)]
    with np.errstate(all="ignore"):
        values, vectors = meter.measure(
            unflatten(np.ascontiguousarray(finals), like), meter.start(*finals.shape)
        )
    lengths = np.sqrt(np.sum(np.square(vectors), axis=1, keepdims=True))
    vectors = np.divide(vectors, lengths, out=np.zeros_like(vectors), where=lengths > 0)
    return values, vectors


def landscape(
    initial: np.ndarray,
    path: np.ndarray,
    epochs: np.ndarray,
    path_sse: np.ndarray,
    raw_directions: np.ndarray,
    sharpest: tuple[float, np.ndarray],
    sizes: Sequence[int],
    evaluate: Evaluator,
    settings: LandscapeSettings,
    scale: float,
) -> Landscape:
    """One trial's four slices (see the module's docstring).

    Args:
        initial: θ₀, (P,).
        path: θ_t at ``epochs`` (S,), the last row θ_T: (S, P).
        epochs: (S,) the epochs of ``path``.
        path_sse: (S,) the SSE training measured at those epochs.
        raw_directions: (2, P) the random slice's directions before normalisation (Gaussian
            draws from the trial's stream).
        sharpest: λ and the unit eigenvector (P,) at θ_T (:func:`sharpest_directions`).
        sizes: layer widths, input first.
        evaluate: the SSE of many weight vectors, as training measures it.
        settings: resolution and spans.
        scale: s of the loss s·SSE.
    """
    final = path[-1]
    rows: list[tuple[Slice, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []

    def grid(
        axes: np.ndarray, xs: np.ndarray, ys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, SSE) at each point θ_T + x·axes[0] + y·axes[1] of the grid xs × ys, x
        varying slowest; each point's SSE is the same whatever points share its batch."""
        a, b = np.meshgrid(xs, ys, indexing="ij")
        a, b = a.ravel(), b.ravel()
        sse = np.empty(len(a))
        batch = max(1, GRID_ELEMENTS // len(final))
        for start in range(0, len(a), batch):
            at = slice(start, start + batch)
            sse[at] = evaluate(final + (a[at, None] * axes[0] + b[at, None] * axes[1]))
        return a, b, sse

    # 1. The line from θ₀ to θ_T and beyond: (1 − α)·θ₀ + α·θ_T, exact at α = 0 and 1.
    alphas = line_axis(*settings.line, settings.resolution)
    thetas = (1.0 - alphas)[:, None] * initial + alphas[:, None] * final  # (A, P)
    rows.append((Slice.LINE, alphas, np.full_like(alphas, np.nan), evaluate(thetas), None))
    # 2. The random slice, filter-normalised at θ_T.
    axes = np.stack([filter_normalised(d, final, sizes, settings.biases) for d in raw_directions])
    coords = centred_axis(settings.span, settings.resolution)
    rows.append((Slice.RANDOM, *grid(axes, coords, coords), None))
    # 3. The plane of the path, its grid covering the path with a margin.
    plane, projected, explained = trajectory_plane(path, final)
    low, high = np.minimum(projected.min(axis=0), 0.0), np.maximum(projected.max(axis=0), 0.0)
    # Each axis spans at least a quarter of the other's extent: a path along one direction
    # (the second holds nothing) still shows the valley around it.
    extent = np.maximum(high - low, max(0.25 * float(np.max(high - low)), 1e-12))
    low, high = low - (extent - (high - low)) / 2, high + (extent - (high - low)) / 2
    room = settings.margin * extent
    xs = covering_axis(low[0] - room[0], high[0] + room[0], settings.resolution)
    ys = covering_axis(low[1] - room[1], high[1] + room[1], settings.resolution)
    rows.append((Slice.PLANE, *grid(plane, xs, ys), None))
    rows.append((Slice.PATH, projected[:, 0], projected[:, 1], path_sse, epochs))
    # 4. The sharpest direction: θ_T + t·v.
    sharpness, vector = sharpest
    ts = centred_axis(settings.sharpest_span, settings.resolution)
    thetas = final + ts[:, None] * vector
    rows.append((Slice.SHARPEST, ts, np.full_like(ts, np.nan), evaluate(thetas), None))

    return Landscape(
        kind=np.concatenate([np.full(len(r[1]), r[0].value, dtype=object) for r in rows]),
        x=np.concatenate([r[1] for r in rows]),
        y=np.concatenate([r[2] for r in rows]),
        epoch=np.concatenate(
            [r[4] if r[4] is not None else np.full(len(r[1]), -1) for r in rows]
        ).astype(np.int64),
        sse=np.concatenate([r[3] for r in rows]),
        explained=explained,
        sharpness=float(sharpness),
        scale=scale,
    )
