"""tanh from +, −, ×, ÷ in compiled code: :func:`gdsearch.mlp.elementary.tanh`, one value at a
time, the same operations in the same order, and the hidden activations built on it.

numpy's ``np.rint`` and ``np.ldexp`` are exact, but compiled they may become calls into the C
library (on a CPU without SSE4.1's rounding instruction, for one); here they are bit operations
on the value (:func:`_round_half_even`, :func:`_two_to`), as is ``np.copysign``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from gdsearch.mlp.elementary import EXP_P, INV_LN2, LN2_HI, LN2_LO, SATURATION
from gdsearch.mlp.kernel.jit import compiled, inlined, typed

TANH, SIGMOID, RELU, IDENTITY = range(4)
ACTIVATION_CODES = {"tanh": TANH, "sigmoid": SIGMOID, "relu": RELU, "identity": IDENTITY}
"""The hidden activations by name, as the kernel numbers them."""

_ROUND = 6755399441055744.0  # 1.5 × 2^52: (v + _ROUND) − _ROUND rounds v to an integer
_ROUND_BITS = 0x4338000000000000  # the bits of _ROUND
_EXPONENT_BIAS = 1023
_SIGN_BIT = -(2**63)  # an int64 with the sign bit alone set
_MAGNITUDE_BITS = 2**63 - 1
P1, P2, P3, P4, P5 = EXP_P


def _bits_of(x: float) -> int:
    """The bits of a float64 as an int64 (a reinterpretation, no arithmetic)."""
    raise NotImplementedError  # compiled code only


@typed(_bits_of)
@intrinsic
def _bits(typingctx: Any, x: Any) -> Any:
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


def _float_of(bits: int) -> float:
    """The float64 whose bits are this int64."""
    raise NotImplementedError  # compiled code only


@typed(_float_of)
@intrinsic
def _from_bits(typingctx: Any, x: Any) -> Any:
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@inlined
def _round_half_even(v: float) -> float:
    """np.rint(v) for 0 ≤ v < 2^51: adding 1.5 × 2^52 leaves no fraction bits to round in."""
    return (v + _ROUND) - _ROUND


@inlined
def _two_to(k: float) -> float:
    """2^k, exact, for an integer-valued k in [0, 64] (np.ldexp(1.0, k)), built from its bits."""
    exponent = _bits(k + _ROUND) - _ROUND_BITS  # the integer k, from the low bits
    return _from_bits((exponent + _EXPONENT_BIAS) << 52)


@inlined
def _copysign(magnitude: float, sign: float) -> float:
    """np.copysign: the magnitude's bits with the sign bit of ``sign``."""
    return _from_bits((_bits(magnitude) & _MAGNITUDE_BITS) | (_bits(sign) & _SIGN_BIT))


@compiled
def tanh(x: float) -> float:
    """elementary.tanh of one value."""
    y = abs(x) * 2.0
    if y > SATURATION:  # np.minimum(y, SATURATION): NaN stays NaN
        y = SATURATION
    k = _round_half_even(y * INV_LN2)
    high = y - k * LN2_HI  # exact
    r = high - k * LN2_LO  # r = y − k·ln 2, |r| ≤ ln 2 / 2
    z = r * r  # e^r − 1 = r + r·c / (2 − c), c = r − r²·P(r²) (elementary._expm1_reduced)
    c = z * P5
    c = (c + P4) * z
    c = (c + P3) * z
    c = (c + P2) * z
    c = (c + P1) * z
    c = r - c
    expm1 = (r * c) / (2.0 - c) + r
    scale = _two_to(k)
    t = expm1 * scale + (scale - 1.0)  # e^y − 1 = (2^k − 1) + 2^k·(e^r − 1)
    return _copysign(t, x) / (t + 2.0)


@inlined
def activate(z: np.ndarray, row: int, rows: int, n: int, code: int) -> None:
    """z[row : row + rows, :n] ← f(z[row : row + rows, :n]) for the hidden activation ``code``
    (activations.py; one loop per activation, so that each vectorises)."""
    for r in range(row, row + rows):
        v = z[r]
        if code == TANH:
            for s in range(n):
                v[s] = tanh(v[s])
        elif code == SIGMOID:  # (1 + tanh(z/2)) / 2
            for s in range(n):
                v[s] = (tanh(v[s] * 0.5) + 1.0) * 0.5
        elif code == RELU:  # np.maximum(z, 0.0): NaN stays NaN, −0 gives +0
            for s in range(n):
                v[s] = v[s] if (v[s] > 0.0 or v[s] != v[s]) else 0.0


@inlined
def backprop(a: np.ndarray, grad: np.ndarray, row: int, rows: int, n: int, code: int) -> None:
    """grad[row : row + rows, :n] ← grad·f'(z), f'(z) in terms of the activation's output
    a = f(z), as activations.DERIVATIVES multiplies."""
    for r in range(row, row + rows):
        x, g = a[r], grad[r]
        if code == TANH:
            for s in range(n):
                g[s] *= 1.0 - x[s] * x[s]
        elif code == SIGMOID:
            for s in range(n):
                g[s] *= (1.0 - x[s]) * x[s]
        elif code == RELU:
            for s in range(n):
                g[s] *= 1.0 if x[s] > 0.0 else 0.0
