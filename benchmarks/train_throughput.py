r"""Training throughput of the shared trainer: one device vs all devices (weak scaling).

  python -m benchmarks.train_throughput --config=configs/wavenet.py:paper \
      [--per_device_batch=4] [--crop_samples=8000] [--dtype=bfloat16] [--remat=full]

Times `train_step` (jitted as in training, synthetic batches already on the devices, compile
excluded) on a mesh of one device and on a mesh of all devices with `--per_device_batch` rows
per device, and prints steps/s, samples/s (audio samples, summed over the batch) and the
scaling efficiency samples/s(all) / (N x samples/s(one)). On a CPU, --cpu_devices splits the
cores into devices first.
"""

import os
import time

import jax
import numpy as np
from absl import app, flags

from audiojax.train import sharding, trainer
from launch import common

_CONFIG = flags.DEFINE_string("config", "configs/wavenet.py:paper", "Config file[:variant].")
_PER_DEVICE_BATCH = flags.DEFINE_integer("per_device_batch", 4, "Rows per device.")
_CROP = flags.DEFINE_integer("crop_samples", 0, "Samples per row (0: the config's).")
_DTYPE = flags.DEFINE_string("dtype", "", "Compute dtype override, e.g. bfloat16.")
_REMAT = flags.DEFINE_string("remat", "", "Remat policy override: none, full or dots.")
_MESH = flags.DEFINE_string("mesh", "", "data,fsdp,tensor sizes for the all-device mesh "
                            "(default: all on data).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after 2 untimed).")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "CPU only: devices to split the cores "
                                    "into (0: leave JAX's default of one).")


def steps_per_second(config, devices, num_steps: int) -> float:
  """Train steps per second of `config` on a mesh over `devices` (synthetic audio)."""
  model, task, tx, schedule, _, rules = trainer.build(config)
  mesh = sharding.make_mesh(config.mesh if len(devices) > 1 else None, devices)
  state, shardings = trainer.init_state(config, model, task, tx, mesh, rules)
  step = trainer.jit_in_mesh(trainer.make_train_step(model, task, tx, schedule,
                                                     config.train.microbatches), mesh, rules,
                             in_shardings=(shardings, sharding.batch_sharding(mesh), None),
                             out_shardings=(shardings, None), donate_argnums=0)
  rng = np.random.default_rng(0)
  rows, crop = config.data.batch_size, config.data.crop_samples
  batch = sharding.shard_batch({
      "audio": (0.3 * rng.standard_normal((rows, crop))).clip(-1, 1).astype(np.float32),
      "mask": np.ones((rows, crop), np.float32),
      "speaker": rng.integers(0, max(config.model.get("num_speakers", 1), 1), rows
                              ).astype(np.int32)}, mesh)
  for i in range(2):
    state, metrics = step(state, batch, jax.random.key(i))
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for i in range(num_steps):
    state, metrics = step(state, batch, jax.random.key(i))
  jax.block_until_ready((state, metrics))
  return num_steps / (time.perf_counter() - start)


def main(argv):
  del argv
  if _CPU_DEVICES.value:
    sharding.use_cpu_cores(_CPU_DEVICES.value)
  config = common.load_config_file(_CONFIG.value)
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
  print(f"{_CONFIG.value}: dtype {config.model.dtype}, remat {config.model.remat}, "
        f"{config.data.crop_samples} samples x {_PER_DEVICE_BATCH.value} rows per device; "
        f"{len(devices)} x {devices[0].device_kind}; load average {os.getloadavg()[0]:.1f}")
  print(f"{'devices':>7} {'batch':>6} {'steps/s':>8} {'samples/s':>11} {'efficiency':>10}")
  base = None
  for group in ([devices[:1], devices] if len(devices) > 1 else [devices]):
    config.data.batch_size = _PER_DEVICE_BATCH.value * len(group)
    rate = steps_per_second(config, group, _STEPS.value)
    samples = rate * config.data.batch_size * config.data.crop_samples
    base = base or samples
    print(f"{len(group):>7} {config.data.batch_size:>6} {rate:>8.2f} {samples:>11,.0f} "
          f"{samples / (base * len(group)):>10.2f}", flush=True)


if __name__ == "__main__":
  app.run(main)
