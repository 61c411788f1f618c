r"""Vocoder sampling speed: what each conditioning option costs the scan sampler per sample.

  python -m benchmarks.vocoder_sampling --variants=vocoder_period,quickstart --batch_sizes=1,4

Each variant of configs/wavenet.py (randomly initialised) resynthesises the same features: the
log-mel and excitation of a built-in corpus clip (`--data_dir`, default the usual data
directory), so the period taps and predictors see real periods and envelopes. Compile time is
excluded; the fastest of `--repeats` runs counts; the ratio is against the first variant,
measured in the same process.
"""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import app, flags

from audiojax import models
from audiojax.data import pipeline
from audiojax.sample import wavenet as sampler
from audiojax.train import tasks
from benchmarks.timing import best_time
from configs import wavenet as wavenet_configs

_VARIANTS = flags.DEFINE_list("variants", ["vocoder_period", "quickstart"],
                              "configs/wavenet.py variants; the first is the baseline.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "4"], "Batch sizes to time.")
_SECONDS = flags.DEFINE_float("seconds", 1.0, "Audio seconds drawn per run.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs; the fastest counts.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Built-in corpus directory (default: the usual).")


def main(argv):
  del argv
  print(f"{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}")
  print(f"{'variant':>14} {'batch':>5} {'samples/s':>10} {'x realtime':>10} {'vs first':>8}")
  baseline = {}
  for variant in _VARIANTS.value:
    config = wavenet_configs.get_config(variant)
    if _DATA_DIR.value:
      config.data.data_dir = _DATA_DIR.value
    model = models.get_model(config.model)
    rate = config.data.sample_rate_hz
    num_samples = int(_SECONDS.value * rate)
    for batch_size in map(int, _BATCH_SIZES.value):
      audio, speakers = pipeline.held_out_clips(config.data, config.data.test_split, batch_size,
                                                num_samples)
      condition = tasks.condition_features(model, jnp.asarray(audio))
      speaker = jnp.asarray(speakers, jnp.int32)
      params = nn.meta.unbox(jax.jit(model.init)(
          jax.random.key(0), jnp.zeros((batch_size, 8), jnp.int32), speaker,
          condition[:, :1])["params"])

      draw = functools.partial(sampler.sample, model, params, num_samples=num_samples,
                               batch_size=batch_size, rng=jax.random.key(1), speaker=speaker,
                               condition=condition)
      samples_per_s = batch_size * num_samples / best_time(draw, _REPEATS.value)
      baseline.setdefault(batch_size, samples_per_s)
      print(f"{variant:>14} {batch_size:>5} {samples_per_s:>10,.0f} "
            f"{samples_per_s / rate:>10.2f} {samples_per_s / baseline[batch_size]:>8.2f}",
            flush=True)
  print(f"samples/s summed over the batch; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  app.run(main)
