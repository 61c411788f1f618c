r"""Where a device's time went: a table from a `jax.profiler` trace (no TensorBoard needed).

  python -m benchmarks.trace_summary DIR_OR_XPLANE [--top=30] [--steps=3]

Reads the newest `*.xplane.pb` under DIR (as `jax.profiler.trace(DIR)` writes it) and prints,
for the first device plane (`/device:GPU:0`, `/device:TPU:0`...):
  - kernel time by kind, from the kernel names on the stream lines: matmul (cuBLAS/CUTLASS
    gemms), attention (cuDNN fused attention), copies, and the rest (XLA's own fusions);
  - the `top` kernels by total time, with calls and mean time: XLA's fusions by their HLO
    names (look them up in the compiled step, `train_throughput --hlo_dir`), library kernels
    (cuBLAS `nvjet_*`, cuDNN `*sdpa*`) by theirs.
Times are per step when `steps` is given.
`train_throughput --profile_dir` calls `summarize` after its timed steps.
"""

import collections
import glob
import os
import re

import jax
from absl import app, flags

KINDS = (  # (kind, pattern over kernel names), first match wins.
    ("attention", re.compile(r"cudnn|fmha|flash|sdpa|attention", re.I)),
    ("matmul", re.compile(r"gemm|xmma|cutlass|nvjet|cublas|wgmma|matmul", re.I)),
    ("copy", re.compile(r"memcpy|memset|copy|transpose", re.I)),
    ("other", re.compile("")),
)


def find_trace(path: str) -> str:
  """`path` if it is a file, else the newest `*.xplane.pb` below it."""
  if os.path.isfile(path):
    return path
  traces = glob.glob(os.path.join(path, "**", "*.xplane.pb"), recursive=True)
  if not traces:
    raise FileNotFoundError(f"no *.xplane.pb under {path}")
  return max(traces, key=os.path.getmtime)


def summarize(path: str, top: int = 30, steps: int = 1) -> str:
  """The table (module docstring) of the trace at `path` (file or directory), times divided
  by `steps`."""
  data = jax.profiler.ProfileData.from_file(find_trace(path))
  planes = [p for p in data.planes if p.name.startswith("/device:")]
  if not planes:
    return f"no device plane in {path}: planes {[p.name for p in data.planes]}"
  plane = planes[0]
  lines = list(plane.lines)
  streams = [line for line in lines if line.name.startswith("Stream")]
  kernel_lines = streams or [line for line in lines if line.name not in (
      "XLA Modules", "XLA Ops", "Steps")]
  kinds, kernels, calls = collections.Counter(), collections.Counter(), collections.Counter()
  for line in kernel_lines:
    for event in line.events:
      kinds[next(k for k, pattern in KINDS if pattern.search(event.name))] += event.duration_ns
      kernels[event.name] += event.duration_ns
      calls[event.name] += 1
  total = sum(kinds.values()) or 1
  ms = lambda ns: ns / 1e6 / steps
  rows = [f"{plane.name}: kernel time {ms(total):.2f} ms per step; lines "
          f"{', '.join(line.name for line in lines)}"]
  rows += [f"  {kind:<10} {ms(ns):10.2f} ms {ns / total:6.1%}" for kind, ns in
           kinds.most_common()]
  rows.append(f"top {top} kernels of {len(kernels)}: ms per step, calls per step, mean us")
  rows += [f"  {ms(ns):8.3f} {calls[name] / steps:6.1f} {ns / calls[name] / 1e3:8.1f}  "
           f"{name[:90]}" for name, ns in kernels.most_common(top)]
  return "\n".join(rows)


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m benchmarks.trace_summary DIR_OR_XPLANE")
  print(summarize(argv[1], flags.FLAGS.top, flags.FLAGS.steps))


if __name__ == "__main__":
  flags.DEFINE_integer("top", 30, "Kernels to list.")
  flags.DEFINE_integer("steps", 1, "Steps in the trace (times are divided by it).")
  app.run(main)
