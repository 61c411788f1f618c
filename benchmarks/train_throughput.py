r"""Training throughput of the shared trainer: one device vs all devices (weak scaling), and
model FLOP utilisation (MFU).

  python -m benchmarks.train_throughput --config=configs/wavenet.py:paper \
      [--per_device_batch=4] [--crop_samples=8000] [--dtype=bfloat16] [--remat=full]
  python -m benchmarks.train_throughput --config=configs/audiolm.py:semantic_paper \
      --per_device_batch=16 --dtype=bfloat16 [--attention_impl=cudnn]

Times `train_step` (jitted as in training, synthetic batches shaped like the config's data
already on the devices, compile excluded) on a mesh of one device and on a mesh of all devices
with `--per_device_batch` rows per device, and prints steps/s, samples/s (audio samples or
tokens, summed over the batch), the scaling efficiency samples/s(all) / (N x samples/s(one)),
and FLOP rates:
  xla TFLOP/s  XLA's cost analysis of the compiled step (the FLOPs the program does, remat's
               recomputation included) x steps/s;
  model TFLOP/s  for transformers, the model FLOPs of PaLM's MFU (Chowdhery et al. 2022, app.
               B): 6 N + 12 L T D per trained token (N params, L layers, T context, D width;
               causal masking not discounted, recomputation not counted);
  MFU          model TFLOP/s / the device's peak (`--peak_tflops`; by default the datasheet's
               dense bf16 rate for H100/H200 SXM, 989.4, whatever the dtype).
On a CPU, --cpu_devices splits the cores into devices first.

Several variants on one GPU (`benchmarks/gpu_session.sh`, part `mfu_levers`): start one process
per variant with the same `--gate_dir`; each compiles (in parallel: compiling the 165M-param
step takes ~100 s, mostly on the host), then waits until GATE_DIR/go exists and times its steps
holding GATE_DIR/lock, so no two variants share the GPU while timed.
"""

import fcntl
import gzip
import os
import sys
import time

import flax.linen as nn
import jax
import numpy as np
from absl import flags
from ml_collections import config_flags

from audiojax.data import pipeline
from audiojax.train import sharding, trainer
from benchmarks import trace_summary
from launch import common

_CONFIG = config_flags.DEFINE_config_file("config", "configs/wavenet.py:paper",
                                          "Config file[:variant]; fields overridable as in "
                                          "launch.train (--config.model.dropout_rate=0.0).",
                                          lock_config=False)
_PER_DEVICE_BATCH = flags.DEFINE_list("per_device_batch", ["4"], "Rows per device; several "
                                      "(comma-separated) are measured in turn.")
_CROP = flags.DEFINE_integer("crop_samples", 0, "Audio models: samples per row (0: the "
                             "config's).")
_DTYPE = flags.DEFINE_string("dtype", "", "Compute dtype override, e.g. bfloat16.")
_REMAT = flags.DEFINE_string("remat", "", "Remat policy override: none, full or dots.")
_ATTENTION = flags.DEFINE_list("attention_impl", [""], "Transformers: jax.nn."
                               "dot_product_attention implementation (xla or cudnn); several "
                               "are measured in turn.")
_PROFILE = flags.DEFINE_string("profile_dir", "", "Also trace 3 steps of each run into "
                               "PROFILE_DIR/RUN and print where the device time went "
                               "(benchmarks.trace_summary).")
_HLO = flags.DEFINE_string("hlo_dir", "", "Write each run's compiled step (HLO text, gzip) "
                           "here, to look up the ops a profile names.")
_MESH = flags.DEFINE_string("mesh", "", "data,fsdp,tensor sizes for the all-device mesh "
                            "(default: all on data).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after 2 untimed).")
_PEAK = flags.DEFINE_float("peak_tflops", 0.0, "Device peak for MFU (0: H100/H200 dense "
                           "bf16, 989.4, on those GPUs; none elsewhere).")
_GATE = flags.DEFINE_string("gate_dir", "", "Compile, write GATE_DIR/ready.PID, wait for "
                            "GATE_DIR/go, then time holding GATE_DIR/lock (module docstring).")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "CPU only: devices to split the cores "
                                    "into (0: leave JAX's default of one).")

_HELD_LOCKS = []  # --gate_dir's lock file, open until the process ends.
DATASHEET_TFLOPS = {"H100": 989.4, "H200": 989.4}  # Dense bf16, SXM.


def synthetic_batch(config, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """A batch shaped like the config's data with random content: audio in [-1, 1], tokens in
  the vocabulary, every position a target."""
  batch = pipeline.example_batch(config.data, rows)
  for key, value in batch.items():
    if key in ("mask", "loss_mask"):
      batch[key] = np.ones_like(value)
    elif key == "tokens":
      batch[key] = rng.integers(0, config.model.vocab_size, value.shape).astype(np.int32)
    elif key == "speaker":
      batch[key] = rng.integers(0, max(config.model.get("num_speakers", 1), 1), value.shape
                                ).astype(np.int32)
    else:
      batch[key] = (0.3 * rng.standard_normal(value.shape)).clip(-1, 1).astype(value.dtype)
  return batch


def units_per_row(config) -> int:
  """What one row trains on: audio samples, or predicted tokens for a transformer."""
  if config.model.name == "transformer":
    return pipeline.example_batch(config.data)["tokens"].shape[1] - 1
  return config.data.crop_samples


def model_flops_per_unit(config, num_params: int) -> float | None:
  """PaLM's model FLOPs per trained token of a transformer (None for other models)."""
  if config.model.name != "transformer":
    return None
  m = config.model
  return 6 * num_params + 12 * m.num_layers * units_per_row(config) * m.embed_dim


def _xla_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list | tuple) else cost
  return float((cost or {}).get("flops", 0.0))


def measure(config, devices, num_steps: int, name: str = "") -> dict[str, float]:
  """Steps/s of `config` on a mesh over `devices` (synthetic data), its XLA FLOPs per step
  and its parameter count; with --profile_dir / --hlo_dir, also the trace / HLO as `name`."""
  model, task, tx, schedule, _, rules = trainer.build(config)
  mesh = sharding.make_mesh(config.mesh if len(devices) > 1 else None, devices)
  state, shardings = trainer.init_state(config, model, task, tx, mesh, rules)
  batch = sharding.shard_batch(synthetic_batch(config, config.data.batch_size,
                                               np.random.default_rng(0)), mesh)
  train_step = trainer.make_train_step(model, task, tx, schedule, config.train.microbatches,
                                       config.train.get("rng_impl", ""))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    step = jax.jit(train_step, in_shardings=(shardings, sharding.batch_sharding(mesh), None),
                   out_shardings=(shardings, None), donate_argnums=0
                   ).lower(state, batch, jax.random.key(0)).compile()
  if _HLO.value:
    os.makedirs(_HLO.value, exist_ok=True)
    with gzip.open(os.path.join(_HLO.value, f"{name}.hlo.txt.gz"), "wt") as f:
      f.write(step.as_text())
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  if _GATE.value:
    _wait_at_gate(_GATE.value)
  for i in range(2):
    state, metrics = step(state, batch, jax.random.key(i))
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for i in range(num_steps):
    state, metrics = step(state, batch, jax.random.key(i))
  jax.block_until_ready((state, metrics))
  seconds = time.perf_counter() - start
  if _PROFILE.value:
    trace_dir = os.path.join(_PROFILE.value, name)
    with jax.profiler.trace(trace_dir):
      for i in range(3):
        state, metrics = step(state, batch, jax.random.key(i))
      jax.block_until_ready((state, metrics))
    try:
      summary = trace_summary.summarize(trace_dir, top=20, steps=3)
    except Exception as e:  # noqa: BLE001 -- a bad trace must not lose the timings.
      summary = f"no summary: {e!r}"
    print(f"--- {name}\n{summary}", flush=True)
  return {"steps_per_s": num_steps / seconds, "xla_flops": _xla_flops(step),
          "num_params": num_params}


def _wait_at_gate(gate_dir: str) -> None:
  """Marks this process compiled, waits for GATE/go, then takes GATE/lock until exit (the
  lock file stays open, so the OS releases it when the process ends)."""
  open(os.path.join(gate_dir, f"ready.{os.getpid()}"), "w").close()
  while not os.path.exists(os.path.join(gate_dir, "go")):
    time.sleep(0.5)
  lock = open(os.path.join(gate_dir, "lock"), "a")  # noqa: SIM115 -- held until exit.
  fcntl.flock(lock, fcntl.LOCK_EX)
  _HELD_LOCKS.append(lock)


def main(argv):
  del argv
  if _CPU_DEVICES.value:
    sharding.use_cpu_cores(_CPU_DEVICES.value)
  config = _CONFIG.value
  if _CROP.value:
    config.data.crop_samples = _CROP.value
  if _DTYPE.value:
    config.model.dtype = _DTYPE.value
  if _REMAT.value:
    config.model.remat = _REMAT.value
  if _MESH.value:
    config.mesh.update(dict(zip(sharding.MESH_AXES, map(int, _MESH.value.split(",")),
                                strict=True)))
  devices = jax.devices()
  kind = devices[0].device_kind
  peak = _PEAK.value or next((v for k, v in DATASHEET_TFLOPS.items() if k in kind), 0.0)
  unit = "tokens" if config.model.name == "transformer" else "samples"
  overrides = [a for a in sys.argv[1:] if a.startswith("--config.")]
  print(f"{flags.FLAGS['config'].config_filename}: dtype {config.model.dtype}, remat "
        f"{config.model.get('remat')}, "
        f"{units_per_row(config)} {unit} per row; overrides {overrides}, rng_impl "
        f"{config.train.get('rng_impl') or 'threefry'}; {len(devices)} x {kind}; peak for MFU "
        f"{peak or 'unknown'} TFLOP/s; XLA_FLAGS {os.environ.get('XLA_FLAGS', '')!r}; "
        f"load average {os.getloadavg()[0]:.1f}")
  print(f"{'attention':>9} {'devices':>7} {'batch':>6} {'steps/s':>8} {unit + '/s':>11} "
        f"{'efficiency':>10} {'xla TFLOP/s':>11} {'model TFLOP/s':>13} {'MFU':>6}")
  for attention in _ATTENTION.value:
    if attention:
      config.model.attention_impl = attention
    for per_device_batch in map(int, _PER_DEVICE_BATCH.value):
      base = None
      for group in ([devices[:1], devices] if len(devices) > 1 else [devices]):
        config.data.batch_size = per_device_batch * len(group)
        name = f"{attention or 'default'}_b{config.data.batch_size}_d{len(group)}"
        result = measure(config, group, _STEPS.value, name)
        units = result["steps_per_s"] * config.data.batch_size * units_per_row(config)
        base = base or units
        xla = result["xla_flops"] * result["steps_per_s"] / 1e12
        per_unit = model_flops_per_unit(config, result["num_params"])
        model_tflops = units * per_unit / 1e12 if per_unit else float("nan")
        mfu = model_tflops / (peak * len(group)) if peak and per_unit else float("nan")
        print(f"{attention or '-':>9} {len(group):>7} {config.data.batch_size:>6} "
              f"{result['steps_per_s']:>8.2f} {units:>11,.0f} "
              f"{units / (base * len(group)):>10.2f} {xla:>11.2f} {model_tflops:>13.2f} "
              f"{mfu:>6.1%}", flush=True)
  print(f"{result['num_params'] / 1e6:.1f}M params; xla TFLOP/s counts one device's program "
        "(per device on a mesh).")


if __name__ == "__main__":
  common.run(main)
