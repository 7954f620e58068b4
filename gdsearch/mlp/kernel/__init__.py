"""The portable path compiled: a trial's whole training loop in numba, the same bits.

:mod:`gdsearch.mlp.network`, :mod:`~gdsearch.mlp.elementary` and :mod:`~gdsearch.mlp.optim`
are the reference: numpy passes, one IEEE 754 operation per element, every sum in a fixed
order. This package does the same operations in the same order, one trial at a time, the passes
of an epoch fused into loops that stay in the cache, so it gives the reference's bits (the tests
hold the two equal bit for bit) at a fraction of its cost. What keeps it exact:

- No fast-math flag of any kind (:mod:`.jit`): LLVM then never fuses a multiply and
  an add into one rounding, never reorders a sum, and vectorises only loops whose iterations
  are independent. The same source gives the same bits as AVX-512, AVX2 or SSE2 code.
- Sums over the samples in numpy's pairwise order, its eight partial sums an explicit 8-lane
  vector (:mod:`.lanes`, :mod:`.sums`); sums over a layer's inputs in index order, the bias last.
- No call into libm, BLAS or LAPACK: tanh is :mod:`~gdsearch.mlp.elementary`'s, from +, −,
  ×, ÷, and its rint and 2^k are bit operations (:mod:`.scalar`).
- No threads: Ray gives the parallelism.

The tests check all of this from outside: histories equal to the numpy path's bit for bit for
every activation, depth, update rule, batch mode, held-out split and sharpness setting, in
processes with the compiler's CPU target forced to a generic x86-64, with numpy's SIMD off and
glibc's FMA paths masked; and the generated code holds no fused multiply-add and no call to
``exp``, ``tanh`` or ``expm1``.

Compiled code is cached on disk in a directory named by the kernel's sources (:mod:`.cache`):
a machine compiles once, and every later process loads it. One signature serves every depth,
width and activation.
"""

from gdsearch.mlp.kernel import cache

with cache.cached_here():  # every compiled function is defined (and cached) in here
    from gdsearch.mlp.kernel.lanczos import lanczos_step
    from gdsearch.mlp.kernel.passes import Net, Workspace, make_net, parameters, workspace
    from gdsearch.mlp.kernel.training import (
        Buffers,
        Data,
        Records,
        Rule,
        Stopping,
        Stretch,
        Watch,
        advance,
        advance_batches,
        buffers,
        gradients,
        sse_of,
    )

__all__ = [
    "Buffers",
    "Data",
    "Net",
    "Records",
    "Rule",
    "Stopping",
    "Stretch",
    "Watch",
    "Workspace",
    "advance",
    "advance_batches",
    "buffers",
    "gradients",
    "lanczos_step",
    "make_net",
    "parameters",
    "sse_of",
    "workspace",
]
