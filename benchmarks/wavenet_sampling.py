r"""WaveNet sampling speed: scan sampler vs naive sampler vs a Python loop over a jitted step.

  python -m benchmarks.wavenet_sampling --config=paper --batch_sizes=1,16 --seconds=1

All three draw from the same randomly initialised model in the same process. Compile time is
excluded (each variant runs once before it is timed) and every timing ends with
`block_until_ready`. The naive sampler reruns the whole receptive field every step, so it is
timed on `--naive_steps` steps only (its cost per step does not depend on the step).
"""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from audiojax.models import wavenet
from audiojax.sample import wavenet as sampler
from audiojax.train import sharding
from benchmarks.timing import best_time

CONFIGS = {
    # van den Oord et al.: dilations 1..512 x 3 = 30 layers, receptive field 3070 samples.
    "paper": dict(),
    # Quick check: 12 layers, receptive field 127 samples.
    "small": dict(residual_channels=32, gate_channels=64, skip_channels=64, head_channels=64,
                  dilation_cycles=2, max_dilation=32),
    # configs/wavenet.py:music's size (18 layers, receptive field 1023 samples), and with
    # music_context's context stack (its rerun once per 256 steps is what this costs).
    "music": dict(residual_channels=32, gate_channels=64, skip_channels=128, head_channels=128,
                  dilation_cycles=2, max_dilation=256),
}
CONFIGS["music_context"] = dict(**CONFIGS["music"], context_hop=256, context_window=1024,
                                context_layers=7, context_width=64)

_CONFIG = flags.DEFINE_enum("config", "paper", list(CONFIGS), "Model size.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "16"], "Batch sizes to time.")
_SECONDS = flags.DEFINE_float("seconds", 1.0, "Audio seconds drawn by the scan and loop samplers.")
_SAMPLE_RATE_HZ = flags.DEFINE_integer("sample_rate_hz", 16000, "Samples per audio second.")
_NAIVE_STEPS = flags.DEFINE_integer("naive_steps", 4, "Steps timed (once) for the naive sampler.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs of scan and loop; the fastest counts.")
_UNROLL = flags.DEFINE_integer("unroll", 1, "lax.scan unroll of the scan sampler.")
_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 0, "CPU devices for the split scan sampler (0: one per usable CPU).")
_PRECISION = flags.DEFINE_enum(
    "matmul_precision", "highest", ["default", "high", "highest"], "jax_default_matmul_precision."
    " 'highest' keeps float32 matmuls exact on GPUs (their default rounds to tf32, and a rare "
    "near-tie then draws another class, so the samplers' draws would differ).")
_CPUS = flags.DEFINE_integer(
    "cpus", 0, "Pin the process to this many CPUs before JAX starts (0: leave as is), to see "
    "what XLA:CPU's thread pool adds or costs on a step that is a chain of small ops.")


def python_loop_sampler(model: wavenet.Model, params, batch_size: int):
  """`draw(rng, num_samples)`: a Python `for` over a jitted one-sample step (queues donated)."""

  @functools.partial(jax.jit, donate_argnums=(1,))
  def step(weights, state, inputs_t, uniforms):
    uniform = uniforms[state.step]
    state, logits = wavenet.decode_step(model, weights, state, inputs_t)
    return state, sampler.next_classes(uniform, logits, 1.0)

  weights = jax.jit(wavenet.decode_weights, static_argnums=0)(model, params)
  first = jnp.full((batch_size,), sampler.silence_class(model), jnp.int32)

  def draw(rng, num_samples):
    uniforms = sampler.step_uniforms(rng, num_samples, batch_size)
    state, outputs_t = wavenet.init_decode_state(model, weights, batch_size), first
    outputs = []
    for _ in range(num_samples):
      state, outputs_t = step(weights, state, outputs_t, uniforms)
      outputs.append(outputs_t)
    return np.stack(jax.device_get(outputs), axis=1)  # (jnp.stack would compile N operands)

  return draw


def check_same_draws(a: np.ndarray, b: np.ndarray, what: str) -> None:
  """Exact on the CPU. On a GPU, programs compiled differently (scan vs loop) round differently
  even at the highest matmul precision, and one near-tie changes the rest of its row (seen on an
  H200: rows equal for 7,500 steps, then apart), so there it reports how many draws agree."""
  if jax.default_backend() == "cpu":
    np.testing.assert_array_equal(a, b, err_msg=what)
  elif (agree := np.mean(a == b)) < 1:
    print(f"  ({what}: {agree:.2%} of draws agree; rows part after a near-tie)")


def samples_per_second(model: wavenet.Model, params, batch_size: int, num_samples: int,
                       naive_steps: int, mesh) -> dict[str, float]:
  """Samples/s (summed over the batch) of the samplers on the same model and rng.

  `split` is the scan sampler with the batch split over `mesh` (NaN when it does not divide).
  """
  rng = jax.random.key(1)
  scan = lambda: sampler.sample(model, params, num_samples=num_samples, batch_size=batch_size,
                                rng=rng, unroll=_UNROLL.value)
  split = lambda: sampler.sample(model, params, num_samples=num_samples, batch_size=batch_size,
                                 rng=rng, unroll=_UNROLL.value, mesh=mesh)
  naive = lambda: sampler.naive_sample(model, params, num_samples=naive_steps,
                                       batch_size=batch_size, rng=rng)
  loop_draw = python_loop_sampler(model, params, batch_size)
  loop = lambda: loop_draw(rng, num_samples)
  # Untimed first runs (compilation); with the same per-step uniforms all three agree.
  first = {name: np.asarray(fn()) for name, fn in
           [("scan", scan), ("loop", loop), ("naive", naive)]}
  check_same_draws(first["scan"][:, :naive_steps], first["naive"], "scan vs naive")
  check_same_draws(first["scan"], first["loop"], "scan vs loop")
  split_rate = float("nan")
  if mesh.size > 1 and batch_size % mesh.size == 0:
    check_same_draws(first["scan"], np.asarray(split()), "scan vs split")
    split_rate = batch_size * num_samples / best_time(split, _REPEATS.value, warmup=False)
  return {"scan": batch_size * num_samples / best_time(scan, _REPEATS.value, warmup=False),
          "split": split_rate,
          "loop": batch_size * num_samples / best_time(loop, _REPEATS.value, warmup=False),
          "naive": batch_size * naive_steps / best_time(naive, 1, warmup=False)}


def main(argv):
  del argv
  if _CPUS.value:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:_CPUS.value])
  sharding.use_cpu_cores(_DEVICES.value or None)
  jax.config.update("jax_default_matmul_precision", _PRECISION.value)
  mesh = sharding.make_mesh()
  model = wavenet.Model(**CONFIGS[_CONFIG.value])
  params = nn.meta.unbox(
      jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"])
  num_params = sum(x.size for x in jax.tree.leaves(params))
  num_samples = int(_SECONDS.value * _SAMPLE_RATE_HZ.value)
  print(f"config={_CONFIG.value}: {len(model.dilations)} layers, receptive field "
        f"{model.receptive_field} samples, {num_params / 1e6:.2f}M params; {num_samples} "
        f"samples per run (naive: {_NAIVE_STEPS.value}); {jax.devices()[0].device_kind}, matmul "
        f"precision {_PRECISION.value}, "
        f"{len(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs, split over {mesh.size} "
        f"devices, load average "
        f"{os.getloadavg()[0]:.1f}")
  print(f"{'batch':>5} {'scan/s':>10} {'split/s':>10} {'loop/s':>10} {'naive/s':>9} "
        f"{'scan/naive':>10} {'scan/loop':>9} {'x realtime':>10}", flush=True)
  for batch_size in map(int, _BATCH_SIZES.value):
    rates = samples_per_second(model, params, batch_size, num_samples, _NAIVE_STEPS.value, mesh)
    print(f"{batch_size:>5} {rates['scan']:>10,.0f} {rates['split']:>10,.0f} "
          f"{rates['loop']:>10,.0f} "
          f"{rates['naive']:>9,.1f} {rates['scan'] / rates['naive']:>10,.0f} "
          f"{rates['scan'] / rates['loop']:>9,.1f} "
          f"{rates['scan'] / _SAMPLE_RATE_HZ.value:>10.2f}", flush=True)
  print(f"samples/s summed over the batch; split: the scan sampler with the batch split over "
        f"the {mesh.size} devices; x realtime (of scan) at {_SAMPLE_RATE_HZ.value} Hz; load "
        f"average now {os.getloadavg()[0]:.1f} (other jobs on these CPUs slow every column).")


if __name__ == "__main__":
  app.run(main)
