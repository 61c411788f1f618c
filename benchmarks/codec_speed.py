r"""SoundStream encode + decode speed as a real-time factor (audio seconds per wall second).

  python -m benchmarks.codec_speed [--configs=paper16k,paper24k] [--seconds=4]

Randomly initialised codecs (speed does not depend on the weights), batch 1. Offline: the
whole clip through jitted encode then decode. Streaming: `soundstream.encode_step` and
`decode_step` one chunk of `--stream_frames` frames at a time, jitted, the state carried
between chunks. Compile time is excluded; the fastest of `--repeats` runs counts.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from audiojax.models import soundstream
from benchmarks.timing import best_time
from launch import common

_CONFIGS = flags.DEFINE_list("configs", ["paper16k", "paper24k"], "configs/soundstream.py "
                             "variants.")
_SECONDS = flags.DEFINE_float("seconds", 4.0, "Audio per run.")
_STREAM_FRAMES = flags.DEFINE_integer("stream_frames", 1, "Frames per streaming chunk.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs; the fastest counts.")
_BITRATE = flags.DEFINE_float("bitrate_kbps", 6.0, "Levels used (paper24k: 6 kbps = 8).")


def real_time_factors(variant: str) -> tuple[float, int, float, float]:
  """(params in millions, levels used, offline x real time, streaming x real time)."""
  config = common.load_config_file(f"configs/soundstream.py:{variant}")
  model = soundstream.Model(**{k: v for k, v in config.model.items() if k != "name"})
  hop, rate = model.hop_samples, model.sample_rate_hz
  frames = int(_SECONDS.value * rate) // hop
  audio = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (1, frames * hop)),
                      jnp.float32)
  rngs = {"params": jax.random.key(0), "quantizer": jax.random.key(1)}
  variables = jax.jit(lambda a: model.init(rngs, a))(audio[:, :hop])
  codec = {k: v for k, v in variables["params"].items() if k not in soundstream.DISCRIMINATORS}
  variables = {"params": codec, "codebooks": variables["codebooks"]}
  nq = min(model.num_quantizers, max(1, round(
      _BITRATE.value * 1000 / (rate / hop * np.log2(model.codebook_size)))))

  encode = jax.jit(lambda v, a: model.apply(v, a, nq, method=model.encode))
  decode = jax.jit(lambda v, c: model.apply(v, c, method=model.decode))
  offline = best_time(lambda: decode(variables, encode(variables, audio)), _REPEATS.value)

  chunk = _STREAM_FRAMES.value * hop
  enc_step = jax.jit(lambda s, a: soundstream.encode_step(model, variables, s, a, nq))
  dec_step = jax.jit(lambda s, c: soundstream.decode_step(model, variables, s, c))

  def stream():
    state = soundstream.init_stream(model, variables, 1, nq)
    out = []
    for start in range(0, audio.shape[1] - chunk + 1, chunk):
      state, codes = enc_step(state, audio[:, start:start + chunk])
      state, piece = dec_step(state, codes)
      out.append(piece)
    return out

  streaming = best_time(stream, _REPEATS.value)
  seconds = audio.shape[1] / rate
  num_params = sum(x.size for x in jax.tree.leaves(codec)) / 1e6
  return num_params, nq, seconds / offline, seconds / streaming


def main(argv):
  del argv
  print(f"{jax.devices()[0].device_kind}, {len(os.sched_getaffinity(0))} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; {_SECONDS.value} s clips, batch 1, best of "
        f"{_REPEATS.value}, {_STREAM_FRAMES.value} frame(s) per streaming chunk")
  print(f"{'config':>10} {'params':>8} {'nq':>3} {'offline x RT':>13} {'stream x RT':>12} "
        f"{'offline/stream':>15}")
  for variant in _CONFIGS.value:
    params, nq, offline, streaming = real_time_factors(variant)
    print(f"{variant:>10} {params:>7.2f}M {nq:>3} {offline:>13.1f} {streaming:>12.1f} "
          f"{offline / streaming:>15.2f}", flush=True)


if __name__ == "__main__":
  app.run(main)
