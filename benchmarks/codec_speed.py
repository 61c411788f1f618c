r"""SoundStream encode + decode speed as a real-time factor (audio seconds per wall second).

  python -m benchmarks.codec_speed [--configs=paper16k,paper24k] [--seconds=4]
      [--stream_frames=1,2,4,8,16] [--dtypes=float32,float32_3x,bfloat16]

Randomly initialised codecs (speed does not depend on the weights), batch 1. Offline: the
whole clip through jitted encode then decode. Streaming, for each chunk size in
`--stream_frames` (latency = the chunk's duration): the clip arrives as numpy chunks, as from
a sound card, and each goes through jitted `soundstream.encode_step` then `decode_step`, the
state carried (donated) between chunks. Compile time is excluded; the fastest of `--repeats`
runs counts. Each row prints offline / streaming from the same run.
"""

import functools
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
_STREAM_FRAMES = flags.DEFINE_list("stream_frames", ["1", "2", "4", "8", "16"],
                                   "Frames per streaming chunk, one row each.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs; the fastest counts.")
_BITRATE = flags.DEFINE_float("bitrate_kbps", 6.0, "Levels used (paper24k: 6 kbps = 8).")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "float32_3x", "bfloat16"],
                            "Compute dtypes, rows for each. float32_3x: float32 under "
                            "jax.default_matmul_precision('high'); on a CPU with AMX its convs "
                            "run audiojax.kernels.amx_conv in three bfloat16 passes, bfloat16's "
                            "(weights cast once) in one.")


def real_time_factors(variant: str, dtype: str
                      ) -> tuple[float, int, float, dict[int, tuple[float, float]]]:
  """(params in millions, levels used, offline x real time,
  {frames per chunk: (latency in ms, streaming x real time)})."""
  config = common.load_config_file(f"configs/soundstream.py:{variant}")
  dtype = dtype.removesuffix("_3x")
  model = soundstream.Model(**{**{k: v for k, v in config.model.items() if k != "name"},
                               "dtype": jnp.dtype(dtype)})
  hop, rate = model.hop_samples, model.sample_rate_hz
  frames = int(_SECONDS.value * rate) // hop
  audio = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (1, frames * hop)),
                      jnp.float32)
  rngs = {"params": jax.random.key(0), "quantizer": jax.random.key(1)}
  variables = jax.jit(lambda a: model.init(rngs, a))(audio[:, :hop])
  codec = {k: v for k, v in variables["params"].items() if k not in soundstream.DISCRIMINATORS}
  variables = {"params": jax.tree.map(lambda x: x.astype(dtype), codec),
               "codebooks": variables["codebooks"]}
  nq = min(model.num_quantizers, max(1, round(
      _BITRATE.value * 1000 / (rate / hop * np.log2(model.codebook_size)))))

  encode = jax.jit(lambda v, a: model.apply(v, a, nq, method=model.encode))
  decode = jax.jit(lambda v, c: model.apply(v, c, method=model.decode))
  offline = best_time(lambda: decode(variables, encode(variables, audio)), _REPEATS.value)

  enc_step = jax.jit(lambda s, a: soundstream.encode_step(model, variables, s, a, nq),
                     donate_argnums=0)
  dec_step = jax.jit(lambda s, c: soundstream.decode_step(model, variables, s, c),
                     donate_argnums=0)

  # A fresh (zero) state per stream, in one call: the state is donated chunk by chunk.
  new_state = jax.jit(lambda: soundstream.init_stream(model, variables, 1, nq))

  def stream(chunks):
    state = new_state()
    out = []
    for chunk in chunks:
      state, codes = enc_step(state, chunk)
      state, piece = dec_step(state, codes)
      out.append(piece)
    return out

  streaming = {}
  for frames_per_chunk in map(int, _STREAM_FRAMES.value):
    chunk = frames_per_chunk * hop
    chunks = np.split(np.asarray(audio)[:, :audio.shape[1] // chunk * chunk],
                      audio.shape[1] // chunk, axis=1)
    streamed = best_time(functools.partial(stream, chunks), _REPEATS.value)
    streaming[frames_per_chunk] = (1000 * chunk / rate, len(chunks) * chunk / rate / streamed)
  seconds = audio.shape[1] / rate
  num_params = sum(x.size for x in jax.tree.leaves(codec)) / 1e6
  return num_params, nq, seconds / offline, streaming


def main(argv):
  del argv
  print(f"{jax.devices()[0].device_kind}, {len(os.sched_getaffinity(0))} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; {_SECONDS.value} s clips, batch 1, best of "
        f"{_REPEATS.value}; chunk: frames per streaming call")
  print(f"{'config':>10} {'dtype':>10} {'params':>8} {'nq':>3} {'offline x RT':>13} {'chunk':>6} "
        f"{'latency ms':>11} {'stream x RT':>12} {'offline/stream':>15}")
  for variant in _CONFIGS.value:
    for dtype in _DTYPES.value:
      with jax.default_matmul_precision("high" if dtype.endswith("_3x") else None):
        params, nq, offline, streaming = real_time_factors(variant, dtype)
      for frames, (latency, speed) in streaming.items():
        print(f"{variant:>10} {dtype:>10} {params:>7.2f}M {nq:>3} {offline:>13.1f} {frames:>6} "
              f"{latency:>11.1f} {speed:>12.1f} {offline / speed:>15.2f}", flush=True)


if __name__ == "__main__":
  app.run(main)
