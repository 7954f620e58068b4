"""Eight float64 lanes as one value in compiled code: the vector the kernel computes with.

numba vectorises a loop only where its iterations are independent, so it cannot vectorise a
sum whose order is fixed, such as numpy's pairwise sum with its eight interleaved partial sums,
nor keep a running sum of eight samples in registers across a loop over a layer's inputs. This
module gives the kernel (:mod:`gdsearch.mlp.kernel`) an explicit vector of eight float64 lanes:
a numba type whose value is one LLVM ``<8 x double>``, loaded from and stored to eight
consecutive values of a row, with ``+``, ``−`` and ``×`` of two vectors or of a number and a
vector. Each operation is one IEEE 754 operation per lane (LLVM's vector instructions, no
fast-math flag), so code written with it gives, lane for lane, the bits of the same code
written one value at a time, at whatever vector width the CPU has: LLVM splits an 8-lane
operation into AVX2's or SSE2's narrower ones where it must.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

from gdsearch.mlp.kernel.jit import typed

WIDTH = 8
_VECTOR = ir.VectorType(ir.DoubleType(), WIDTH)


class Lanes(types.Type):
    """The numba type of eight float64 lanes."""

    def __init__(self) -> None:
        super().__init__(name="Lanes")


lanes = Lanes()


@register_model(Lanes)
class _LanesModel(models.PrimitiveModel):
    def __init__(self, dmm: Any, fe_type: Any) -> None:
        super().__init__(dmm, fe_type, _VECTOR)


def _is_row_array(array: Any) -> bool:
    return (
        isinstance(array, types.Array)
        and array.ndim == 2
        and array.layout == "C"
        and array.dtype == types.float64
    )


def _address(context: Any, builder: Any, array_type: Any, array: Any, row: Any, col: Any) -> Any:
    """The address of array[row, col : col + 8] in a 2-D C array, as a vector's."""
    array = context.make_array(array_type)(context, builder, array)
    width = cgutils.unpack_tuple(builder, array.shape)[1]
    at = builder.add(builder.mul(row, width), col)
    element = builder.gep(array.data, [at], source_etype=ir.DoubleType())
    return builder.bitcast(element, _VECTOR.as_pointer())


def _load(array: np.ndarray, row: int, col: int) -> Any:
    """array[row, col : col + 8] as lanes (a 2-D C float64 array; the caller keeps col + 8
    within the row)."""
    raise NotImplementedError  # compiled code only


@typed(_load)
@intrinsic
def load(typingctx: Any, array: Any, row: Any, col: Any) -> Any:
    if not _is_row_array(array):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        address = _address(context, builder, sig.args[0], *args)
        return builder.load(address, align=8)

    return lanes(array, types.intp, types.intp), codegen


def _store(array: np.ndarray, row: int, col: int, value: Any) -> None:
    """array[row, col : col + 8] = value."""
    raise NotImplementedError  # compiled code only


@typed(_store)
@intrinsic
def store(typingctx: Any, array: Any, row: Any, col: Any, value: Any) -> Any:
    if not (_is_row_array(array) and isinstance(value, Lanes)):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        address = _address(context, builder, sig.args[0], *args[:3])
        builder.store(args[3], address, align=8)
        return context.get_dummy_value()

    return types.none(array, types.intp, types.intp, value), codegen


def _splat(value: float) -> Any:
    """Eight lanes of one float64 value."""
    raise NotImplementedError  # compiled code only


@typed(_splat)
@intrinsic
def splat(typingctx: Any, value: Any) -> Any:
    if not isinstance(value, types.Float):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        value = context.cast(builder, args[0], sig.args[0], types.float64)
        vector = ir.Constant(_VECTOR, ir.Undefined)
        for k in range(WIDTH):
            vector = builder.insert_element(vector, value, ir.Constant(ir.IntType(32), k))
        return vector

    return lanes(value), codegen


def _lane(vector: Any, k: int) -> float:
    """Lane k of a vector, a float64."""
    raise NotImplementedError  # compiled code only


@typed(_lane)
@intrinsic
def lane(typingctx: Any, vector: Any, k: Any) -> Any:
    if not (isinstance(vector, Lanes) and isinstance(k, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.extract_element(args[0], args[1])

    return types.float64(vector, k), codegen


def _pair_sums(a: Any, b: Any) -> Any:
    """The sums of adjacent lanes of a, then of b: (a0 + a1, a2 + a3, a4 + a5, a6 + a7,
    b0 + b1, …, b6 + b7), each one IEEE addition: a step of a pairwise sum over the lanes."""
    raise NotImplementedError  # compiled code only


@typed(_pair_sums)
@intrinsic
def pair_sums(typingctx: Any, a: Any, b: Any) -> Any:
    if not (isinstance(a, Lanes) and isinstance(b, Lanes)):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        def picked(start: int) -> Any:
            mask = ir.Constant(
                ir.VectorType(ir.IntType(32), WIDTH), list(range(start, 2 * WIDTH, 2))
            )
            return builder.shuffle_vector(args[0], args[1], mask)

        return builder.fadd(picked(0), picked(1))

    return lanes(a, b), codegen


def _binary(operation: str) -> Any:
    @intrinsic
    def apply(typingctx: Any, a: Any, b: Any) -> Any:
        if not (isinstance(a, Lanes) and isinstance(b, Lanes)):
            return None

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return getattr(builder, operation)(*args)

        return lanes(a, b), codegen

    return apply


_add, _sub, _mul = _binary("fadd"), _binary("fsub"), _binary("fmul")


def _overload(op: Any, apply: Any) -> None:
    """``op`` on two vectors, or on a number and a vector (the number in every lane)."""

    @overload(op)
    def implement(a, b):  # type: ignore[no-untyped-def]  # numba matches the lambdas' names
        if isinstance(a, Lanes) and isinstance(b, Lanes):
            return lambda a, b: apply(a, b)
        if isinstance(a, types.Float) and isinstance(b, Lanes):
            return lambda a, b: apply(splat(a), b)
        if isinstance(a, Lanes) and isinstance(b, types.Float):
            return lambda a, b: apply(a, splat(b))
        return None


for _op, _apply in ((operator.add, _add), (operator.sub, _sub), (operator.mul, _mul)):
    _overload(_op, _apply)
