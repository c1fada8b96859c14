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

The 3x3 convolutions run through XLA's convolution (``conv_impl="lax"``) or as
one matrix product each (``"matmul"``: im2col on the narrower input, col2im on the
narrower output; see ``conv2d``). Both compute the same
function. They differ in what a ``vmap`` over GenMM's generators makes of them:
batched convolutions become grouped ones, whose kernel gradient XLA writes as a
3-D convolution with input dilation (on XLA:CPU two of those took 1.2 s of a
1.7 s GenMM step, K = 4), while batched matrix products stay batched matrix products.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from emflow import checks
from emflow.bijectors.base import Array

ConvImpl = Literal["lax", "matmul"]
CONV_IMPLS = ("lax", "matmul")


def check_conv_impl(owner: str, conv_impl: str) -> None:
    """Raise a ValueError naming ``owner`` unless ``conv_impl`` is one of ``CONV_IMPLS``."""
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f"{owner}: conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")

_he_normal = jax.nn.initializers.he_normal()
LOGSCALE_FACTOR = 3.0  # Glow's Conv2dZeros / LinearZeros output scale factor


def conv2d(x: Array, kernel: Array, bias: Array, impl: ConvImpl = "lax") -> Array:
    """'SAME' convolution, ``x: (B, H, W, Cin)``, ``kernel: (kh, kw, Cin, Cout)`` with odd kh, kw.

    ``impl="lax"``: ``lax.conv_general_dilated``. ``impl="matmul"``: one matrix product, with
    the ``kh * kw`` spatial shifts on whichever side of it has fewer channels, so that the
    largest array it writes holds ``kh * kw * min(Cin, Cout)`` numbers per pixel:

    - ``Cin <= Cout`` (im2col): the shifted copies of the zero-padded input side by side and a
      column of ones, ``(B, H, W, kh * kw * Cin + 1)``, times the kernel as
      ``(kh * kw * Cin, Cout)`` with the bias appended as a last row;
    - ``Cin > Cout`` (col2im): ``x`` times the kernel as ``(Cin, kh * kw * Cout)``, then the
      ``kh * kw`` output slices, zero-padded and shifted, summed. This is the same sum
      ``y[p] = sum_ij x[p + (i, j) - r] K[i, j]`` with the shift applied after the product.

    Glow's coupling network has one of each: 3x3 from few channels to 512, and 3x3 from 512
    back to few; a plain im2col of the second would write 9 x 512 numbers per pixel.
    """
    kernel, bias = kernel.astype(x.dtype), bias.astype(x.dtype)
    if impl == "lax":
        y = jax.lax.conv_general_dilated(
            x, kernel, window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y + bias
    check_conv_impl("conv2d", impl)
    kh, kw, cin, cout = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"conv2d: impl='matmul' needs an odd kernel size, got {kh}x{kw}")
    h, w = x.shape[-3:-1]
    pad = [(0, 0)] * (x.ndim - 3) + [(kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)]
    shifts = [(i, j) for i in range(kh) for j in range(kw)]
    if cin <= cout:
        # A last column of ones makes the bias the kernel's last row: the bias is added, and its
        # gradient summed, inside the matrix products rather than in passes over y of their own.
        padded = jnp.pad(x, pad)
        ones = jnp.ones(x.shape[:-1] + (1,), x.dtype)
        patches = jnp.concatenate([padded[..., i:i + h, j:j + w, :] for i, j in shifts] + [ones], axis=-1)
        return patches @ jnp.concatenate([kernel.reshape(kh * kw * cin, cout), bias[None]], axis=0)
    # float32 partial products, so that a bfloat16 x is rounded once, after the sum (as a
    # convolution's float32 accumulator would), not once per shift
    per_shift = _matmul_float32_out(x, kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout))
    padded = jnp.pad(per_shift, pad)
    y = sum(padded[..., i:i + h, j:j + w, s * cout:(s + 1) * cout] for s, (i, j) in enumerate(shifts))
    return y.astype(x.dtype) + bias


@jax.custom_jvp
def _matmul_float32_out(x: Array, w: Array) -> Array:
    """``x @ w`` for ``x: (..., Cin)``, ``w: (Cin, N)`` of one dtype, accumulated and returned in float32.

    Its derivatives are computed in the inputs' dtype and only then widened to float32, so
    for bfloat16 inputs the backward products run in bfloat16 and write ``x``'s gradient in
    bfloat16, as a bfloat16 convolution's would. (JAX's own rule for ``preferred_element_type``
    would multiply the float32 cotangent in float32 and write a float32 array as wide as ``x``.)
    """
    return jnp.matmul(x, w, preferred_element_type=jnp.float32)


@_matmul_float32_out.defjvp
def _matmul_float32_out_jvp(primals, tangents):
    (x, w), (dx, dw) = primals, tangents
    return _matmul_float32_out(x, w), (dx @ w + x @ dw).astype(jnp.float32)


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
    conv_impl: ConvImpl = "lax"

    def __post_init__(self):
        for name in ("in_channels", "out_channels"):
            checks.integer("ZeroConv", name, getattr(self, name), 1)
        check_conv_impl("ZeroConv", self.conv_impl)

    def init(self, key: Array) -> dict:
        del key
        return _zero_layer((3, 3, self.in_channels, self.out_channels), self.out_channels)

    def apply(self, params: dict, x: Array) -> Array:
        """``x: (B, H, W, in_channels) -> (B, H, W, out_channels)``."""
        y = conv2d(x, params["kernel"], params["bias"], self.conv_impl)
        return y * jnp.exp(LOGSCALE_FACTOR * params["logs"]).astype(y.dtype)


@dataclasses.dataclass(frozen=True)
class ConvConditioner:
    """Glow's coupling network: Conv3x3 -> ReLU -> Conv1x1 -> ReLU -> zero Conv3x3.

    Attributes:
      in_channels, out_channels: channels of the input and the output.
      hidden_channels: width of the two hidden layers.
      conv_impl: how the 3x3 convolutions run, ``"lax"`` or ``"matmul"`` (see ``conv2d``).
    """

    in_channels: int
    out_channels: int
    hidden_channels: int
    conv_impl: ConvImpl = "lax"

    def __post_init__(self):
        for name in ("in_channels", "out_channels", "hidden_channels"):
            checks.integer("ConvConditioner", name, getattr(self, name), 1)
        check_conv_impl("ConvConditioner", self.conv_impl)

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
        h = jax.nn.relu(conv2d(x, params["conv1"]["kernel"], params["conv1"]["bias"], self.conv_impl))
        h = jax.nn.relu(conv1x1(h, params["conv2"]["kernel"], params["conv2"]["bias"]))
        return ZeroConv(self.hidden_channels, self.out_channels, self.conv_impl).apply(params["out"], h)


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

    def __post_init__(self):
        for name in ("in_features", "out_features", "hidden_features", "num_hidden_layers"):
            checks.integer("MLPConditioner", name, getattr(self, name), 1)

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
