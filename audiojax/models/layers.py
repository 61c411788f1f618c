"""1-D convolutions written as matmuls over stacked taps (same params as `nn.Conv`).

XLA lowers a 1-D `nn.Conv` with dilation or stride to a generic convolution that is slow for
audio shapes (long time axis, few channels): on an H200 a WaveNet trained 10x faster with the
dilated conv written as one matmul (benchmarks/RESULTS.md), and on a CPU each small conv call
carries a large fixed cost. Here every tap is a (strided) slice of the input, the taps are
concatenated on the channel axis and one [b*t, k*C] x [k*C, F] matmul does the rest.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


def conv_taps(x: jnp.ndarray, kernel: jnp.ndarray, stride: int = 1,
              dilation: int = 1) -> jnp.ndarray:
  """VALID 1-D conv (cross-correlation, as `lax.conv`) of x: [b, t, C] with kernel [k, C, F].

  Output [b, (t - (k - 1) * dilation - 1) // stride + 1, F]; out[i] = sum_j
  x[i * stride + j * dilation] @ kernel[j].
  """
  taps, channels, features = kernel.shape
  length = (x.shape[1] - (taps - 1) * dilation - 1) // stride + 1
  if length < 1:
    raise ValueError(f"input of {x.shape[1]} steps is shorter than the kernel's span "
                     f"{(taps - 1) * dilation + 1}")
  span = (length - 1) * stride + 1
  stacked = jnp.concatenate(
      [x[:, j * dilation:j * dilation + span:stride] for j in range(taps)], axis=-1)
  return stacked @ kernel.reshape(taps * channels, features)  # [b, length, F]


class Conv(nn.Module):
  """Drop-in for `nn.Conv(features, (kernel_size,), strides, kernel_dilation, padding='VALID')`:
  same param names, shapes and initialisers, computed by `conv_taps`."""
  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1
  dtype: Any = jnp.float32
  kernel_init: Any = nn.linear.default_kernel_init
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: [batch, time, C] -> [batch, out_time, features] (see `conv_taps`)."""
    kernel = self.param("kernel", self.kernel_init,
                        (self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return conv_taps(x, kernel, self.stride, self.dilation) + bias


class FrameUpsample(nn.Module):
  """Causal upsampling by `stride` with a kernel of 2 x stride, as two matmuls.

  Output frame t (stride samples) mixes input frames t - 1 and t: the first `frames * stride`
  outputs after the first `stride` of `nn.ConvTranspose(features, (2 * stride,), stride,
  'VALID')` applied to [previous, x] (same params; tested against it).
  """
  features: int
  stride: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, previous: jnp.ndarray) -> jnp.ndarray:
    """x: [batch, frames, C], previous: [batch, 1, C] (the frame before x) ->
    [batch, frames * stride, features]."""
    s, channels = self.stride, x.shape[-1]
    kernel = self.param("kernel", nn.linear.default_kernel_init,
                        (2 * s, channels, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x, previous, kernel, bias = nn.dtypes.promote_dtype(x, previous, kernel, bias,
                                                        dtype=self.dtype)
    # lax.conv_transpose correlates with the kernel flipped: output r of frame t takes
    # kernel[2s - 1 - r] for x[t] and kernel[s - 1 - r] for x[t - 1].
    to_frame = lambda taps: taps[::-1].transpose(1, 0, 2).reshape(channels, s * self.features)
    before = jnp.concatenate([previous, x[:, :-1]], axis=1)  # x[t - 1]: [b, frames, C]
    y = before @ to_frame(kernel[:s]) + x @ to_frame(kernel[s:])  # [b, frames, s * F]
    return y.reshape(x.shape[0], -1, self.features) + bias
