"""Compiling the kernels' C++ sources on first use, for this machine's CPU.

A kernel is compiled by the system C++ compiler ($CXX, else g++ / c++) into
$AUDIOJAX_KERNEL_CACHE (default ~/.cache/audiojax/kernels), keyed by its source and the headers
beside it (which it may include), the compiler flags, jaxlib's version and the CPU, and loaded
from there afterwards.
"""

import ctypes
import glob
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable

import jax
import jaxlib

FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")


def cpu_signature() -> str:
  """What -march=native compiles for: the model name and feature flags of this CPU."""
  try:
    with open("/proc/cpuinfo") as f:
      lines = [line for line in f if line.startswith(("model name", "flags"))][:2]
    return "".join(lines)
  except OSError:
    return platform.processor() or platform.machine()


def load(source_path: str, extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL:
  """The compiled library of `source_path` (compiled now unless cached). Raises OSError,
  RuntimeError (no compiler) or subprocess.CalledProcessError (its stderr says why)."""
  compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if not compiler:
    raise RuntimeError("no C++ compiler (set $CXX, or install g++)")
  flags = (*FLAGS, *extra_flags)
  directory = os.path.dirname(os.path.abspath(source_path))
  headers = sorted(glob.glob(os.path.join(directory, "*.h")))
  sources = []
  for path in (source_path, *headers):
    with open(path, "rb") as f:
      sources.append(f.read())
  key = hashlib.sha256(b"\0".join([*sources, " ".join(flags).encode(), compiler.encode(),
                                   jaxlib.__version__.encode(), cpu_signature().encode()]))
  cache = os.environ.get("AUDIOJAX_KERNEL_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "audiojax", "kernels")
  name = os.path.splitext(os.path.basename(source_path))[0]
  path = os.path.join(cache, f"{name}_{key.hexdigest()[:16]}.so")
  if not os.path.exists(path):
    os.makedirs(cache, exist_ok=True)
    # Built aside, then renamed into place: concurrent builds race safely.
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
      built = os.path.join(tmp, "kernel.so")
      subprocess.run([compiler, *flags, "-I", jax.ffi.include_dir(), source_path, "-o", built],
                     check=True, capture_output=True, text=True)
      os.replace(built, path)
  return ctypes.cdll.LoadLibrary(path)


def register(source_path: str, targets: dict[str, str], description: str,
             extra_flags: tuple[str, ...] = (),
             prepare: Callable[[ctypes.CDLL], None] | None = None) -> bool:
  """Builds `source_path` (`load`), runs `prepare(library)` if given, and registers its
  {XLA FFI target: exported handler symbol} for the CPU. On any failure (no compiler, a failed
  build, `prepare` raising OSError) warns once, naming `description`, and returns False: the
  callers then use XLA's own ops."""
  try:
    library = load(source_path, extra_flags)
    if prepare is not None:
      prepare(library)
    for target, symbol in targets.items():
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                  platform="cpu")
  except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
    detail = getattr(e, "stderr", "") or e
    warnings.warn(f"audiojax: {description} unavailable, using XLA's instead: {detail}",
                  stacklevel=3)
    return False
  return True
