"""Autoregressive sampling from `audiojax.models.transformer.Model`, with its KV cache.

`sample` prefills the cache with the whole prompt in one `decode` call, then runs a jitted
`lax.scan` of fixed length over one-token cached steps: O(position) attention work per token
instead of a full forward. The cache grows in segments (`cache_sizes`): each step attends
over the current segment's length, not the whole run's, and a segment's cache is padded into
the next one once (a few static shapes: one compiled step per segment). A `scan_layers`
model decodes unrolled, its params unstacked (`transformer.unstack_layers`; the module
docstring there says why). On a CPU, params from `transformer.bfloat16_weights` /
`int8_weights` and `bfloat16_cache=True` (keys and values as bfloat16 in the layout of
`audiojax/kernels/cpu_matmul.cc`, segments rounded up to whole tiles of 64 positions) read
fewer bytes per token (benchmarks/RESULTS.md), with slightly different logits. `sample_uncached`
reruns the full forward over the whole (fixed length, zero padded) sequence at every step: the
slow reference it must agree with.

Token t of the continuation is drawn from the logits at position p + t - 1 (p = prompt length)
by `next_tokens`, in this order:
  1. `allowed_range`: tokens outside [lo, hi) of step t get -inf (AudioLM's coarse stage
     draws each RVQ level from its own slice of a shared vocabulary);
  2. temperature T: logits / T; T = 0 takes the argmax of the allowed logits (greedy);
  3. top_k > 0: only the k largest logits stay (ties with the k-th stay too);
  4. top_p < 1 (nucleus): the smallest set of largest logits whose probability (after 1-3)
     reaches top_p stays;
  5. a Gumbel-max draw (`jax.random.categorical`) with the key `fold_in(rng, t)`: both samplers
     use the same noise at step t, so equal logits give equal tokens, and a token with -inf
     logit is never drawn.

`params` is the model's params tree (`variables["params"]`).
"""

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.models import transformer

AllowedRange = Callable[[int], tuple[int, int]] | Sequence[int] | np.ndarray | jax.Array | None


def step_ranges(allowed_range: AllowedRange, num_tokens: int) -> jnp.ndarray | None:
  """The allowed [lo, hi) of every step as int32 [num_tokens, 2], or None (all tokens).

  allowed_range: None; one (lo, hi) pair for every step; an array [num_tokens, 2]; or a
  function of the step index t (a Python int, 0 for the first drawn token) -> (lo, hi),
  called once per step here, before sampling.
  """
  if allowed_range is None:
    return None
  if callable(allowed_range):
    ranges = np.asarray([allowed_range(t) for t in range(num_tokens)], np.int32)
  else:
    ranges = np.asarray(allowed_range, np.int32)
    if ranges.shape == (2,):
      ranges = np.broadcast_to(ranges, (num_tokens, 2))
  if ranges.shape != (num_tokens, 2):
    raise ValueError(f"allowed_range gives shape {ranges.shape}, not ({num_tokens}, 2)")
  if (ranges[:, 0] >= ranges[:, 1]).any():
    raise ValueError("allowed_range has an empty [lo, hi) step")
  return jnp.asarray(ranges)


def filter_logits(logits: jnp.ndarray, temperature: float, top_k: int, top_p: float,
                  allowed: jnp.ndarray | None = None) -> jnp.ndarray:
  """logits [b, V] -> [b, V] after the range mask, temperature, top-k and top-p (module
  docstring, steps 1-4); filtered-out tokens get -inf. allowed: int32 [2] = [lo, hi) or None."""
  if allowed is not None:
    ids = jnp.arange(logits.shape[-1])
    logits = jnp.where((ids >= allowed[0]) & (ids < allowed[1]), logits, -jnp.inf)
  if temperature == 0.0:
    return logits  # Greedy: the argmax needs no more filtering.
  logits = logits / temperature
  if top_k > 0:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]  # [b, 1]
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
  if top_p < 1.0:
    ranked = -jnp.sort(-logits, axis=-1)  # descending
    probs = jax.nn.softmax(ranked, axis=-1)
    # associative_scan: XLA:CPU lowers jnp.cumsum to a quadratic reduce-window.
    before = jax.lax.associative_scan(jnp.add, probs, axis=-1) - probs  # mass above each
    threshold = jnp.min(jnp.where(before < top_p, ranked, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits >= threshold, logits, -jnp.inf)
  return logits


def gumbel_noise(rng: jax.Array, steps: jnp.ndarray, shape: tuple[int, ...]) -> jnp.ndarray:
  """The Gumbel noise `jax.random.categorical` adds at each of `steps` (key fold_in(rng, t)),
  float32 [len(steps), *shape]: drawn for many steps at once, outside a sampler's loop."""
  return jax.vmap(lambda t: jax.random.gumbel(jax.random.fold_in(rng, t), shape))(steps)


def next_tokens(rng: jax.Array, step: jnp.ndarray, logits: jnp.ndarray, temperature: float,
                top_k: int, top_p: float, ranges: jnp.ndarray | None,
                noise: jnp.ndarray | None = None) -> jnp.ndarray:
  """Draws token `step` of the continuation, int32 [b], from logits [b, V] (module docstring);
  ranges: int32 [num_tokens, 2] from `step_ranges`, or None; noise: this step's
  `gumbel_noise` [b, V] if drawn already (the same draw)."""
  allowed = None if ranges is None else ranges[step]
  logits = filter_logits(logits, temperature, top_k, top_p, allowed)
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  if noise is not None:  # categorical's own arithmetic: argmax(noise + logits)
    return jnp.argmax(noise + logits, axis=-1).astype(jnp.int32)
  return jax.random.categorical(jax.random.fold_in(rng, step), logits).astype(jnp.int32)


def _check(model: transformer.Model, prompt: jnp.ndarray, num_tokens: int, top_k: int,
           top_p: float) -> None:
  if prompt.ndim != 2 or prompt.shape[1] < 1:
    raise ValueError(f"prompt must be [batch, length >= 1] (a start token at least), got shape "
                     f"{prompt.shape}")
  if num_tokens < 1:
    raise ValueError(f"num_tokens={num_tokens}: draw at least one token")
  if not 0 <= top_k <= model.vocab_size:
    raise ValueError(f"top_k={top_k}: use 0 (off) to vocab_size={model.vocab_size}")
  if not 0.0 < top_p <= 1.0:
    raise ValueError(f"top_p={top_p}: use (0, 1] (1: off)")


_STATIC = ("model", "num_tokens", "temperature", "top_k", "top_p")
TILE = transformer.TILE
# A segment's Gumbel noise is drawn before its loop up to this size, else step by step: in the
# loop, XLA:CPU runs the draw's threefry hash as a loop of its own (~10% of a batch-1 step).
NOISE_BYTES = 1 << 27


def cache_sizes(prompt_length: int, num_tokens: int, smallest: int = 128, growth: float = 1.5,
                multiple: int = 64) -> tuple[int, ...]:
  """The KV cache's lengths (positions) over a run, in order: `smallest` (at least the prompt
  plus one token), then each about `growth` times the last (rounded up to `multiple`), the
  last exactly prompt_length + num_tokens - 1 (the last drawn token is never fed back); a
  segment shorter than `multiple` joins the last. growth=0: one cache of that full length."""
  total = prompt_length + num_tokens - 1
  sizes, size = [], max(smallest, prompt_length + 1)
  while growth and (size := -(-size // multiple) * multiple) + multiple <= total:
    sizes.append(size)
    size = int(size * growth)
  return (*sizes, total)


def _grow(cache: tuple[transformer.LayerCache, ...], size: int):
  """Per-layer caches (keys [b, N, H, S], values [b, N, S, H]; tiled: keys [b, N, S / 64, H,
  64], values [b, N, H / 64, S, 64]) -> zero padded to S = size."""
  def pad(x, axis, length):
    return jnp.pad(x, [(0, length - x.shape[axis]) if a == axis else (0, 0)
                       for a in range(x.ndim)])
  return tuple(c.replace(key=pad(c.key, 2, size // TILE) if c.tiled else
                         pad(c.key, 3, size), value=pad(c.value, c.value.ndim - 2, size))
               for c in cache)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "unroll", "growth", "tiled"))
def _sample(model, params, prompt, rng, ranges, *, num_tokens, temperature, top_k, top_p,
            unroll, growth, tiled):
  batch, length = prompt.shape
  if model.scan_layers:  # Per-layer caches update in place; a scanned stack copies them.
    model, params = model.clone(scan_layers=False), transformer.unstack_layers(params)
  draw = functools.partial(next_tokens, rng, temperature=temperature, top_k=top_k, top_p=top_p,
                           ranges=ranges)
  decode = functools.partial(model.apply, {"params": params}, method="decode")
  sizes = cache_sizes(length, num_tokens, growth=growth)
  if tiled:  # Whole tiles: the last segment rounded up (its extra slots stay masked).
    sizes = tuple(sorted({-(-size // TILE) * TILE for size in sizes}))
  cache = model.init_cache(batch, sizes[0], tiled=tiled)
  logits, cache = decode(prompt.astype(jnp.int32), cache, 0)  # prefill, one call
  token = draw(jnp.int32(0), logits[:, -1])

  def step(carry, xs):
    cache, token = carry  # token t - 1, at position length + t - 1
    t, noise = xs
    logits, cache = decode(token[:, None], cache, length + t - 1)
    token = draw(t, logits[:, 0], noise=noise)
    return (cache, token), token

  drawn, first_step = [token[:, None]], 1
  for size in sizes:  # Steps t <= size - length fit a cache of `size` positions.
    cache = _grow(cache, size)
    last_step = min(size - length, num_tokens - 1)
    if last_step >= first_step:
      steps = jnp.arange(first_step, last_step + 1, dtype=jnp.int32)
      noise = None
      if temperature and steps.size * batch * model.vocab_size * 4 <= NOISE_BYTES:
        noise = gumbel_noise(rng, steps, (batch, model.vocab_size))
      (cache, token), rest = jax.lax.scan(step, (cache, token), (steps, noise), unroll=unroll)
      drawn.append(rest.T)
    first_step = last_step + 1
  return jnp.concatenate(drawn, axis=1)


def sample(model: transformer.Model, params, prompt: jnp.ndarray, num_tokens: int,
           rng: jax.Array, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           allowed_range: AllowedRange = None, unroll: int = 1,
           cache_growth: float = 1.5, bfloat16_cache: bool = False) -> jnp.ndarray:
  """Continues prompt: int32 [b, p] (p >= 1) by num_tokens tokens -> int32 [b, num_tokens],
  with the KV cache (module docstring for the filters; top_k 0 and top_p 1 are off).
  cache_growth: of the cache's segments (`cache_sizes`; 0: one full-length cache).
  bfloat16_cache: keys and values rounded to bfloat16 in the tiled layout that a CPU decode
  step reads in half the bytes (`Model.init_cache(tiled=True)`; head_dim a multiple of 64)."""
  _check(model, prompt, num_tokens, top_k, top_p)
  if bfloat16_cache and model.layer_head_dim % TILE:
    raise ValueError(f"bfloat16_cache needs head_dim a multiple of {TILE}, not "
                     f"{model.layer_head_dim}")
  return _sample(model, params, jnp.asarray(prompt), rng, step_ranges(allowed_range, num_tokens),
                 num_tokens=num_tokens, temperature=float(temperature), top_k=int(top_k),
                 top_p=float(top_p), unroll=unroll, growth=float(cache_growth),
                 tiled=bool(bfloat16_cache))


@functools.partial(jax.jit, static_argnames=_STATIC)
def _sample_uncached(model, params, prompt, rng, ranges, *, num_tokens, temperature, top_k,
                     top_p):
  batch, length = prompt.shape
  # tokens[:, :length + t] are known at step t; later slots are zeros the causal mask hides.
  tokens = jnp.zeros((batch, length + num_tokens), jnp.int32).at[:, :length].set(prompt)

  def step(tokens, t):
    logits = model.apply({"params": params}, tokens[:, :-1])  # [b, length + num_tokens - 1, V]
    logits_t = jax.lax.dynamic_index_in_dim(logits, length + t - 1, axis=1, keepdims=False)
    token = next_tokens(rng, t, logits_t, temperature, top_k, top_p, ranges)
    return jax.lax.dynamic_update_index_in_dim(tokens, token, length + t, axis=1), None

  tokens, _ = jax.lax.scan(step, tokens, jnp.arange(num_tokens, dtype=jnp.int32))
  return tokens[:, length:]


def sample_uncached(model: transformer.Model, params, prompt: jnp.ndarray, num_tokens: int,
                    rng: jax.Array, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                    allowed_range: AllowedRange = None) -> jnp.ndarray:
  """Like `sample`, but every step reruns `Model.__call__` on the whole sequence (no cache)."""
  _check(model, prompt, num_tokens, top_k, top_p)
  return _sample_uncached(model, params, jnp.asarray(prompt), rng,
                          step_ranges(allowed_range, num_tokens), num_tokens=num_tokens,
                          temperature=float(temperature), top_k=int(top_k), top_p=float(top_p))
