r"""AudioLM transformer sampling speed: KV-cached sampler vs the uncached reference.

  python -m benchmarks.lm_sampling --preset=bench --batch_sizes=1,16 --num_tokens=500

Both draw from the same randomly initialised `audiojax.models.transformer` model (`--preset`,
default `bench`: 6 layers, width 512, 8 heads, MLP 2048, vocab 1024) after a random prompt of
`--prompt_tokens`, in the same process. Compile time is excluded (each variant runs once
before it is timed) and every timing ends with `block_until_ready`.

cached: `audiojax.sample.lm.sample`, one prefill call then a `lax.scan` of one-token cached
steps, the cache grown in segments (`lm.cache_sizes`, `--cache_growth`); one cache: the same
sampler with a single full-length cache from the start (every step attends over all of it),
its baseline; the time covers the prefill and all `--num_tokens` steps. bf16 / int8 weights:
the cached sampler with the dense kernels stored as bfloat16 / int8 with per-column scales
(`transformer.bfloat16_weights`, `int8_weights`; float32 compute, on the CPU through
`audiojax/kernels/cpu_matmul.py`); + bf16 cache: keys and values kept as bfloat16 too
(`lm.sample(bfloat16_cache=True)`; head_dim a multiple of 64). uncached: `sample_uncached`
reruns the full forward over the whole fixed-length sequence (prompt + num_tokens - 1 tokens)
at every step, so every step costs the same; it is timed on `--uncached_steps` steps at that
full length (a longer random prompt fills the rest) and scaled to tokens/s. A reference that
reran only the prefix so far would average about half of that cost per step, less for
attention.
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from audiojax.models import transformer
from audiojax.sample import lm
from benchmarks.timing import best_time

_PRESET = flags.DEFINE_enum("preset", "bench", list(transformer.PRESETS), "Model size.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "16"], "Batch sizes to time.")
_PROMPT = flags.DEFINE_integer("prompt_tokens", 10, "Prompt length (prefilled in one call).")
_NUM_TOKENS = flags.DEFINE_integer("num_tokens", 500, "Tokens drawn per row by the cached run.")
_UNCACHED_STEPS = flags.DEFINE_integer(
    "uncached_steps", 2, "Steps timed (once) for the uncached reference, at the full length.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs of the cached sampler; the fastest.")
_POSITION = flags.DEFINE_enum("position", "t5_bias", list(transformer.POSITIONS),
                              "Position encoding.")
_SCAN_LAYERS = flags.DEFINE_bool("scan_layers", False, "nn.scan over layers (stacked cache).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Top-k filter of both samplers (0: off).")
_UNROLL = flags.DEFINE_integer("unroll", 1, "lax.scan unroll of the cached sampler.")
_CACHE_GROWTH = flags.DEFINE_float("cache_growth", 1.5, "Growth of the cached sampler's cache "
                                   "segments (lm.cache_sizes).")


# Low-precision variants of the cached sampler: (name, weights cast, bfloat16 KV cache).
LOW_PRECISION = (("bf16 weights", transformer.bfloat16_weights, False),
                 ("bf16 weights + bf16 cache", transformer.bfloat16_weights, True),
                 ("int8 weights", transformer.int8_weights, False),
                 ("int8 weights + bf16 cache", transformer.int8_weights, True))


def tokens_per_second(model: transformer.Model, params, batch_size: int) -> dict[str, float]:
  """Tokens/s (summed over the batch) of every sampler; checks the float32 ones agree on their
  first steps and says how many draws each low-precision variant shares with float32."""
  rng, steps = jax.random.key(1), _UNCACHED_STEPS.value
  tokens = np.random.default_rng(0).integers(
      0, model.vocab_size, (batch_size, _PROMPT.value + _NUM_TOKENS.value)).astype(np.int32)
  prompt = jnp.asarray(tokens[:, :_PROMPT.value])

  def cached_sampler(weights, growth=_CACHE_GROWTH.value, bfloat16_cache=False):
    return lambda: lm.sample(model, weights, prompt, _NUM_TOKENS.value, rng, top_k=_TOP_K.value,
                             unroll=_UNROLL.value, cache_growth=growth,
                             bfloat16_cache=bfloat16_cache)

  samplers = {"cached": cached_sampler(params), "one cache": cached_sampler(params, 0.0)}
  if model.layer_head_dim % transformer.TILE == 0:
    samplers.update({name: cached_sampler(cast(params), bfloat16_cache=cache)
                     for name, cast, cache in LOW_PRECISION})
  # The same per-step work as step t of a full uncached run: the sequence is full length.
  long_prompt = jnp.asarray(tokens[:, :_PROMPT.value + _NUM_TOKENS.value - steps])
  uncached = lambda: lm.sample_uncached(model, params, long_prompt, steps, rng,
                                        top_k=_TOP_K.value)
  check = lm.sample_uncached(model, params, prompt, steps, rng, top_k=_TOP_K.value)
  first = np.asarray(samplers["cached"]())  # compiles
  for name, sampler in samplers.items():
    if name != "cached" and (agree := np.mean(first == np.asarray(sampler()))) < 1:  # compiles
      print(f"  ({name} vs cached: {agree:.0%} of the draws agree)")
  if (agree := np.mean(first[:, :steps] == np.asarray(check))) < 1:
    print(f"  (cached vs uncached: {agree:.0%} of the first {steps} draws agree)")
  jax.block_until_ready(uncached())  # compiles
  rate = lambda f: batch_size * _NUM_TOKENS.value / best_time(f, _REPEATS.value, warmup=False)
  rates = {name: rate(sampler) for name, sampler in samplers.items()}
  return {**rates, "uncached": batch_size * steps / best_time(uncached, 1, warmup=False)}


def main(argv):
  del argv
  model = transformer.from_preset(_PRESET.value, position=_POSITION.value,
                                  scan_layers=_SCAN_LAYERS.value,
                                  dtype=jnp.dtype(_DTYPE.value))
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0),
                                             jnp.zeros((1, 8), jnp.int32))["params"])
  num_params = sum(x.size for x in jax.tree.leaves(params))
  print(f"preset={_PRESET.value}: {model.num_layers} layers, width {model.embed_dim}, "
        f"{model.num_heads} heads, MLP {model.mlp_dim}, vocab {model.vocab_size}, "
        f"{num_params / 1e6:.1f}M params, {_POSITION.value}, {_DTYPE.value}, scan_layers="
        f"{_SCAN_LAYERS.value}; prompt {_PROMPT.value} + {_NUM_TOKENS.value} tokens (uncached: "
        f"{_UNCACHED_STEPS.value} steps at that length); {jax.devices()[0].device_kind}, "
        f"{len(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}")
  sizes = lm.cache_sizes(_PROMPT.value, _NUM_TOKENS.value, growth=_CACHE_GROWTH.value)
  print(f"cache segments (positions): {', '.join(map(str, sizes))}")
  print(f"{'batch':>5}  {'sampler':<26} {'tokens/s':>10} {'vs cached':>10}", flush=True)
  for batch_size in map(int, _BATCH_SIZES.value):
    rates = tokens_per_second(model, params, batch_size)
    for name, value in rates.items():
      print(f"{batch_size:>5}  {name:<26} {value:>10,.1f} {value / rates['cached']:>9.2f}x",
            flush=True)
  print(f"tokens/s summed over the batch; 'vs cached': against the float32 cached sampler "
        f"(cached/uncached is the KV cache's gain); load average now {os.getloadavg()[0]:.1f} "
        "(other jobs on these CPUs slow every row).")


if __name__ == "__main__":
  app.run(main)
