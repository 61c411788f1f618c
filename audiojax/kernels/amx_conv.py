"""1-D convolutions in bfloat16 with float32 results on Intel AMX, for codec inference on CPUs:

  conv(x, kernel, stride, dilation) = lax.conv_general_dilated(x, kernel, stride, VALID,
      rhs_dilation): x [b, t, C], kernel [taps, C, F] -> float32 [b, t', F]

bfloat16 operands take one pass of the tile unit. float32 operands are split into bfloat16 high
and low parts and take three (x0 w0 + x0 w1 + x1 w0, as XLA's BF16_BF16_F32_X3 algorithm on
TPUs): errors ~1e-5 of the operands' size instead of float32's ~1e-7, at ~3x one pass's time,
still several times faster than XLA's float32 convolution here.

XLA:CPU's bfloat16 convolutions run no faster than its float32 ones, and a product over stacked
taps spends its time building the stacked input (benchmarks/RESULTS.md, codec speed). On a CPU
with AMX (Xeon 4th gen and later) whose Linux lets a process use it, `amx_conv.cc` multiplies
each tap's rows in place, 32 channels and 32 steps a tile pair, accumulating in float32. It
applies to C and F multiples of 32, strided convs undilated (`applies`); elsewhere
(GPU, TPU, other CPUs, other shapes) `conv` is XLA's convolution of the same values; for
bfloat16 operands the two agree to float32 rounding of the sums.

Compiled on first use for this CPU (`build.load`); a failed build or a refusal by Linux falls
back to XLA after one warning.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.kernels import build

TARGET = "audiojax_amx_conv"
SOURCE = os.path.join(os.path.dirname(__file__), "amx_conv.cc")
FLAGS = ("-mamx-tile", "-mamx-bf16")
STEPS = 32  # output steps per block: the kernel's output length must be a multiple
WIDTH = 32  # channels (in and out) per tile pair: C and F must be multiples


def has_amx() -> bool:
  """Whether this CPU reports AMX tiles with bfloat16 products (Linux's /proc/cpuinfo)."""
  return {"amx_tile", "amx_bf16"} <= set(build.cpu_signature().split())


@functools.cache
def available() -> bool:
  """Whether the kernel is built, allowed by Linux and registered with XLA (first call builds)."""
  return has_amx() and build.register(SOURCE, {TARGET: "AudiojaxAmxConv"},
                                      "the AMX convolution kernel is", FLAGS, _allow_amx)


def _allow_amx(library) -> None:
  if library.AudiojaxAmxInit() != 0:
    raise OSError("Linux refused this process AMX tile data (arch_prctl XCOMP_PERM)")


def applies(x: jnp.ndarray, kernel: jnp.ndarray, stride: int = 1, dilation: int = 1) -> bool:
  """Whether `conv` runs the kernel on a CPU for these operands (module docstring)."""
  taps, channels, features = kernel.shape
  return (x.dtype == kernel.dtype and x.dtype in (jnp.bfloat16, jnp.float32)
          and not (stride * channels) % WIDTH
          and not features % WIDTH and (stride == 1 or dilation == 1)
          and available())


def pack(kernel: jnp.ndarray) -> jnp.ndarray:
  """[taps, C, F] -> the kernel's weight tiles [taps, C / 32, F / 16, 16, 16, 2]: per tap, 32
  input channels x 16 outputs, rows of channel pairs (2i, 2i + 1) per output (AMX's B tiles)."""
  taps, channels, features = kernel.shape
  tiles = kernel.reshape(taps, channels // WIDTH, WIDTH // 2, 2, features // 16, 16)
  return tiles.transpose(0, 1, 4, 2, 5, 3)


def parts(v: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The kernel's operand parts, bfloat16: (v, empty) if v is bfloat16, else float32 v's high
  and low bfloat16 parts, v ~ high + low."""
  if v.dtype == jnp.bfloat16:
    return v, jnp.zeros((0,), jnp.bfloat16)
  high = v.astype(jnp.bfloat16)
  return high, (v - high.astype(jnp.float32)).astype(jnp.bfloat16)


def _xla(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, dilation: int) -> jnp.ndarray:
  return jax.lax.conv_general_dilated(x, kernel, (stride,), "VALID", rhs_dilation=(dilation,),
                                      dimension_numbers=("NWC", "WIO", "NWC"),
                                      preferred_element_type=jnp.float32)


def conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int = 1, dilation: int = 1) -> jnp.ndarray:
  """x: [b, t, C], kernel: [taps, C, F], both bfloat16 (one pass) or both float32 (three) -> the
  VALID convolution [b, (t - (taps - 1) * dilation - 1) // stride + 1, F] in float32 (the kernel
  where `applies`, else XLA's).

  With stride s > 1 (no dilation), the kernel sees x as frames of s steps [b, t / s, s * C] and
  the kernel, with zero taps up to a multiple of s, as [ceil(taps / s), s * C, F]: the same
  conv, stride 1, over frames, without a reshape in XLA (XLA:CPU computes a reshape fused with
  a pad element by element, measured 3x slower than the pad alone). Differentiable: the
  tangents are XLA's convolutions."""
  taps = kernel.shape[0]
  if x.shape[1] < (taps - 1) * dilation + 1:
    raise ValueError(f"input of {x.shape[1]} steps is shorter than the kernel's span "
                     f"{(taps - 1) * dilation + 1}")
  if not applies(x, kernel, stride, dilation):
    return _xla(x, kernel, stride, dilation)
  return _conv(x, kernel, stride, dilation)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, dilation: int) -> jnp.ndarray:
  taps, channels, features = kernel.shape
  length = (x.shape[1] - (taps - 1) * dilation - 1) // stride + 1

  def amx(x, kernel):
    # Zero taps up to a multiple of the stride (the same conv), then taps over frames.
    frames_taps = -(-taps // stride)
    kernel = jnp.pad(kernel, ((0, frames_taps * stride - taps), (0, 0), (0, 0)))
    kernel = kernel.reshape(frames_taps, stride * channels, features)
    blocks = -(-length // STEPS) * STEPS  # whole blocks of output steps, the extra cut off
    steps = (blocks + (kernel.shape[0] - 1) * dilation) * stride  # input steps they read
    x = x[:, :steps] if x.shape[1] >= steps else jnp.pad(
        x, ((0, 0), (0, steps - x.shape[1]), (0, 0)))
    out = jax.ShapeDtypeStruct((x.shape[0], blocks, features), jnp.float32)
    weights = [pack(part) if part.size else part for part in parts(kernel)]
    y = jax.ffi.ffi_call(TARGET, out, vmap_method="sequential")(
        *parts(x), *weights, stride=np.int64(stride), dilation=np.int64(dilation))
    return y[:, :length]

  return jax.lax.platform_dependent(x, kernel, cpu=amx,
                                    default=lambda x, k: _xla(x, k, stride, dilation))


@_conv.defjvp
def _conv_jvp(stride, dilation, primals, tangents):
  (x, kernel), (dx, dkernel) = primals, tangents
  return (_conv(x, kernel, stride, dilation),
          _xla(dx, kernel, stride, dilation) + _xla(x, dkernel, stride, dilation))
