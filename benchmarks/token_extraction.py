r"""Token extraction throughput, in seconds of audio per second, against MFCC k-means tokens.

  python -m benchmarks.token_extraction --variants=quickstart,paper --batch_size=8

Each row tokenizes the same `--num_clips` clips of `--clip_seconds` of audio (random noise:
throughput does not depend on content), batched `--batch_size` at a time, in one process:
  mfcc        the baseline: 39-D MFCCs (`audiojax.eval.mfcc_tokens.mfcc`, jitted) -> k-means;
  <variant>   a `configs/semantic.py:<variant>` encoder (randomly initialised: the cost is the
              same as a trained one) up to layer `--layer` (default: the middle layer), then
              the nearest of K=`--num_clusters` centroids, all in one jitted call.
Compilation is excluded (one untimed pass first); the fastest of `--repeats` passes counts.
Each row prints audio-seconds per second and its ratio to the MFCC row.
"""

import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from audiojax import models
from audiojax.eval import mfcc_tokens
from audiojax.models import kmeans
from configs import semantic

_VARIANTS = flags.DEFINE_list("variants", ["quickstart", "paper"], "configs/semantic.py variants.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Clips per call.")
_NUM_CLIPS = flags.DEFINE_integer("num_clips", 32, "Clips tokenized per pass.")
_CLIP_SECONDS = flags.DEFINE_float("clip_seconds", 4.0, "Length of each clip.")
_LAYER = flags.DEFINE_integer("layer", None, "Encoder layer (default: num_layers // 2).")
_NUM_CLUSTERS = flags.DEFINE_integer("num_clusters", 100, "K.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed passes; the fastest counts.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Encoder compute dtype.")

SAMPLE_RATE_HZ = 16000


def random_kmeans(dim: int, k: int) -> kmeans.KMeans:
  rng = np.random.default_rng(0)
  return kmeans.KMeans(rng.standard_normal((k, dim)).astype(np.float32),
                       np.zeros(dim, np.float32), np.ones(dim, np.float32))


def audio_seconds_per_second(tokenize, clips: np.ndarray) -> float:
  """Fastest pass of tokenize(batch) over all clips, as seconds of audio per second."""
  batches = [jnp.asarray(clips[i:i + _BATCH_SIZE.value])
             for i in range(0, len(clips), _BATCH_SIZE.value)]
  run = lambda: [tokenize(b) for b in batches]
  jax.block_until_ready(run())  # Compile.
  best = float("inf")
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    jax.block_until_ready(run())
    best = min(best, time.perf_counter() - start)
  return clips.shape[0] * clips.shape[1] / SAMPLE_RATE_HZ / best


def main(argv):
  del argv
  print(f"devices: {jax.devices()}")
  samples = int(_CLIP_SECONDS.value * SAMPLE_RATE_HZ)
  clips = (0.1 * np.random.default_rng(0).standard_normal((_NUM_CLIPS.value, samples))
           ).astype(np.float32)
  clusters = random_kmeans(mfcc_tokens.FEATURE_DIM, _NUM_CLUSTERS.value)
  mfcc = jax.jit(lambda a: kmeans.predict(mfcc_tokens.mfcc(a, SAMPLE_RATE_HZ, 50.0), clusters))
  baseline = audio_seconds_per_second(mfcc, clips)
  print(f"{_NUM_CLIPS.value} clips of {_CLIP_SECONDS.value:g} s, batch {_BATCH_SIZE.value}")
  print(f"| tokens | params | audio s / s | vs MFCC |\n|---|---|---|---|\n"
        f"| MFCC k-means (K={_NUM_CLUSTERS.value}) | 0 | {baseline:,.0f} | 1.00 |")
  for variant in _VARIANTS.value:
    config = semantic.get_config(variant)
    config.model.dtype = _DTYPE.value
    model = models.get_model(config.model)
    layer = _LAYER.value or model.num_layers // 2
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), jnp.asarray(clips[:1]))
                           ["params"])
    centroids = random_kmeans(model.embed_dim, _NUM_CLUSTERS.value)
    tokenize = jax.jit(lambda a, p=params, m=model, c=centroids, layer=layer: kmeans.predict(
        m.apply({"params": p}, a, layer, method="features").astype(jnp.float32), c))
    speed = audio_seconds_per_second(tokenize, clips)
    count = sum(x.size for x in jax.tree.leaves(params))
    print(f"| {variant} layer {layer} ({_DTYPE.value}) | {count / 1e6:.1f}M | {speed:,.0f} "
          f"| {speed / baseline:.3g} |", flush=True)


if __name__ == "__main__":
  app.run(main)
