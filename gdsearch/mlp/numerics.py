"""How training computes its products and functions: portably (the default), or through BLAS.

A trial's history is decided by the last bits of its arithmetic when its learning rate is near
critical, so it must not depend on the machine that trains it. Two things make it do so: BLAS
(OpenBLAS picks a kernel per CPU, and kernels sum in other orders and fuse multiply-adds), and
numpy's own SIMD dispatch (``np.tanh`` gives other last bits on AVX-512, AVX2 and baseline
code). Each path here is a table of the few operations training needs:

``"portable"`` (the default) gives the same bits on every machine. A contraction over a short
dimension (the inputs of a layer) is a sequence of elementwise products and sums in a fixed
order; one over the samples sums the products along each row with ``np.add.reduce``, whose
order numpy fixes in C (pairwise, eight interleaved partial sums that the compiler vectorizes
without reordering; see ``_pairwise``) — checked once per process against ``_pairwise``, the
same order written out elementwise, which is used instead should a numpy ever sum otherwise.
tanh and the sigmoid come from :mod:`gdsearch.mlp.elementary`. Every step is one IEEE 754
operation, correctly rounded at any SIMD width, and numpy never fuses two into one multiply-add.

``"blas"``: numpy's ``matmul`` (BLAS) and ``np.tanh``: faster, by far for wide layers, and the
arithmetic of gdsearch before the portable path, whose histories it reproduces bit for bit; the
last bits follow the machine.

A result set records each trial's :func:`fingerprint`, so that a resumed run can tell whether
its numbers would be comparable with the stored ones (:mod:`gdsearch.results.manifest`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdsearch.errors import InputError
from gdsearch.mlp.activations import ACTIVATIONS, PORTABLE_ACTIVATIONS, Activation
from gdsearch.mlp.elementary import scratch

Array = np.ndarray

PORTABLE_VERSION = 1
"""The version of the portable algorithms: any change that moves a bit of a portable result
bumps it, so that result sets computed before and after do not pass for one another."""


@dataclass(frozen=True)
class Numerics:
    """One path's operations.

    Attributes:
        name: ``"portable"`` or ``"blas"``.
        matmul: ``matmul(a, b, out)``: out = a @ b, over the last two axes (broadcast before).
        matmul_nt: ``matmul_nt(a, b, out)``: out = a @ bᵀ, a sum over the shared last axis.
        row_sum: ``row_sum(x, out=None)``: the sums over the last axis.
        activations: the hidden activations by name.
    """

    name: str
    matmul: Callable[[Array, Array, Array], Array]
    matmul_nt: Callable[[Array, Array, Array], Array]
    row_sum: Callable[..., Array]
    activations: dict[str, Activation]


# --- the portable path: every sum in a fixed order -----------------------------------------


def _fixed_matmul(a: Array, b: Array, out: Array) -> Array:
    """a @ b, (…, m, p) @ (…, p, q), the p products of each output summed in order 0 … p − 1."""
    np.multiply(a[..., :, :1], b[..., :1, :], out=out)
    (product,) = scratch(out.shape, 1)
    for j in range(1, a.shape[-1]):
        np.multiply(a[..., :, j : j + 1], b[..., j : j + 1, :], out=product)
        out += product
    return out


def _fixed_matmul_nt(a: Array, b: Array, out: Array) -> Array:
    """a @ bᵀ, (…, m, n) with (…, q, n) → (…, m, q): each output's n products summed by
    :func:`_row_sum`, one column (or row) of the output at a time, whichever are fewer."""
    (m, n), q = a.shape[-2:], b.shape[-2]
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if q <= m:
        (product,) = scratch((*lead, m, n), 1)
        for j in range(q):
            _row_sum(np.multiply(a, b[..., j : j + 1, :], out=product), out=out[..., :, j])
    else:
        (product,) = scratch((*lead, q, n), 1)
        for i in range(m):
            _row_sum(np.multiply(a[..., i : i + 1, :], b, out=product), out=out[..., i, :])
    return out


def _pairwise(x: Array) -> Array:
    """The sums over the last axis in numpy's pairwise order, written out elementwise.

    numpy (``DOUBLE_pairwise_sum`` in ``loops_utils.h.src``): fewer than 8 values in turn,
    from −0; up to 128 in eight interleaved partial sums r₀…r₇ (rⱼ takes values j, j + 8, …)
    joined as ((r₀ + r₁) + (r₂ + r₃)) + ((r₄ + r₅) + (r₆ + r₇)), the values past the last
    multiple of 8 then added in turn; more split at n/2 rounded down to a multiple of 8.
    """
    n = x.shape[-1]
    if n < 8:
        total = np.full(x.shape[:-1], -0.0)
        for i in range(n):
            total = total + x[..., i]
        return total
    if n <= 128:
        lanes = x[..., :8].copy()
        whole = n - n % 8
        for start in range(8, whole, 8):
            lanes += x[..., start : start + 8]
        r = [lanes[..., j] for j in range(8)]
        total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for i in range(whole, n):
            total = total + x[..., i]
        return total
    half = n // 2
    half -= half % 8
    return _pairwise(x[..., :half]) + _pairwise(x[..., half:])


@functools.cache
def _numpy_sums_pairwise() -> bool:
    """Whether ``np.add.reduce`` sums rows in :func:`_pairwise`'s order, on values whose sum
    changes with the order, at lengths that take each of its branches."""
    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 9, 15, 17, 127, 128, 129, 200, 257, 1000, 4099):
        x = rng.normal(size=(3, n)) * np.exp2(rng.integers(-30, 30, size=(3, n)))
        if not np.array_equal(np.add.reduce(x, axis=-1), _pairwise(x)):
            return False
    return True


def _row_sum(x: Array, out: Array | None = None) -> Array:
    """The sums over the last axis in numpy's pairwise order, by numpy where it sums so."""
    if _numpy_sums_pairwise():
        return np.add.reduce(x, axis=-1, out=out)
    if out is None:
        return _pairwise(x)
    out[...] = _pairwise(x)
    return out


# --- the BLAS path: numpy's matmul and its own reductions ----------------------------------


def _blas_matmul(a: Array, b: Array, out: Array) -> Array:
    return np.matmul(a, b, out=out)


def _blas_matmul_nt(a: Array, b: Array, out: Array) -> Array:
    return np.matmul(a, np.swapaxes(b, -1, -2), out=out)


def _blas_row_sum(x: Array, out: Array | None = None) -> Array:
    return x.sum(axis=-1, out=out)


NUMERICS: dict[str, Numerics] = {
    "portable": Numerics("portable", _fixed_matmul, _fixed_matmul_nt, _row_sum,
                         PORTABLE_ACTIVATIONS),
    "blas": Numerics("blas", _blas_matmul, _blas_matmul_nt, _blas_row_sum, ACTIVATIONS),
}  # fmt: skip
"""The paths by name, the default first."""
DEFAULT_NUMERICS = "portable"


def check_numerics(name: str) -> str:
    """Return ``name`` if it is a path of :data:`NUMERICS`, else raise an error listing them."""
    if name not in NUMERICS:
        raise InputError(f"unknown numerics {name!r}; valid: {', '.join(NUMERICS)}")
    return name


# --- fingerprints: what the numbers of a path depend on, here ------------------------------


def fingerprint(name: str) -> dict[str, Any]:
    """What the numbers of path ``name`` depend on, on this machine.

    The portable path: its own version, and nothing of the machine's (unless the process
    flushes subnormal numbers to zero, which some libraries switch on for the whole process:
    then ``"subnormals": "flushed"``). The BLAS path: numpy's version, the BLAS library, its
    version and the kernel it chose, and numpy's SIMD targets in use.
    """
    check_numerics(name)
    if name == "portable":
        found: dict[str, Any] = {"path": "portable", "version": PORTABLE_VERSION}
        if not _subnormals_kept():
            found["subnormals"] = "flushed"
        return found
    return {
        "path": "blas",
        "numpy": np.__version__,
        "blas": _blas_kernels(),
        "simd": _numpy_simd(),
    }


def label(fingerprint: dict[str, Any]) -> str:
    """A fingerprint as one short line, as the trials table records it."""
    rest = [
        f"{k} {' '.join(v) if isinstance(v, list) else v}"
        for k, v in fingerprint.items()
        if k != "path"
    ]
    return "; ".join([str(fingerprint.get("path")), *rest])


@functools.cache
def machine_label(name: str) -> str:
    """:func:`label` of path ``name``'s fingerprint in this process (found once)."""
    return label(fingerprint(name))


def _subnormals_kept() -> bool:
    """False where the CPU flushes subnormal results (or inputs) to zero in this process."""
    tiny = np.array([2.2250738585072014e-308])  # the smallest normal number
    return bool((tiny * 0.5)[0] > 0.0 and (tiny * 0.5 * 2.0)[0] == tiny[0])


def _blas_kernels() -> list[str]:
    """Each BLAS library numpy loaded: name, version and the kernel it chose."""
    from threadpoolctl import threadpool_info

    return sorted(
        " ".join(str(info.get(k)) for k in ("internal_api", "version", "architecture"))
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    )


def _numpy_simd() -> list[str]:
    """numpy's optional SIMD targets that this CPU has and this process uses."""
    import importlib

    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # 2.x, 1.x
        try:
            umath = importlib.import_module(module)
        except ImportError:
            continue
        features = getattr(umath, "__cpu_features__", {})
        return [t for t in getattr(umath, "__cpu_dispatch__", []) if features.get(t)]
    return ["unknown"]
