"""Hidden-layer activations and their derivatives, looked up by name.

Each derivative takes the pre-activation ``z`` and the activation ``a = f(z)`` already computed
in the forward pass, so that tanh and sigmoid reuse ``a`` instead of evaluating ``f`` again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gdsearch.errors import InputError

Array = np.ndarray
Activation = Callable[[Array], Array]
Derivative = Callable[[Array, Array], Array]


def _tanh(z: Array) -> Array:
    return np.tanh(z)


def _tanh_derivative(z: Array, a: Array) -> Array:
    return 1.0 - a * a


def _sigmoid(z: Array) -> Array:
    # Written through tanh so that large |z| neither overflows nor warns.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _sigmoid_derivative(z: Array, a: Array) -> Array:
    return a * (1.0 - a)


def _relu(z: Array) -> Array:
    return np.maximum(z, 0.0)


def _relu_derivative(z: Array, a: Array) -> Array:
    return (z > 0.0).astype(z.dtype)


def _identity(z: Array) -> Array:
    return z


def _identity_derivative(z: Array, a: Array) -> Array:
    return np.ones_like(z)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "relu": _relu,
    "identity": _identity,
}

DERIVATIVES: dict[str, Derivative] = {
    "tanh": _tanh_derivative,
    "sigmoid": _sigmoid_derivative,
    "relu": _relu_derivative,
    "identity": _identity_derivative,
}


def check_activation(name: str) -> str:
    """Return ``name`` if it is a known activation, else raise an error listing the valid ones."""
    if name not in ACTIVATIONS:
        raise InputError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}")
    return name
