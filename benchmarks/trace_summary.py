r"""Where a device's time went: a table from a `jax.profiler` trace (no TensorBoard needed).

  python -m benchmarks.trace_summary DIR_OR_XPLANE [--top=30]

Reads the newest `*.xplane.pb` under DIR (as `jax.profiler.trace(DIR)` writes it) and prints,
for the first device plane (`/device:GPU:0`, `/device:TPU:0`...):
  - kernel time by kind, from the kernel names on the stream lines: matmul (cuBLAS/CUTLASS
    gemms), attention (cuDNN fused attention), copies, and the rest (XLA's own fusions);
  - the `top` HLO ops by total time ("XLA Ops" line, where the runtime writes one), to look up
    in the compiled step's HLO (`train_throughput --hlo_dir`).
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


def summarize(path: str, top: int = 30) -> str:
  """The table (module docstring) of the trace at `path` (file or directory)."""
  data = jax.profiler.ProfileData.from_file(find_trace(path))
  planes = [p for p in data.planes if p.name.startswith("/device:")]
  if not planes:
    return f"no device plane in {path}: planes {[p.name for p in data.planes]}"
  plane = planes[0]
  kinds = collections.Counter()
  ops = collections.Counter()
  calls = collections.Counter()
  lines = list(plane.lines)
  streams = [line for line in lines if line.name.startswith("Stream")]
  for line in lines:
    if line.name == "XLA Ops":
      for event in line.events:
        ops[event.name] += event.duration_ns
        calls[event.name] += 1
    elif line in streams or not streams and line.name not in ("XLA Modules", "Steps"):
      for event in line.events:
        kind = next(k for k, pattern in KINDS if pattern.search(event.name))
        kinds[kind] += event.duration_ns
  total = sum(kinds.values()) or 1
  rows = [f"{plane.name}: kernel time {total / 1e6:.2f} ms; lines "
          f"{', '.join(line.name for line in lines)}"]
  rows += [f"  {kind:<10} {ns / 1e6:10.2f} ms {ns / total:6.1%}" for kind, ns in
           kinds.most_common()]
  if ops:
    rows.append(f"top {top} HLO ops of {len(ops)} (total ms, calls):")
    rows += [f"  {ns / 1e6:10.2f} {calls[name]:5d}  {name}" for name, ns in
             ops.most_common(top)]
  return "\n".join(rows)


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m benchmarks.trace_summary DIR_OR_XPLANE")
  print(summarize(argv[1], flags.FLAGS.top))


if __name__ == "__main__":
  flags.DEFINE_integer("top", 30, "HLO ops to list.")
  app.run(main)
