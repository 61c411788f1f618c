"""1-D convolutions for audio, as XLA convolutions or as matmuls over stacked taps.

Which is faster depends on the backend. On an H200 the WaveNet paper model trained 10x faster
with its dilated convs written as one matmul over the stacked taps (benchmarks/RESULTS.md):
every tap is a (strided) slice of the input, the taps are concatenated on the channel axis and
one [b*t, k*C] x [k*C, F] matmul does the rest. On a CPU the XLA convolution is 2-7x faster
than that for long inputs (seconds of audio, kernel 7), and the taps only win on inputs of a few
hundred steps. In bfloat16 on a CPU with Intel AMX, `audiojax.kernels.amx_conv` runs them
5-10x faster than XLA's float32 (or bfloat16) convolution, for channel counts that are
multiples of 32; in float32 too, as three bfloat16 passes (errors ~5e-6 instead of ~1e-7),
when asked for as on TPUs: `jax.default_matmul_precision("high")` or the environment's
JAX_DEFAULT_MATMUL_PRECISION=high (XLA:CPU itself ignores it). A conv with one input or
output channel (a waveform's first or last) runs on CPUs as float32 sums over its taps
(`conv_narrow`, 3-9x faster than XLA's convolution there). `impl="auto"` picks taps on GPUs,
narrow or AMX where they apply on CPUs and the XLA convolution elsewhere.

Sharding: `logical_init` gives an initialiser the logical axis names of its output and
`constrain` names an activation's axes (`audiojax.train.sharding`); conv kernels [taps, in, out]
are usually named ("conv_taps", "embed", "mlp"), their biases ("mlp",).
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.kernels import amx_conv

LogicalNames = tuple[str | None, ...]


def logical_init(names: LogicalNames, init=nn.linear.default_kernel_init):
  """`init` with the logical axis names of its output, for sharding (one name per axis)."""
  return nn.with_logical_partitioning(init, names)


def constrain(x: jnp.ndarray, names: LogicalNames) -> jnp.ndarray:
  """Activation sharding by logical names (a no-op outside `nn.logical_axis_rules`)."""
  return nn.with_logical_constraint(x, names)


@jax.custom_jvp
def elu(x: jnp.ndarray) -> jnp.ndarray:
  """ELU, x above 0 and e^x - 1 below, as exp(min(x, 0)) - 1 rather than expm1: XLA:CPU's
  expm1 takes twice exp's time (3M float32 values: 1.17 vs 0.56 ms on 2 cores), and the two
  differ by at most 1.2e-7 in float32 (where e^x is near 1, below float32's resolution). Its
  own derivative (1 above 0, e^x below, 1 at 0 as jax.nn.elu's): min's at 0 would be 1/2."""
  return jnp.where(x > 0, x, jnp.exp(jnp.minimum(x, 0)) - 1)


@elu.defjvp
def _elu_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  exp = jnp.exp(jnp.minimum(x, 0))
  return jnp.where(x > 0, x, exp - 1), jnp.where(x > 0, 1, exp).astype(dx.dtype) * dx


def _input_span(steps: int, taps: int, stride: int, dilation: int) -> int:
  """The steps of an input of `steps` that tap 0 of a VALID conv reads (every stride-th of
  them is an output's): (outputs - 1) * stride + 1; a ValueError when there is no output."""
  length = (steps - (taps - 1) * dilation - 1) // stride + 1
  if length < 1:
    raise ValueError(f"input of {steps} steps is shorter than the kernel's span "
                     f"{(taps - 1) * dilation + 1}")
  return (length - 1) * stride + 1


def conv_taps(x: jnp.ndarray, kernel: jnp.ndarray, stride: int = 1,
              dilation: int = 1) -> jnp.ndarray:
  """VALID 1-D conv (cross-correlation, as `lax.conv`) of x: [b, t, C] with kernel [k, C, F].

  Output [b, (t - (k - 1) * dilation - 1) // stride + 1, F]; out[i] = sum_j
  x[i * stride + j * dilation] @ kernel[j].
  """
  taps, channels, features = kernel.shape
  span = _input_span(x.shape[1], taps, stride, dilation)
  stacked = jnp.concatenate(
      [x[:, j * dilation:j * dilation + span:stride] for j in range(taps)], axis=-1)
  return stacked @ kernel.reshape(taps * channels, features)  # [b, length, F]


def _xla_conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, dilation: int,
              padding: int = 0) -> jnp.ndarray:
  return jax.lax.conv_general_dilated(x, kernel, (stride,), [(padding, 0)],
                                      rhs_dilation=(dilation,),
                                      dimension_numbers=("NWC", "WIO", "NWC"))


def _narrow_sums(x: jnp.ndarray, kernel: jnp.ndarray, stride: int,
                 dilation: int) -> jnp.ndarray:
  """`conv_taps` for a kernel [k, C, F] with C = 1 or F = 1, float32, as sums over the taps:
  of broadcast products (C = 1), or of shifted columns of one matmul onto every tap (F = 1)."""
  taps, channels, _ = kernel.shape
  span = _input_span(x.shape[1], taps, stride, dilation)
  x, kernel = x.astype(jnp.float32), kernel.astype(jnp.float32)
  if channels == 1:
    return sum(x[:, j * dilation:j * dilation + span:stride] * kernel[j, 0] for j in range(taps))
  z = x @ kernel[:, :, 0].T  # [b, t, taps]: every step times every tap
  return sum(z[:, j * dilation:j * dilation + span:stride, j:j + 1] for j in range(taps))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_narrow(x: jnp.ndarray, kernel: jnp.ndarray, stride: int = 1,
                dilation: int = 1) -> jnp.ndarray:
  """The VALID conv of `conv_taps` for one input or one output channel (a waveform's first or
  last conv), float32: on a CPU XLA's convolution takes 3-9x longer for these (96,000 steps,
  7 taps, 32 channels: 2.8 ms (1 -> 32) and 3.9 ms (32 -> 1) in bfloat16, against 0.44 and
  0.78 ms). Its gradient is the XLA convolution's (faster than these sums' own)."""
  return _narrow_sums(x, kernel, stride, dilation)


def _narrow_forward(x, kernel, stride, dilation):
  return _narrow_sums(x, kernel, stride, dilation), (x, kernel)


def _narrow_backward(stride, dilation, residuals, cotangent):
  x, kernel = residuals
  _, vjp = jax.vjp(lambda x, k: _xla_conv(x, k, stride, dilation).astype(jnp.float32), x, kernel)
  return vjp(cotangent)


conv_narrow.defvjp(_narrow_forward, _narrow_backward)


THREE_PASS = ("high", "BF16_BF16_F32_X3")  # jax_default_matmul_precision: bfloat16 x 3 on TPUs


def _amx_applies(x: jnp.ndarray, kernel: jnp.ndarray, stride: int = 1,
                 dilation: int = 1) -> bool:
  """Whether `conv1d`'s "auto" picks the AMX kernel: bfloat16 convs, and float32 ones under
  jax.default_matmul_precision("high") (three bfloat16 passes; module docstring)."""
  if jax.default_backend() == "gpu" or (
      x.dtype == jnp.float32 and jax.config.jax_default_matmul_precision not in THREE_PASS):
    return False
  return amx_conv.applies(x, kernel, stride, dilation)


def conv1d(x: jnp.ndarray, kernel: jnp.ndarray, stride: int = 1, dilation: int = 1,
           impl: str = "auto", padding: int = 0) -> jnp.ndarray:
  """`conv_taps` (impl "taps"), the same conv through `lax.conv_general_dilated` ("xla") or,
  on a CPU with AMX, through `amx_conv` ("amx": bfloat16 operands, or float32 in three passes;
  float32 results, so what follows the conv, up to the next one, runs in float32 without
  rounding every step to bfloat16), `conv_narrow` ("narrow": one input or output channel,
  float32 results);
  "auto": taps on GPUs; on CPUs narrow for one input or output channel, else amx where it
  applies, else xla (see the module docstring).
  padding: zero steps before x's first (a causal conv's left context)."""
  if impl == "auto":
    impl = ("taps" if jax.default_backend() == "gpu" else
            "narrow" if jax.default_backend() == "cpu" and 1 in kernel.shape[1:] else
            "amx" if _amx_applies(x, kernel, stride, dilation) else "xla")
  pad = lambda x, steps: jnp.pad(x, ((0, 0), (steps, 0), (0, 0)))
  if impl == "taps":
    return conv_taps(pad(x, padding), kernel, stride, dilation)
  if impl == "amx":
    return amx_conv.conv(pad(x, padding), kernel, stride, dilation)
  if impl == "narrow":
    if 1 not in kernel.shape[1:]:
      raise ValueError(f"conv impl 'narrow' is for one input or output channel; kernel "
                       f"{kernel.shape}")
    return conv_narrow(pad(x, padding), kernel, stride, dilation)
  if impl != "xla":
    raise ValueError(f"conv impl {impl!r}: expected auto, taps, amx, narrow or xla")
  return _xla_conv(x, kernel, stride, dilation, padding)


class Conv(nn.Module):
  """Drop-in for `nn.Conv(features, (kernel_size,), strides, kernel_dilation, padding='VALID')`
  (with `padding` zeros before the input: padding=((padding, 0),)): same param names, shapes and
  initialisers, computed by `conv1d`."""
  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1
  dtype: Any = jnp.float32
  impl: str = "auto"
  kernel_init: Any = nn.linear.default_kernel_init
  bias_init: Any = nn.initializers.zeros
  padding: int = 0  # zero steps before the input's first (`conv1d`)

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: [batch, time, C] -> [batch, out_time, features] (see `conv_taps`; time counts the
    padding)."""
    kernel = self.param("kernel", self.kernel_init,
                        (self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return conv1d(x, kernel, self.stride, self.dilation, self.impl, self.padding) + bias


class FrameUpsample(nn.Module):
  """Causal upsampling by `stride` with a kernel of 2 x stride, as two matmuls.

  Output frame t (stride samples) mixes input frames t - 1 and t: the first `frames * stride`
  outputs after the first `stride` of `nn.ConvTranspose(features, (2 * stride,), stride,
  'VALID')` applied to [previous, x] (same params; tested against it).
  """
  features: int
  stride: int
  dtype: Any = jnp.float32
  kernel_init: Any = nn.linear.default_kernel_init  # of the kernel [2 * stride, C, features]
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jnp.ndarray, previous: jnp.ndarray) -> jnp.ndarray:
    """x: [batch, frames, C], previous: [batch, 1, C] (the frame before x) ->
    [batch, frames * stride, features]."""
    s, channels = self.stride, x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, (2 * s, channels, self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    x, previous, kernel, bias = nn.dtypes.promote_dtype(x, previous, kernel, bias,
                                                        dtype=self.dtype)
    # lax.conv_transpose correlates with the kernel flipped: output r of frame t takes
    # kernel[2s - 1 - r] for x[t] and kernel[s - 1 - r] for x[t - 1].
    to_frame = lambda taps: taps[::-1].transpose(1, 0, 2).reshape(channels, s * self.features)
    frame_kernel = jnp.stack([to_frame(kernel[:s]), to_frame(kernel[s:])])  # [2, C, s * F]
    if _amx_applies(x, frame_kernel):  # a 2-tap conv over [previous, x]
      y = conv1d(jnp.concatenate([previous, x], axis=1), frame_kernel, impl="amx")
    else:
      before = jnp.concatenate([previous, x[:, :-1]], axis=1)  # x[t - 1]: [b, frames, C]
      y = before @ frame_kernel[0] + x @ frame_kernel[1]  # [b, frames, s * F]
    return y.reshape(x.shape[0], -1, self.features) + bias
