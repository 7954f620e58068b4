"""How every function of the kernel is compiled, and how its intrinsics are typed for mypy.

numba's own options, the same for all: no fast-math flag (LLVM then keeps every IEEE 754
operation as written: no fused multiply-add, no reordered sum, no approximate division), numpy's
error model (a division by zero gives inf or NaN and never raises, so loops stay branch-free),
no GIL held, and the machine code cached on disk (:mod:`.cache`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])

OPTIONS: dict[str, Any] = {
    "cache": True,
    "error_model": "numpy",
    "fastmath": False,
    "nogil": True,
}
"""numba's options for every function of the kernel (the tests check them)."""


def compiled(function: F) -> F:
    """``function`` compiled into the kernel."""
    return cast(F, njit(**OPTIONS)(function))


def inlined(function: F) -> F:
    """``function`` compiled into the kernel, and into each function that calls it, where numba
    types the call: for helpers inside loops, where a call that passes arrays costs the loop
    reference counting and its vectorisation."""
    return cast(F, njit(inline="always", **OPTIONS)(function))


def typed(stub: F) -> Callable[[Any], F]:
    """Give an intrinsic the Python signature of ``stub``, the one compiled code calls it with
    (numba's ``@intrinsic`` object declares another, with the typing context first)."""

    def give(intrinsic: Any) -> F:
        return cast(F, intrinsic)

    return give
