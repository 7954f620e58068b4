"""tanh from +, −, ×, ÷ and exact operations, so that it gives the same bits on every machine.

``np.tanh`` runs whichever SIMD kernel numpy picks for the CPU (AVX-512, AVX2, baseline), and
the kernels differ in the last bits; near a critical learning rate such a bit decides whether a
trial converges. Every operation here is one IEEE 754 operation, correctly rounded on any CPU
and at any SIMD width (numpy never fuses two of them into one multiply-add): +, −, ×, ÷ and the
exact ones (``abs``, ``minimum``, ``rint``, ``ldexp``, ``copysign``).

The method is FreeBSD's (fdlibm ``e_exp.c``), batched: with y = 2|x| ≤ 40,

1. k = rint(y / ln 2) and r = y − k·ln 2, ln 2 in two parts so that k·``LN2_HI`` is exact;
   |r| ≤ ln 2 / 2;
2. e^r − 1 = r + r·c / (2 − c), c = r − r²·P(r²), P of degree 4 (the Remez coefficients
   ``EXP_P``, error below 2⁻⁵⁹ on that interval);
3. t = e^y − 1 = (2^k − 1) + 2^k·(e^r − 1), two exact scalings and one rounding;
4. tanh |x| = t / (t + 2), and the sign of x.

There is no cancellation to speak of: at small |x|, k = 0 and t is e^r − 1 itself. The error
is below ``MAX_ULP`` units in the last place: on 10⁷ points from subnormal to saturated values,
the worst, checked at 120 bits, is 2.3 ulp (near |x| = 0.2, where k turns 1), within 3 ulp of
``np.tanh``, and three results in four equal np.tanh's, bit for bit (tests/unit/test_numerics.py).
tanh(±0) = ±0, tanh(±inf) = ±1 and NaN stays NaN.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray

LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits: k·LN2_HI is exact for |k| < 2**20
LN2_LO = 1.90821492927058770002e-10  # ln 2 − LN2_HI
INV_LN2 = 1.44269504088896338700e00
EXP_P = (
    1.66666666666666019037e-01,
    -2.77777777770155933842e-03,
    6.61375632143793436117e-05,
    -1.65339022054652515390e-06,
    4.13813679705723846039e-08,
)
"""P(z) = P1 + P2·z + … + P5·z⁴: r·(e^r + 1)/(e^r − 1) ≈ 2 + r²·P(r²) on |r| ≤ ln 2 / 2."""
SATURATION = 40.0
"""y = 2|x| is capped here: tanh(20) rounds to 1, and e^40 is far from overflow."""
MAX_ULP = 2.5
"""A bound on the error, in units in the last place of the exact value (2.3 measured)."""


def tanh(x: Array, out: Array | None = None) -> Array:
    """tanh x, elementwise, the same bits on every CPU (within ``MAX_ULP`` of the exact value)."""
    x = np.asarray(x, dtype=np.float64)
    y, high, r, spare = scratch(x.shape, 4)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN's k below is garbage, unused
        np.abs(x, out=y)
        y *= 2.0
        np.minimum(y, SATURATION, out=y)  # NaN stays NaN
        k = np.multiply(y, INV_LN2, out=spare)
        np.rint(k, out=k)
        exponent = k.astype(np.int32)  # int32: ldexp is slow with int64
        np.multiply(k, LN2_HI, out=high)
        np.subtract(y, high, out=high)  # exact: k·LN2_HI is exact and close to y
        np.multiply(k, LN2_LO, out=y)
        np.subtract(high, y, out=r)  # r = y − k·ln 2, |r| ≤ ln 2 / 2
        t = _expm1_reduced(r, z=y, c=spare)  # e^r − 1
        scale = np.ldexp(1.0, exponent, out=high)  # 2^k, exact
        t *= scale
        scale -= 1.0
        t += scale  # e^y − 1 = (2^k − 1) + 2^k·(e^r − 1), one rounding
        denominator = np.add(t, 2.0, out=r)
        np.copysign(t, x, out=t)  # before out is written: out may be x
        return np.divide(t, denominator, out=out)


def _expm1_reduced(r: Array, z: Array, c: Array) -> Array:
    """e^r − 1 for |r| ≤ ln 2 / 2, as r + r·c / (2 − c), written into ``z``; ``c`` is scratch."""
    np.multiply(r, r, out=z)
    p1, p2, p3, p4, p5 = EXP_P
    np.multiply(z, p5, out=c)
    for coefficient in (p4, p3, p2, p1):  # Horner
        c += coefficient
        c *= z
    np.subtract(r, c, out=c)  # c = r − r²·P(r²)
    np.multiply(r, c, out=z)  # r·c
    np.subtract(2.0, c, out=c)
    np.divide(z, c, out=z)
    z += r
    return z


class _Buffers:
    """Scratch arrays by shape, kept for reuse: training calls with the same shapes every epoch,
    and a fresh array of a few hundred kilobytes costs more than the arithmetic on it."""

    def __init__(self, shapes: int = 8) -> None:
        self.shapes = shapes
        self.kept: dict[tuple[int, ...], list[Array]] = {}

    def get(self, shape: tuple[int, ...], count: int) -> list[Array]:
        arrays = self.kept.pop(shape, None)
        if arrays is None or len(arrays) < count:
            arrays = [np.empty(shape) for _ in range(count)]
        self.kept[shape] = arrays  # the most recent last
        while len(self.kept) > self.shapes:
            del self.kept[next(iter(self.kept))]
        return arrays[:count]


_BUFFERS = _Buffers()


def scratch(shape: tuple[int, ...], count: int) -> list[Array]:
    """``count`` float64 arrays of this shape, of undefined contents, to be used up before the
    next call: the same arrays come back for the same shape."""
    return _BUFFERS.get(tuple(shape), count)
