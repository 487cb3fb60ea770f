"""The Oobleck encoder and decoder of Stable Audio (Evans et al., 2024): strided convolution stacks with
Snake activations and weight-normalised convolutions, channels-last.

Layouts are chosen so that converted stable-audio-tools / diffusers weights load without reshuffling
meaning: a convolution's direction `v` is (kernel, in, out) and its gain `g` has one entry per torch
output channel of the weight (`out` for convolutions, `in` for transposed ones, as torch's
`weight_norm(dim=0)` does). Sequences are (batch, time, channels) throughout.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

# Logical axis names: not in the default rule table, so the VAE is replicated unless a config maps them.
CONV = ("conv_kernel", "conv_in", "conv_out")


# π in two parts for the range reduction of sin_squared: PI_HI has 8 significant bits, so k·PI_HI is exact
# for |k| < 2¹⁶ (Cody and Waite, 1980).
PI_HI, PI_LO = 3.140625, 9.676535897932795e-4


def sin_squared(u: jax.Array) -> jax.Array:
    """sin²(u) in float32, to within 1e-6 of jnp.sin(u)²: about 4× faster on CPU, where XLA's sine is
    several times the cost of a memory-bound elementwise pass (the sao43 decoder's Snakes, ~1.1e9 elements
    per 10 s window, were a third of its time).

    sin² has period π: r = u - kπ lies in [-π/2, π/2], and sin(r) is its Taylor series to r¹¹ there
    (the next term is below 6e-8)."""
    dtype, u = u.dtype, u.astype(jnp.float32)
    k = jnp.round(u * (1 / jnp.pi))
    r = (u - k * PI_HI) - k * PI_LO
    r2 = r * r
    s = r * (1 + r2 * (-1 / 6 + r2 * (1 / 120 + r2 * (-1 / 5040 + r2 * (1 / 362880 + r2 * (-1 / 39916800))))))
    return (s * s).astype(dtype)


def snake(x: jax.Array, log_alpha: jax.Array, log_beta: jax.Array) -> jax.Array:
    """Snake-beta with log-scale parameters: x + sin²(αx) / β, per channel (last axis)."""
    alpha, beta = jnp.exp(log_alpha), jnp.exp(log_beta)
    return x + sin_squared(alpha * x) / (beta + 1e-9)


class Snake(nnx.Module):
    def __init__(self, channels: int):
        self.alpha = nnx.Param(jnp.zeros((channels,)), out_sharding=("conv_out",))
        self.beta = nnx.Param(jnp.zeros((channels,)), out_sharding=("conv_out",))

    def __call__(self, x: jax.Array) -> jax.Array:
        return snake(x, self.alpha[...], self.beta[...])


def weight_norm(g: jax.Array, v: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """w = g · v / ‖v‖, the norm taken over `axes` (no epsilon, as torch)."""
    norm = jnp.sqrt(jnp.sum(v * v, axis=axes, keepdims=True))
    shape = [1] * v.ndim
    (keep,) = set(range(v.ndim)) - set(axes)
    shape[keep] = -1
    return g.reshape(shape) * v / norm


class WNConv(nnx.Module):
    """Weight-normalised 1-D convolution (torch Conv1d semantics): (B, T, in) -> (B, T', out)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        rngs: nnx.Rngs,
        *,
        stride: int = 1,
        dilation: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        self.stride, self.dilation, self.padding = stride, dilation, padding
        bound = 1.0 / (c_in * kernel) ** 0.5  # torch's default Conv1d init range
        v = jax.random.uniform(rngs.params(), (kernel, c_in, c_out), minval=-bound, maxval=bound)
        self.v = nnx.Param(v, out_sharding=CONV)
        self.g = nnx.Param(jnp.sqrt(jnp.sum(v * v, axis=(0, 1))), out_sharding=("conv_out",))
        self.bias = nnx.Param(jnp.zeros((c_out,)), out_sharding=("conv_out",)) if bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        w = weight_norm(self.g[...], self.v[...], (0, 1))
        y = jax.lax.conv_general_dilated(
            x,
            w.astype(x.dtype),
            window_strides=(self.stride,),
            padding=[(self.padding, self.padding)],
            rhs_dilation=(self.dilation,),
            dimension_numbers=("NWC", "WIO", "NWC"),
        )
        return y if self.bias is None else y + self.bias[...]


def _convolve_full(x: jax.Array, w: jax.Array) -> jax.Array:
    taps = w.shape[0]
    return jax.lax.conv_general_dilated(
        x, w, window_strides=(1,), padding=[(taps - 1, taps - 1)], dimension_numbers=("NWC", "WIO", "NWC")
    )


@jax.custom_vjp
def full_convolution(x: jax.Array, w: jax.Array) -> jax.Array:
    """(B, T, in) * (taps, in, out) -> (B, T + taps - 1, out): y[q] = Σ_i x_pad[q + i] · w[i], x zero-padded
    by taps - 1 on both sides; the polyphase transposed convolution's one ordinary convolution.

    Its weight gradient, Σ_q x_pad[q + i]ᵀ · g[q] for each tap, is `taps` matmuls over batch and time
    (accumulated in float32): XLA's CPU convolution computes it 6-11x slower at the tiny VAE's shapes
    (out = stride · channels wide: 4.4-9.1 ms against 0.5-1.3 ms per layer at batch 8, about a seventh
    of the VAE's train step), so the backward pass is written out; the forward and the input gradient
    stay XLA's convolutions (bench/vae_step.py)."""
    return _convolve_full(x, w)


def _full_convolution_fwd(x, w):
    return _convolve_full(x, w), (x, w)


def _full_convolution_bwd(residuals, g):
    x, w = residuals
    taps, length = w.shape[0], g.shape[1]
    _, input_grad = jax.vjp(lambda x: _convolve_full(x, w), x)
    padded = jnp.pad(x, ((0, 0), (taps - 1, taps - 1), (0, 0)))
    dw = [
        jnp.einsum("btc,btd->cd", padded[:, i : i + length], g, preferred_element_type=jnp.float32)
        for i in range(taps)
    ]
    return input_grad(g)[0], jnp.stack(dw).astype(w.dtype)


full_convolution.defvjp(_full_convolution_fwd, _full_convolution_bwd)


class WNConvTranspose(nnx.Module):
    """Weight-normalised transposed 1-D convolution (torch ConvTranspose1d semantics):
    (B, T, in) -> (B, (T-1)·stride - 2·padding + kernel, out)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, rngs: nnx.Rngs):
        self.kernel, self.stride, self.padding = kernel, stride, padding
        bound = 1.0 / (c_out * kernel) ** 0.5
        v = jax.random.uniform(rngs.params(), (kernel, c_in, c_out), minval=-bound, maxval=bound)
        self.v = nnx.Param(v, out_sharding=CONV)
        self.g = nnx.Param(jnp.sqrt(jnp.sum(v * v, axis=(0, 2))), out_sharding=("conv_in",))
        self.bias = nnx.Param(jnp.zeros((c_out,)), out_sharding=("conv_out",))

    def __call__(self, x: jax.Array) -> jax.Array:
        w = weight_norm(self.g[...], self.v[...], (0, 2)).astype(x.dtype)  # (kernel, in, out)
        s, k, (b, t, c_in) = self.stride, self.kernel, x.shape
        c_out = w.shape[-1]
        # Polyphase: output sample q·s + r (before the padding is cropped) is Σ_j x[q - j]·w[r + j·s], so
        # one ordinary convolution of `taps` frames with s·out channels computes all s phases at once.
        # Convolving the zero-stuffed input instead (lhs_dilation) multiplies s times as many zeros.
        taps = -(-k // s)
        w = jnp.pad(w, ((0, taps * s - k), (0, 0), (0, 0))).reshape(taps, s, c_in, c_out)
        w = w[::-1].transpose(0, 2, 1, 3).reshape(taps, c_in, s * c_out)  # tap i reads frame q - taps + 1 + i
        y = full_convolution(x, w).reshape(b, (t + taps - 1) * s, c_out)
        length = (t - 1) * s - 2 * self.padding + k
        return y[:, self.padding : self.padding + length] + self.bias[...]


class ResidualUnit(nnx.Module):
    """x + conv1x1(snake(conv7_dilated(snake(x)))); length preserved."""

    def __init__(self, channels: int, dilation: int, rngs: nnx.Rngs):
        self.snake1 = Snake(channels)
        self.conv1 = WNConv(channels, channels, 7, rngs, dilation=dilation, padding=3 * dilation)
        self.snake2 = Snake(channels)
        self.conv2 = WNConv(channels, channels, 1, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x + self.conv2(self.snake2(self.conv1(self.snake1(x))))


def resample_geometry(stride: int) -> tuple[int, int]:
    """(kernel, padding) of the strided (transposed) convolution for `stride`.

    Stable Audio uses kernel 2·stride, padding ceil(stride/2), which maps T <-> T·stride exactly for even
    strides. Stride 1 (the 43 Hz variant's replaced layer) has no such kernel; a centred kernel 3 keeps T.
    """
    if stride == 1:
        return 3, 1
    if stride % 2:
        raise ValueError(f"Oobleck strides must be 1 or even (T <-> T·stride exactly), got {stride}.")
    return 2 * stride, -(-stride // 2)


class EncoderBlock(nnx.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, rngs: nnx.Rngs):
        self.res_unit1 = ResidualUnit(c_in, 1, rngs)
        self.res_unit2 = ResidualUnit(c_in, 3, rngs)
        self.res_unit3 = ResidualUnit(c_in, 9, rngs)
        self.snake1 = Snake(c_in)
        kernel, padding = resample_geometry(stride)
        self.conv1 = WNConv(c_in, c_out, kernel, rngs, stride=stride, padding=padding)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.res_unit3(self.res_unit2(self.res_unit1(x)))
        return self.conv1(self.snake1(x))


class DecoderBlock(nnx.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, rngs: nnx.Rngs):
        self.snake1 = Snake(c_in)
        kernel, padding = resample_geometry(stride)
        self.conv_t1 = WNConvTranspose(c_in, c_out, kernel, stride, padding, rngs)
        self.res_unit1 = ResidualUnit(c_out, 1, rngs)
        self.res_unit2 = ResidualUnit(c_out, 3, rngs)
        self.res_unit3 = ResidualUnit(c_out, 9, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv_t1(self.snake1(x))
        return self.res_unit3(self.res_unit2(self.res_unit1(x)))


class Encoder(nnx.Module):
    """(B, T·hop, audio_channels) -> (B, T, out_channels); hop = prod(strides)."""

    def __init__(
        self,
        audio_channels: int,
        channels: int,
        multiples: Sequence[int],
        strides: Sequence[int],
        out_channels: int,
        rngs: nnx.Rngs,
    ):
        widths = [channels * m for m in (1, *multiples)]
        self.conv1 = WNConv(audio_channels, widths[0], 7, rngs, padding=3)
        self.block = nnx.List(
            [EncoderBlock(widths[i], widths[i + 1], s, rngs) for i, s in enumerate(strides)]
        )
        self.snake1 = Snake(widths[-1])
        self.conv2 = WNConv(widths[-1], out_channels, 3, rngs, padding=1)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv1(x)
        for block in self.block:
            x = block(x)
        return self.conv2(self.snake1(x))


class Decoder(nnx.Module):
    """(B, T, latent_channels) -> (B, T·hop, audio_channels); the encoder's mirror."""

    def __init__(
        self,
        latent_channels: int,
        channels: int,
        multiples: Sequence[int],
        strides: Sequence[int],
        audio_channels: int,
        rngs: nnx.Rngs,
    ):
        widths = [channels * m for m in (1, *multiples)]
        n = len(strides)
        self.conv1 = WNConv(latent_channels, widths[-1], 7, rngs, padding=3)
        self.block = nnx.List(
            [DecoderBlock(widths[n - i], widths[n - i - 1], s, rngs) for i, s in enumerate(reversed(strides))]
        )
        self.snake1 = Snake(widths[0])
        self.conv2 = WNConv(widths[0], audio_channels, 7, rngs, padding=3, bias=False)

    def __call__(self, z: jax.Array) -> jax.Array:
        x = self.conv1(z)
        for block in self.block:
            x = block(x)
        return self.conv2(self.snake1(x))
