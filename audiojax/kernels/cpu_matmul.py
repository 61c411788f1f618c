"""Weight-only bfloat16 products on the CPU: `matmul(x, w)` = x @ w.astype(float32).

A batch-1 decode step (AudioLM's stages) is a chain of vector-matrix products that stream every
weight from memory once per token, so its speed is bytes per weight. XLA:CPU multiplies bfloat16
weights only after converting them to float32 (hoisted out of a sampler's loop: 4 bytes a weight
again) or in a loop 10-20x slower. For float32 x with at most `MAX_ROWS` rows and bfloat16 w
whose columns are a multiple of 64, `matmul` runs `bf16_matmul.cc` instead, which reads 2 bytes
a weight and accumulates in float32; everywhere else (GPU, TPU, prefill, other shapes) it is the
XLA product of the same values. Both agree to float32 rounding (the sum order differs).

The kernel is compiled on first use by the system C++ compiler ($CXX, else g++ / c++) for this
machine's CPU, into $AUDIOJAX_KERNEL_CACHE (default ~/.cache/audiojax/kernels), keyed by its
source, the compiler flags, jaxlib's version and the CPU; with no compiler (or a failed build)
the XLA product runs, after one warning.
"""

import functools
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import warnings

import jax
import jax.numpy as jnp
import jaxlib

TARGET = "audiojax_bf16_matmul"
SOURCE = os.path.join(os.path.dirname(__file__), "bf16_matmul.cc")
TILE = 64  # columns per weight tile (the kernel's layout: [N / TILE, K, TILE])
MAX_ROWS = 16  # beyond this the product is compute-bound: XLA's float32 GEMM does better
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")


def _cpu_signature() -> str:
  """What -march=native compiles for: the model name and feature flags of this CPU."""
  try:
    with open("/proc/cpuinfo") as f:
      lines = [line for line in f if line.startswith(("model name", "flags"))][:2]
    return "".join(lines)
  except OSError:
    return platform.processor() or platform.machine()


def _build() -> str:
  """The compiled kernel's path (compiled now unless cached); raises on any failure."""
  compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if not compiler:
    raise RuntimeError("no C++ compiler (set $CXX, or install g++)")
  with open(SOURCE, "rb") as f:
    source = f.read()
  key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), compiler.encode(),
                                   jaxlib.__version__.encode(), _cpu_signature().encode()]))
  cache = os.environ.get("AUDIOJAX_KERNEL_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "audiojax", "kernels")
  path = os.path.join(cache, f"bf16_matmul_{key.hexdigest()[:16]}.so")
  if os.path.exists(path):
    return path
  os.makedirs(cache, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=cache) as tmp:  # then renamed: concurrent builds race safely
    built = os.path.join(tmp, "kernel.so")
    subprocess.run([compiler, *FLAGS, "-I", jax.ffi.include_dir(), SOURCE, "-o", built],
                   check=True, capture_output=True, text=True)
    os.replace(built, path)
  return path


@functools.cache
def available() -> bool:
  """Whether the kernel is built and registered with XLA (builds it on the first call)."""
  import ctypes  # noqa: PLC0415 (only where the kernel is used)
  try:
    library = ctypes.cdll.LoadLibrary(_build())
    jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(library.AudiojaxBf16Matmul),
                                platform="cpu")
  except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
    detail = getattr(e, "stderr", "") or e
    warnings.warn(f"audiojax: the CPU bfloat16 matmul kernel is unavailable, using XLA's "
                  f"(float32-speed) product instead: {detail}", stacklevel=2)
    return False
  return True


def _xla(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
  return jnp.tensordot(x, w.astype(x.dtype), axes=1)


def _kernel(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
  (*lead, k), n = x.shape, w.shape[1]
  tiles = w.reshape(k, n // TILE, TILE).transpose(1, 0, 2)  # loop-invariant in a sampler: hoisted
  out = jax.ShapeDtypeStruct((math.prod(lead), n), jnp.float32)
  y = jax.ffi.ffi_call(TARGET, out, vmap_method="sequential")(x.reshape(-1, k), tiles)
  return y.reshape(*lead, n)


@jax.custom_jvp
def matmul(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
  """x: [..., K] float32, w: [K, N] bfloat16 -> x @ w in float32 [..., N] (module docstring)."""
  rows = math.prod(x.shape[:-1])
  if (x.dtype != jnp.float32 or w.dtype != jnp.bfloat16 or rows > MAX_ROWS
      or w.shape[1] % TILE or not available()):
    return _xla(x, w)
  return jax.lax.platform_dependent(x, w, cpu=_kernel, default=_xla)


@matmul.defjvp
def _matmul_jvp(primals, tangents):
  (x, w), (dx, dw) = primals, tangents
  return matmul(x, w), _xla(dx, w) + _xla(x, dw)
