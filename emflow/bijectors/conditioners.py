"""Conditioner networks for coupling layers and learned split priors.

A conditioner maps the untouched half of the input to the parameters of the
transformed half. Its last layer is zero-initialised (with Glow's learned
per-channel output scale ``exp(3 * logs)``, also starting at zero), so a fresh
conditioner outputs exactly zero.

- ``ConvConditioner``: Conv3x3 -> ReLU -> Conv1x1 -> ReLU -> zero Conv3x3
  (Glow), on ``(B, H, W, C_in)``.
- ``MLPConditioner``: Dense -> ReLU -> ... -> zero Dense (RealNVP on vectors),
  on ``(B, D_in)``.
- ``ZeroConv``: just the zero-initialised Conv3x3 (Glow's split prior).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from emflow.bijectors.base import Array

_he_normal = jax.nn.initializers.he_normal()
LOGSCALE_FACTOR = 3.0  # Glow's Conv2dZeros / LinearZeros output scale factor


def conv2d(x: Array, kernel: Array, bias: Array) -> Array:
    """'SAME' convolution, ``x: (B, H, W, Cin)``, ``kernel: (kh, kw, Cin, Cout)``."""
    y = jax.lax.conv_general_dilated(
        x, kernel.astype(x.dtype), window_strides=(1, 1), padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + bias.astype(y.dtype)


def conv1x1(x: Array, kernel: Array, bias: Array) -> Array:
    """1x1 convolution as a matrix product over channels, ``x: (..., Cin)``, ``kernel: (1, 1, Cin, Cout)``.

    The same function as ``conv2d`` with a 1x1 kernel, written as a ``dot_general``: under a
    ``vmap`` over GenMM's generators it becomes one batched matrix product, where a
    convolution becomes a grouped convolution (much slower on XLA:CPU).
    """
    y = jnp.einsum("...c,cd->...d", x, kernel[0, 0].astype(x.dtype))
    return y + bias.astype(y.dtype)


def _zero_layer(kernel_shape: tuple[int, ...], out: int) -> dict:
    return {"kernel": jnp.zeros(kernel_shape), "bias": jnp.zeros((out,)), "logs": jnp.zeros((out,))}


@dataclasses.dataclass(frozen=True)
class ZeroConv:
    """A zero-initialised 3x3 convolution with output scale ``exp(3 * logs)``."""

    in_channels: int
    out_channels: int

    def init(self, key: Array) -> dict:
        del key
        return _zero_layer((3, 3, self.in_channels, self.out_channels), self.out_channels)

    def apply(self, params: dict, x: Array) -> Array:
        """``x: (B, H, W, in_channels) -> (B, H, W, out_channels)``."""
        y = conv2d(x, params["kernel"], params["bias"])
        return y * jnp.exp(LOGSCALE_FACTOR * params["logs"]).astype(y.dtype)


@dataclasses.dataclass(frozen=True)
class ConvConditioner:
    """Glow's coupling network: Conv3x3 -> ReLU -> Conv1x1 -> ReLU -> zero Conv3x3.

    Attributes:
      in_channels, out_channels: channels of the input and the output.
      hidden_channels: width of the two hidden layers.
    """

    in_channels: int
    out_channels: int
    hidden_channels: int

    def init(self, key: Array) -> dict:
        k1, k2 = jax.random.split(key)
        cin, h = self.in_channels, self.hidden_channels
        return {
            "conv1": {"kernel": _he_normal(k1, (3, 3, cin, h)), "bias": jnp.zeros((h,))},
            "conv2": {"kernel": _he_normal(k2, (1, 1, h, h)), "bias": jnp.zeros((h,))},
            "out": ZeroConv(h, self.out_channels).init(None),
        }

    def apply(self, params: dict, x: Array) -> Array:
        """``x: (B, H, W, in_channels) -> (B, H, W, out_channels)``."""
        h = jax.nn.relu(conv2d(x, params["conv1"]["kernel"], params["conv1"]["bias"]))
        h = jax.nn.relu(conv1x1(h, params["conv2"]["kernel"], params["conv2"]["bias"]))
        return ZeroConv(self.hidden_channels, self.out_channels).apply(params["out"], h)


@dataclasses.dataclass(frozen=True)
class MLPConditioner:
    """RealNVP's coupling network on vectors: (Dense -> ReLU) x num_hidden_layers -> zero Dense.

    Attributes:
      in_features, out_features: sizes of the input and the output.
      hidden_features: width of each hidden layer.
      num_hidden_layers: how many hidden layers (>= 1).
    """

    in_features: int
    out_features: int
    hidden_features: int
    num_hidden_layers: int = 2

    def init(self, key: Array) -> dict:
        keys = jax.random.split(key, self.num_hidden_layers)
        sizes = [self.in_features] + [self.hidden_features] * self.num_hidden_layers
        hidden = [
            {"kernel": _he_normal(k, (sizes[i], sizes[i + 1])), "bias": jnp.zeros((sizes[i + 1],))}
            for i, k in enumerate(keys)
        ]
        out = _zero_layer((self.hidden_features, self.out_features), self.out_features)
        return {"hidden": hidden, "out": out}

    def apply(self, params: dict, x: Array) -> Array:
        """``x: (B, in_features) -> (B, out_features)``."""
        h = x
        for layer in params["hidden"]:
            h = jax.nn.relu(h @ layer["kernel"].astype(h.dtype) + layer["bias"].astype(h.dtype))
        out = params["out"]
        y = h @ out["kernel"].astype(h.dtype) + out["bias"].astype(h.dtype)
        return y * jnp.exp(LOGSCALE_FACTOR * out["logs"]).astype(y.dtype)
