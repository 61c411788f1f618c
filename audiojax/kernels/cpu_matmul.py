"""Weight-only low-precision products on the CPU, for decoding:
  matmul(x, w)              = x @ w.astype(float32)            w bfloat16 [K, N]
  int8_matmul(x, w, scale)  = (x @ w.astype(float32)) * scale  w int8 [K, N], scale [N]

A batch-1 decode step (AudioLM's stages) is a chain of vector-matrix products that stream every
weight from memory once per token, so its speed is bytes per weight. XLA:CPU multiplies bfloat16
or int8 weights only after converting them to float32 (hoisted out of a sampler's loop: 4 bytes
a weight again) or in a loop 10-20x slower. For float32 x with at most `MAX_ROWS` rows and w
whose columns are a multiple of 64, these run `cpu_matmul.cc` instead, which reads 2 (1) bytes
a weight and accumulates in float32; everywhere else (GPU, TPU, prefill, other shapes) they are
the XLA product of the same values. Both agree to float32 rounding (the sum order differs).

The kernel is compiled on first use for this machine's CPU (`build.load`); with no compiler
(or a failed build) the XLA product runs, after one warning.
"""

import functools
import math
import os

import jax
import jax.numpy as jnp

from audiojax.kernels import build

TARGETS = {"bf16": "audiojax_bf16_matmul", "int8": "audiojax_int8_matmul"}
SOURCE = os.path.join(os.path.dirname(__file__), "cpu_matmul.cc")
TILE = 64  # columns per weight tile (the kernel's layout: [N / TILE, K, TILE])
MAX_ROWS = 16  # beyond this the product is compute-bound: XLA's float32 GEMM does better


@functools.cache
def available() -> bool:
  """Whether the kernels are built and registered with XLA (builds them on the first call)."""
  return build.register(SOURCE, {TARGETS["bf16"]: "AudiojaxBf16Matmul",
                                 TARGETS["int8"]: "AudiojaxInt8Matmul"},
                        "the CPU low-precision matmul kernels are")


def _xla(x: jnp.ndarray, w: jnp.ndarray, *scale: jnp.ndarray) -> jnp.ndarray:
  y = jnp.tensordot(x, w.astype(x.dtype), axes=1)
  return y * scale[0] if scale else y


def _kernel(x: jnp.ndarray, w: jnp.ndarray, *scale: jnp.ndarray) -> jnp.ndarray:
  (*lead, k), n = x.shape, w.shape[1]
  if w.dtype == jnp.int8:  # Pairs of int8 as one 16-bit element: XLA:CPU hoists the tiling
    # out of a sampler's loop for 16-bit elements, but (measured) not for 8- or 32-bit ones.
    w = jax.lax.bitcast_convert_type(w.reshape(k, n // 2, 2), jnp.bfloat16)
  # Tiles [N / 64, K, 64 weights]: loop-invariant in a sampler, so computed once.
  tiles = w.reshape(k, n // TILE, -1).transpose(1, 0, 2)
  out = jax.ShapeDtypeStruct((math.prod(lead), n), jnp.float32)
  target = TARGETS["int8" if scale else "bf16"]
  y = jax.ffi.ffi_call(target, out, vmap_method="sequential")(x.reshape(-1, k), tiles, *scale)
  return y.reshape(*lead, n)


def _applies(x: jnp.ndarray, rows: int) -> bool:
  """Whether the kernel may take float32 x's `rows` rows (module docstring), once built."""
  return x.dtype == jnp.float32 and rows <= MAX_ROWS and available()


def _product(x: jnp.ndarray, w: jnp.ndarray, *scale: jnp.ndarray) -> jnp.ndarray:
  """The kernel on the CPU where it applies (module docstring), else XLA's product."""
  if w.shape[1] % TILE or not _applies(x, math.prod(x.shape[:-1])):
    return _xla(x, w, *scale)
  return jax.lax.platform_dependent(x, w, *scale, cpu=_kernel, default=_xla)


@jax.custom_jvp
def matmul(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
  """x: [..., K] float32, w: [K, N] bfloat16 -> x @ w in float32 [..., N] (module docstring)."""
  if w.dtype != jnp.bfloat16:
    raise TypeError(f"matmul takes bfloat16 weights, not {w.dtype}")
  return _product(x, w)


@matmul.defjvp
def _matmul_jvp(primals, tangents):
  (x, w), (dx, dw) = primals, tangents
  return matmul(x, w), _xla(dx, w) + _xla(x, dw)


@jax.custom_jvp
def int8_matmul(x: jnp.ndarray, w: jnp.ndarray, scale: jnp.ndarray) -> jnp.ndarray:
  """x: [..., K] float32, w: [K, N] int8, scale: [N] float32 -> (x @ w) * scale in float32
  [..., N] (module docstring); `quantize_int8` makes w and scale."""
  if w.dtype != jnp.int8 or scale.shape != w.shape[1:]:
    raise TypeError(f"int8_matmul takes int8 weights [K, N] and scales [N], not {w.dtype} "
                    f"{w.shape} and {scale.shape}")
  return _product(x, w, scale.astype(jnp.float32))


@int8_matmul.defjvp
def _int8_matmul_jvp(primals, tangents):  # The integer weights have no tangent.
  (x, w, scale), (dx, _, dscale) = primals, tangents
  return int8_matmul(x, w, scale), _xla(dx, w, scale) + _xla(x, w) * dscale


def tiled_matmul(x: jnp.ndarray, tiles: jnp.ndarray) -> jnp.ndarray:
  """B products of bfloat16 weights kept in the kernel's tile layout (a decode step's KV cache):
  x [B, M, K] float32, tiles [B, T, K, 64] bfloat16 (or uint16 holding bfloat16 bits) -> y [B,
  M, T * 64] float32 with y[b, m, 64 t + c] = sum_k x[b, m, k] tiles[b, t, k, c]. The kernel
  where `matmul`'s applies, else the XLA product."""
  (batch, rows, _), num_tiles = x.shape, tiles.shape[1]

  def xla(x, tiles):
    if tiles.dtype == jnp.uint16:
      tiles = jax.lax.bitcast_convert_type(tiles, jnp.bfloat16)
    y = jnp.einsum("bmk,btkc->bmtc", x, tiles.astype(jnp.float32))
    return y.reshape(batch, rows, num_tiles * TILE)

  def kernel(x, tiles):
    out = jax.ShapeDtypeStruct((batch, rows, num_tiles * TILE), jnp.float32)
    return jax.ffi.ffi_call(TARGETS["bf16"], out, vmap_method="sequential")(x, tiles)

  if tiles.dtype not in (jnp.bfloat16, jnp.uint16) or not _applies(x, rows):
    return xla(x, tiles)
  return jax.lax.platform_dependent(x, tiles, cpu=kernel, default=xla)


def quantize_int8(w: jnp.ndarray, axes: tuple[int, ...] = (0,)) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Symmetric per-column int8: w [*in, *out] float -> (q int8 like w, scale float32 [*out]),
  w ~ q * scale, scale = max |w| over the input `axes` / 127 (a zero column: scale 1)."""
  peak = jnp.max(jnp.abs(w.astype(jnp.float32)), axis=axes)
  scale = jnp.where(peak > 0, peak / 127.0, 1.0)
  q = jnp.clip(jnp.round(w / jnp.expand_dims(scale, axes)), -127, 127).astype(jnp.int8)
  return q, scale
