"""Hidden-layer activations and their derivatives, looked up by name.

An activation ``f(z, out=None)`` writes f(z) into ``out`` when given (training reuses its
buffers every epoch). Its derivative is written in terms of the activation's output
``a = f(z)``, which the forward pass keeps anyway: ``backprop(a, grad, scratch)`` multiplies the
gradient arriving at ``a`` by f'(z), in place, and so turns it into the gradient at ``z``.

``ACTIVATIONS`` use numpy's own tanh, whose last bits follow the CPU's SIMD features;
``PORTABLE_ACTIVATIONS`` the tanh of :mod:`gdsearch.mlp.elementary`, the same on every machine
(:mod:`gdsearch.mlp.numerics` says which path uses which). ReLU and the identity are exact
either way, and so is every derivative (products and differences).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gdsearch.errors import InputError
from gdsearch.mlp import elementary

Array = np.ndarray
Activation = Callable[..., Array]
Derivative = Callable[[Array, Array, Array], None]


def tanh(z: Array, out: Array | None = None) -> Array:
    """tanh z."""
    return np.tanh(z, out=out)


def tanh_backprop(a: Array, grad: Array, scratch: Array) -> None:
    """grad ← grad · (1 − a²), since tanh' = 1 − tanh²."""
    np.multiply(a, a, out=scratch)
    np.subtract(1.0, scratch, out=scratch)
    grad *= scratch


def sigmoid(z: Array, out: Array | None = None) -> Array:
    """1 / (1 + e^−z), as (1 + tanh(z/2)) / 2 so that large |z| neither overflows nor warns."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def portable_sigmoid(z: Array, out: Array | None = None) -> Array:
    """:func:`sigmoid` with the portable tanh."""
    out = np.multiply(z, 0.5, out=out)
    elementary.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def sigmoid_backprop(a: Array, grad: Array, scratch: Array) -> None:
    """grad ← grad · a (1 − a), since σ' = σ (1 − σ)."""
    np.subtract(1.0, a, out=scratch)
    scratch *= a
    grad *= scratch


def relu(z: Array, out: Array | None = None) -> Array:
    """max(z, 0)."""
    return np.maximum(z, 0.0, out=out)


def relu_backprop(a: Array, grad: Array, scratch: Array) -> None:
    """grad ← grad · [z > 0]; relu(z) > 0 exactly where z > 0."""
    np.greater(a, 0.0, out=scratch)
    grad *= scratch


def identity(z: Array, out: Array | None = None) -> Array:
    """z."""
    if out is None:
        return np.array(z, copy=True)
    np.copyto(out, z)
    return out


def identity_backprop(a: Array, grad: Array, scratch: Array) -> None:
    """grad is unchanged: the derivative is 1."""


ACTIVATIONS: dict[str, Activation] = {
    "tanh": tanh,
    "sigmoid": sigmoid,
    "relu": relu,
    "identity": identity,
}

PORTABLE_ACTIVATIONS: dict[str, Activation] = {
    **ACTIVATIONS,
    "tanh": elementary.tanh,
    "sigmoid": portable_sigmoid,
}

DERIVATIVES: dict[str, Derivative] = {
    "tanh": tanh_backprop,
    "sigmoid": sigmoid_backprop,
    "relu": relu_backprop,
    "identity": identity_backprop,
}


def check_activation(name: str) -> str:
    """Return ``name`` if it is a known activation, else raise an error listing the valid ones."""
    if name not in ACTIVATIONS:
        raise InputError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}")
    return name
