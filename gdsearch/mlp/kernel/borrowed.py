"""Arrays borrowed for the length of one call into the kernel, without reference counting.

numba counts references to every array a compiled function is handed or makes, with an atomic
add on entry and an atomic subtract on exit of each function that keeps it, and training calls
a few functions per trial and epoch with a dozen arrays each: the count costs as much as a
tenth of the arithmetic. An entry point therefore borrows its arrays once (:func:`borrow`): the
same memory, shape and strides, without the owner's record, so that counting them is a test
for null. The caller holds the real arrays until the entry point returns, and nothing inside
keeps a borrowed array beyond that.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from gdsearch.mlp.kernel.jit import typed


def _borrow(array: np.ndarray) -> np.ndarray:
    """The same array, not counted: valid while its owner lives."""
    raise NotImplementedError  # compiled code only


@typed(_borrow)
@intrinsic
def borrow(typingctx: Any, array: Any) -> Any:
    if not isinstance(array, types.Array):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        owned = context.make_array(sig.args[0])(context, builder, args[0])
        borrowed = context.make_array(sig.return_type)(context, builder)
        for field in ("data", "shape", "strides", "itemsize", "nitems"):
            setattr(borrowed, field, getattr(owned, field))
        borrowed.meminfo = cgutils.get_null_value(borrowed.meminfo.type)
        borrowed.parent = cgutils.get_null_value(borrowed.parent.type)
        return borrowed._getvalue()

    return array(array), codegen
