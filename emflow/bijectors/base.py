"""What every emflow bijector is, and the shape check they share.

A bijector is a frozen dataclass holding *static* configuration (shapes,
choices). Its parameters live in a separate pytree, so every method is a pure
function of ``(params, inputs)``:

- ``init(key, x) -> params``: data-dependent initialisation from a batch
  ``x: (B, *event_shape)`` (ActNorm statistics, random rotations, ...).
- ``forward(params, x) -> (y, log_det)``: ``y = f(x)`` and
  ``log_det = log|det df/dx|`` of each example, shape ``(B,)``.
- ``inverse(params, y) -> (x, log_det)``: ``x = f^{-1}(y)`` and
  ``log|det df^{-1}/dy|``, shape ``(B,)``.

All methods act on a leading batch axis and work under ``jax.jit``,
``jax.vmap`` and ``jax.grad``. Shapes are checked when the function is traced:
a batch whose event shape is not the configured one raises ``ValueError``
naming the expected and the actual shape.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any  # a pytree of arrays


class Bijector(Protocol):
    """The interface shared by all layers and flows (see module docstring)."""

    event_shape: tuple[int, ...]

    def init(self, key: Array, x: Array) -> Params: ...

    def forward(self, params: Params, x: Array) -> tuple[Any, Array]: ...

    def inverse(self, params: Params, y: Any) -> tuple[Array, Array]: ...


def check_batch(x: Array, event_shape: Sequence[int], where: str) -> None:
    """Raise ValueError unless ``x`` has shape ``(B, *event_shape)``."""
    event_shape = tuple(event_shape)
    shape = tuple(jnp.shape(x))
    if len(shape) != len(event_shape) + 1 or shape[1:] != event_shape:
        raise ValueError(
            f"{where}: expected a batch of shape (batch, {', '.join(map(str, event_shape))}), "
            f"got shape {shape}"
        )


def sum_except_batch(x: Array) -> Array:
    """Sum over every axis but the first: ``(B, ...) -> (B,)``."""
    return jnp.sum(x.reshape(x.shape[0], -1), axis=1)
