"""Decoder-only transformer for AudioLM's token stages, with a KV cache for sampling.

Each AudioLM stage (semantic, coarse, fine) is a decoder-only transformer over a flat token
sequence: 12 layers, 16 heads, width 1024, MLP 4096, dropout 0.1, T5-style relative position
bias (Borsos et al., 2022; `PRESETS["paper"]`).

  logits = model.apply({"params": params}, tokens, train)           # [b, t] -> [b, t, vocab]
  cache = model.init_cache(batch, max_length)                       # zeros, no params needed
  logits, cache = model.apply({"params": params}, chunk, cache, position, method="decode")

Layer: pre-norm (`norm`: rms | layer), x += Dropout(Attention(Norm(x))), x += Dropout(MLP(Norm(x)));
a final norm, then the output projection (the token embedding's transpose when
`tie_embeddings`). No biases in the dense layers (T5). MLP (`mlp`): gelu = W2 gelu(W1 x) (tanh
approximation; gelu_exact: erf, as torch's); swiglu = W2 (silu(W_gate x) * W_up x), three
matrices of [embed, mlp_dim]. `Block` also takes post-norm and dense biases (`norm_first=False`,
`use_bias`: BERT / HuBERT BASE layers, for `hubert`'s imported Hugging Face weights).

Attention is causal self-attention through `jax.nn.dot_product_attention`: the full forward
passes `is_causal=True` (cuDNN's fused kernel then skips the upper triangle; choose it with
`attention_impl="cudnn"`, which needs bfloat16/float16 `dtype` on a GPU), decoding passes a
boolean mask over the cache, always through XLA (one query row per step: memory-bound, a fused
kernel gains nothing). Attention-probability dropout (`attention_dropout_rate > 0` while
training) is not in that API, so training with it takes an explicit softmax path instead.

Positions (`position`):
  t5_bias  T5's learned scalar bias per head and bucket of the distance q - k >= 0
           (`relative_position_bucket`, bidirectional=False: `num_buckets` buckets, half exact
           for distances < num_buckets // 2, the rest log-spaced up to `max_distance`, beyond it
           the last bucket). One [num_buckets, heads] table shared by all layers, as in T5 ("we
           share the position embedding parameters across all layers", Raffel et al. 2020 3.1.2;
           each head has its own). Computed once per call from query and key positions, so the
           cached path's bias (queries at position..position + n - 1, keys at 0..max_length - 1)
           is the same as the full forward's.
  rope     rotary embeddings on queries and keys at their absolute positions (half-split
           pairs, wavelengths up to `rope_max_wavelength`); cached keys are stored rotated.

KV cache: an explicit pytree passed in and returned by `decode`, not flax's mutable `cache`
collection: `decode` is then a pure function the sampler carries through `lax.scan` like any
other state, with no `mutable=` plumbing, and the position is an argument, not hidden state.
Layout: per layer a `LayerCache` of keys [batch, heads, head_dim, max_length] and values
[batch, heads, max_length, head_dim] in `dtype`; a tuple of `num_layers` of them, or one
`LayerCache` with a leading [num_layers] axis when `scan_layers` (scanned alongside the layer
params). Each is the layout its attention dot reads without a transpose: q . k contracts
head_dim with positions last, probs . v contracts positions (XLA:CPU copied the whole cache
of every layer at every step otherwise: with [batch, max_length, heads, head_dim], and with
keys [.., max_length, head_dim]). A decode call attends over the cache as it stood (slots
before `position`) and over its own chunk's keys and values, then writes the chunk at
`position` with `lax.dynamic_update_slice`. Inside the sampler's loop XLA:CPU updates the
cache in place only if the written values depend on the reads (an exact `k + 0 * out`);
otherwise, and when attending over the updated cache, it copied every layer's cache at every
step (`benchmarks/RESULTS.md`). The scanned layout costs more again in a decode step
(`nn.scan` slices each layer's cache out of the stack and writes it back: 3x slower than
unrolled there), so `audiojax.sample.lm` decodes with the unrolled layout (`unstack_layers`)
whatever the model was trained with. Slots at or past `position` hold zeros or stale values;
the mask keeps every query from seeing them.

Params tree (`nn.meta.unbox(model.init(rng, tokens)["params"])`; logical axis names in brackets,
mapped to the mesh by `audiojax.train.sharding.RULES`), L layers, V vocab, D embed, N heads,
H head_dim, F mlp_dim, B num_buckets:
  embed/embedding                   [V', D]         (vocab, embed)    V' = V rounded up to
                                                                      `vocab_multiple`
  relative_bias                     [B, N]          (None, heads)     t5_bias only
  layer_{l}/attention_norm/scale    [D]             (embed)           (+ bias for layer norm)
  layer_{l}/attention/{query,key,value}/kernel [D, N, H]  (embed, heads, kv)
  layer_{l}/attention/out/kernel    [N, H, D]       (heads, kv, embed)
  layer_{l}/mlp_norm/scale          [D]             (embed)
  layer_{l}/mlp/{wi,wi_gate,wi_up}/kernel [D, F]    (embed, mlp)      wi: gelu; gate/up: swiglu
  layer_{l}/mlp/wo/kernel           [F, D]          (mlp, embed)
  final_norm/scale                  [D]             (embed)
  logits/kernel                     [D, V']         (embed, vocab)    untied only
Blocks with `use_bias` (`hubert`) add a `bias` beside each kernel: [N, H] (heads, kv) for query,
key and value, [F] (mlp) for wi, [D] (embed) for out and wo.
With `scan_layers`, `layer_{l}/...` becomes `layers/...` with a leading [L] axis named `layers`
(not in RULES: replicated, each device holds its slice of the other axes for every layer).
Activations are constrained to (batch, time, embed), (batch, time, heads, kv) and
(batch, time, mlp); logits to (batch, time, vocab).
"""

import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from audiojax.kernels import cpu_matmul
from audiojax.models.wavenet import remat

POSITIONS = ("t5_bias", "rope")

TILE = cpu_matmul.TILE  # key positions / value channels per tile of a tiled cache

PRESETS: dict[str, dict[str, Any]] = {
    # Unit tests: fast to compile and run on a CPU.
    "tiny": dict(vocab_size=64, num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64),
    # benchmarks/lm_sampling.py: ~19M params in the layers.
    "bench": dict(vocab_size=1024, num_layers=6, embed_dim=512, num_heads=8, mlp_dim=2048),
    # AudioLM's stages (Borsos et al. 2022): 12 layers, 16 heads, width 1024, MLP 4096, dropout
    # 0.1 (the paper does not say where: here embeddings and residual branches, none on the
    # attention probabilities, so training keeps the fused attention); vocab per stage (1024
    # semantic tokens here). 151M params in the layers, the paper says ~0.3B per stage.
    "paper": dict(vocab_size=1024, num_layers=12, embed_dim=1024, num_heads=16, mlp_dim=4096,
                  dropout_rate=0.1),
}


def from_preset(name: str, **overrides: Any) -> "Model":
  """`Model(**PRESETS[name], **overrides)`, e.g. `from_preset("bench", position="rope")`."""
  if name not in PRESETS:
    raise ValueError(f"preset {name!r}: use one of {', '.join(PRESETS)}")
  return Model(**{**PRESETS[name], **overrides})


def unstack_layers(params: dict[str, Any]) -> dict[str, Any]:
  """Params of a `scan_layers` model (`layers/...` with a leading [L] axis) -> the same weights
  for the unrolled model (`layer_{l}/...`); other params unchanged."""
  params = dict(params)
  stacked = params.pop("layers")
  num_layers = jax.tree.leaves(stacked)[0].shape[0]
  return {**params, **{f"layer_{i}": jax.tree.map(lambda x, i=i: x[i], stacked)
                       for i in range(num_layers)}}


class LayerCache(struct.PyTreeNode):
  """One layer's keys [batch, heads, head_dim, max_length] (rope: rotated) and values [batch,
  heads, max_length, head_dim] (module docstring); tiled (`init_cache(tiled=True)`): bfloat16
  bits (uint16) of keys [batch, heads, max_length / 64, head_dim, 64] and values [batch, heads,
  head_dim / 64, max_length, 64], the layout `cpu_matmul.tiled_matmul` reads."""
  key: jax.Array
  value: jax.Array
  tiled: bool = struct.field(pytree_node=False, default=False)


def relative_position_bucket(distance: jnp.ndarray, num_buckets: int, max_distance: int,
                             bidirectional: bool = False) -> jnp.ndarray:
  """T5's bucket of distance = query - key position, int32.

  Causal (bidirectional=False): negative distances (future keys, masked anyway) share bucket
  0 with distance 0. Distances below num_buckets // 2 get their own bucket; larger ones
  log-spaced buckets up to max_distance, and everything beyond it the last bucket.
  Bidirectional (encoders): keys after the query (distance < 0) get the upper half of the
  buckets, each half laid out as above over |distance| with num_buckets // 2 buckets.
  """
  offset = 0
  if bidirectional:
    num_buckets //= 2
    offset = jnp.where(distance < 0, num_buckets, 0)
    distance = jnp.abs(distance)
  n = jnp.maximum(distance, 0)
  exact = num_buckets // 2
  log_ratio = jnp.log(n.astype(jnp.float32) / exact + jnp.finfo(jnp.float32).eps)
  large = exact + (log_ratio / math.log(max_distance / exact) * (num_buckets - exact))
  large = jnp.minimum(large.astype(jnp.int32), num_buckets - 1)
  return (offset + jnp.where(n < exact, n, large)).astype(jnp.int32)


def rope(x: jnp.ndarray, positions: jnp.ndarray, max_wavelength: float) -> jnp.ndarray:
  """Rotary embedding of x: [b, n, heads, head_dim] at int positions [n]; pairs (i, i + H/2)."""
  half = x.shape[-1] // 2
  inv_wavelength = max_wavelength ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angle = positions.astype(jnp.float32)[:, None] * inv_wavelength  # [n, H/2]
  sin, cos = jnp.sin(angle)[:, None, :], jnp.cos(angle)[:, None, :]  # [n, 1, H/2]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


class Context(struct.PyTreeNode):
  """What every layer of one call shares: the positions of this call's tokens, int32 [n], the
  relative bias [1, N, n, K] (t5_bias) or None, and the attention mask [1, 1, n, S + n]
  (decode: the cache's S slots, then the chunk), [b, 1, 1, K] (an encoder's padded keys) or
  None (full forward: causal or all keys); K keys."""
  positions: jax.Array
  bias: jax.Array | None
  mask: jax.Array | None


def _norm(kind: str, dtype: Any, name: str, epsilon: float = 1e-6) -> nn.Module:
  """RMSNorm or LayerNorm, float32 statistics, params named by axis."""
  scale = nn.with_logical_partitioning(nn.initializers.ones, ("embed",))
  if kind == "rms":
    return nn.RMSNorm(epsilon=epsilon, dtype=dtype, scale_init=scale, name=name)
  if kind == "layer":
    bias = nn.with_logical_partitioning(nn.initializers.zeros, ("embed",))
    return nn.LayerNorm(epsilon=epsilon, dtype=dtype, scale_init=scale, bias_init=bias,
                        name=name)
  raise ValueError(f"norm={kind!r}: use rms or layer")


class Dense(nn.Module):
  """x @ kernel over x's last `contract` axes: x [..., *in] -> [..., *features], bias-free
  unless `use_bias` (a bias [*features], zeros at init).

  The kernel [*in, *features] carries the logical names `axes` (the bias their last ones);
  fan-in scaled over all of `in` (`nn.DenseGeneral` builds multi-axis kernels flat and then
  reshapes them, which clashes with 3-axis logical names once the rules are active).
  """
  features: tuple[int, ...]
  axes: tuple[str | None, ...]
  dtype: Any
  contract: int = 1
  use_bias: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    shape = (*x.shape[x.ndim - self.contract:], *self.features)
    init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal",
                                            in_axis=tuple(range(self.contract)),
                                            out_axis=tuple(range(self.contract, len(shape))))
    kernel = self.param("kernel", nn.with_logical_partitioning(init, self.axes), shape)
    scale = (self.get_variable("params", "kernel_scale")  # `int8_weights`' scales
             if self.has_variable("params", "kernel_scale") else None)
    y = _contract(x, kernel, self.contract, self.dtype, scale)
    if self.use_bias:
      bias = self.param("bias", nn.with_logical_partitioning(
          nn.initializers.zeros, self.axes[self.contract:]), self.features)
      y = y + bias.astype(y.dtype)
    return y


def _contract(x: jnp.ndarray, kernel: jnp.ndarray, contract: int, dtype: Any,
              scale: jnp.ndarray | None = None) -> jnp.ndarray:
  """x [..., *in] . kernel [*in, *out] -> [..., *out] in `dtype`. Kernels of a float32 model
  stored for decoding in fewer bytes (`bfloat16_weights`, `int8_weights`; scale [*out] with
  int8) are multiplied as such by `cpu_matmul`: the same values as converting them first, half
  (a quarter) of the bytes read on the CPU."""
  if kernel.dtype in (jnp.bfloat16, jnp.int8) and dtype is not None and (
      jnp.dtype(dtype) == jnp.float32):
    lead, out = x.shape[:x.ndim - contract], kernel.shape[contract:]
    x, kernel = x.astype(jnp.float32).reshape(*lead, -1), kernel.reshape(-1, math.prod(out))
    if kernel.dtype == jnp.int8:
      y = cpu_matmul.int8_matmul(x, kernel, scale.reshape(-1))
    else:
      y = cpu_matmul.matmul(x, kernel)
    return y.reshape(*lead, *out)
  x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=dtype)
  y = jnp.tensordot(x, kernel, axes=contract)
  return y if scale is None else y * scale.astype(y.dtype)  # int8 under another compute dtype


def _dense_kernels(params: dict[str, Any], cast) -> dict[str, Any]:
  """`params` with each dense layer's {"kernel": k, ...} replaced by {**cast(k, axes), ...}
  (axes: the kernel's input axes, two for the attention output's [N, H, D], after the leading
  [num_layers] axis of a `scan_layers` stack)."""
  def walk(tree, name, stacked):
    if not isinstance(tree, Mapping):
      return tree
    stacked = stacked or name == "layers"
    tree = {key: walk(value, key, stacked) for key, value in tree.items()}
    kernel = tree.get("kernel")
    if kernel is not None and not isinstance(kernel, Mapping) and kernel.ndim >= 2:
      lead, contract = int(stacked), 2 if name == "out" else 1
      tree.update(cast(kernel, tuple(range(lead, lead + contract))))
    return tree
  return walk(nn.meta.unbox(params), None, False)


def bfloat16_weights(params: dict[str, Any]) -> dict[str, Any]:
  """`params` with every dense kernel stored as bfloat16 (weight-only: a float32 model still
  computes in float32, see `_contract`); embeddings, norms and biases stay as they are. For
  sampling: a batch-1 decode step on the CPU streams half the bytes."""
  return _dense_kernels(params, lambda kernel, _: {"kernel": kernel.astype(jnp.bfloat16)})


def int8_weights(params: dict[str, Any]) -> dict[str, Any]:
  """`params` with every dense kernel stored as int8 with a float32 scale per output column
  ("kernel_scale" beside it, `cpu_matmul.quantize_int8`: symmetric, max |w| / 127); float32
  compute as `bfloat16_weights`. A quarter of the bytes of float32 per decode step."""
  def cast(kernel, axes):
    q, scale = cpu_matmul.quantize_int8(kernel, axes)
    return {"kernel": q, "kernel_scale": scale}
  return _dense_kernels(params, cast)


def _explicit_attention(q, k, v, bias, mask, rate: float, rng: jax.Array, causal: bool = True
                        ) -> jnp.ndarray:
  """Softmax attention (causal or not) with dropout on the probabilities (training only); the
  same arithmetic as `jax.nn.dot_product_attention`'s XLA path. q, k, v: [b, t, N, H] ->
  [b, t, N, H]."""
  logits = jnp.einsum("btnh,bsnh->bnts", q, k, preferred_element_type=jnp.float32)
  logits = logits / math.sqrt(q.shape[-1]) + (0.0 if bias is None else bias)
  if causal:
    logits = jnp.where(jnp.tril(jnp.ones((q.shape[1], k.shape[1]), bool)), logits, -1e30)
  if mask is not None:
    logits = jnp.where(mask, logits, -1e30)
  probs = jax.nn.softmax(logits, axis=-1)
  keep = jax.random.bernoulli(rng, 1.0 - rate, probs.shape)
  probs = jnp.where(keep, probs / (1.0 - rate), 0.0).astype(v.dtype)
  return jnp.einsum("bnts,bsnh->btnh", probs, v)


def _cached_attention(q, k, v, cache: LayerCache, bias, mask) -> jnp.ndarray:
  """A decode chunk's attention over the cache's S slots and over its own n keys, with the
  arithmetic of `jax.nn.dot_product_attention`'s XLA path (float32 logits and softmax), the
  cache read as it was before this chunk (module docstring: why). q, k, v: [b, n, N, H];
  bias, mask: broadcastable to [b, N, n, S + n] (cache slots, then the chunk) -> [b, n, N, H]."""
  size = cache.value.shape[-2]
  if cache.tiled:  # bfloat16 tiles through the CPU kernel: [b N, n, H] . [b N, S / 64, H, 64]
    (b, n, heads, head_dim), rows = q.shape, lambda x: x.reshape(b * heads, n, -1)
    flat = lambda x: x.reshape(b * heads, *x.shape[2:])
    cached_logits = cpu_matmul.tiled_matmul(rows(jnp.swapaxes(q, 1, 2).astype(jnp.float32)),
                                            flat(cache.key)).reshape(b, heads, n, size)
  else:
    cached_logits = jnp.einsum("bqnh,bnhs->bnqs", q, cache.key,
                               preferred_element_type=jnp.float32)
  logits = jnp.concatenate([
      cached_logits,
      jnp.einsum("bqnh,bknh->bnqk", q, k, preferred_element_type=jnp.float32)], axis=-1)
  logits = logits / math.sqrt(q.shape[-1]) + (0.0 if bias is None else bias)
  probs = jax.nn.softmax(jnp.where(mask, logits, -1e30), axis=-1)
  if cache.tiled:
    cached = cpu_matmul.tiled_matmul(rows(probs[..., :size]), flat(cache.value))
    cached = jnp.swapaxes(cached.reshape(b, heads, n, head_dim), 1, 2).astype(v.dtype)
  else:
    cached = jnp.einsum("bnqs,bnsh->bqnh", probs[..., :size].astype(v.dtype), cache.value)
  return cached + jnp.einsum("bnqk,bknh->bqnh", probs[..., size:].astype(v.dtype), v)


def _write(cache: LayerCache, k: jnp.ndarray, v: jnp.ndarray, at: jnp.ndarray,
           dependency: jnp.ndarray) -> LayerCache:
  """The cache with a chunk's keys and values k, v [b, n, N, H] written at positions at...
  at + n - 1. `dependency` (zeros [b, n, N, H] computed from the attention's output) is added
  to what is written: exact, but it makes the writes depend on the reads, which is what lets
  XLA update the cache in place in a loop (module docstring)."""
  if not cache.tiled:
    k, v = k + dependency, v + dependency
    return cache.replace(
        key=jax.lax.dynamic_update_slice(
            cache.key, jnp.transpose(k, (0, 2, 3, 1)).astype(cache.key.dtype), (0, 0, 0, at)),
        value=jax.lax.dynamic_update_slice(
            cache.value, jnp.swapaxes(v, 1, 2).astype(cache.value.dtype), (0, 0, at, 0)))
  # Tiled: bfloat16 bits as uint16, added as integers (|dependency|'s bits: 0; -0.0's would
  # flip the sign). XLA:CPU computes bfloat16 in float32, and would convert the whole cache
  # around a bfloat16 update.
  bits = lambda x: jax.lax.bitcast_convert_type(x.astype(jnp.bfloat16), jnp.uint16)
  zero = bits(jnp.abs(dependency))
  k, v = bits(k) + zero, bits(v) + zero
  b, n, heads, head_dim = v.shape
  v = jnp.transpose(v.reshape(b, n, heads, head_dim // TILE, TILE), (0, 2, 3, 1, 4))
  value = jax.lax.dynamic_update_slice(cache.value, v, (0, 0, 0, at, 0))  # [b, N, H/64, S, 64]
  if n == 1:  # one position: one column of one key tile
    key = jax.lax.dynamic_update_slice(cache.key, jnp.transpose(k, (0, 2, 1, 3))[..., None],
                                       (0, 0, at // TILE, 0, at % TILE))
  else:  # a chunk may straddle tiles (a prefill): scattered
    positions = at + jnp.arange(n)
    key = cache.key.at[:, :, positions // TILE, :, positions % TILE].set(
        jnp.transpose(k, (1, 0, 2, 3)))  # [n, b, N, H]
  return cache.replace(key=key, value=value)


class Attention(nn.Module):
  """Multi-head self-attention, causal unless `causal=False` (encoders, e.g. `hubert`); with a
  cache, the chunk's keys and values are written at `positions[0]` and the queries attend to
  the whole (masked) cache."""
  num_heads: int
  head_dim: int
  position: str
  rope_max_wavelength: float
  dropout_rate: float
  deterministic: bool
  attention_impl: str | None
  dtype: Any
  causal: bool = True
  use_bias: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray, cache: LayerCache | None,
               context: Context) -> tuple[jnp.ndarray, LayerCache | None]:
    """x: [b, n, D] -> ([b, n, D], the cache with this chunk written, or None)."""
    heads = (self.num_heads, self.head_dim)
    qkv_axes = ("batch", "time", "heads", "kv")
    names = ("query", "key", "value")
    if cache is not None and not self.is_initializing():
      # Decoding: one [b, n, D] x [D, 3, N, H] product instead of three. A decode step is a
      # chain of vector-matrix products; XLA:CPU runs each of D x N H on one thread, a
      # larger one on all. The stacked kernel is loop-invariant in a sampler's loop (hoisted).
      params = nn.meta.unbox(self.variables["params"])
      kernel = jnp.stack([params[name]["kernel"] for name in names], axis=1)
      scale = (jnp.stack([params[name]["kernel_scale"] for name in names])
               if "kernel_scale" in params["query"] else None)
      qkv = _contract(x, kernel, 1, self.dtype, scale)  # [b, n, 3, N, H]
      if self.use_bias:
        qkv = qkv + jnp.stack([params[name]["bias"] for name in names]).astype(qkv.dtype)
      q, k, v = (nn.with_logical_constraint(qkv[:, :, i], qkv_axes) for i in range(3))
    else:
      q, k, v = (nn.with_logical_constraint(
          Dense(heads, ("embed", "heads", "kv"), self.dtype, use_bias=self.use_bias,
                name=name)(x), qkv_axes)
          for name in names)  # [b, n, N, H]
    if self.position == "rope":
      q = rope(q, context.positions, self.rope_max_wavelength)
      k = rope(k, context.positions, self.rope_max_wavelength)
    if cache is not None:  # Attend first, then write this chunk in place (module docstring).
      out = _cached_attention(q, k, v, cache, context.bias, context.mask)
      cache = _write(cache, k, v, context.positions[0], dependency=0.0 * out)
    elif self.dropout_rate > 0.0 and not self.deterministic:
      out = _explicit_attention(q, k, v, context.bias, context.mask, self.dropout_rate,
                                self.make_rng("dropout"), self.causal)
    else:
      out = jax.nn.dot_product_attention(q, k, v, context.bias, context.mask,
                                         is_causal=self.causal,
                                         implementation=self.attention_impl)
    out = nn.with_logical_constraint(out, qkv_axes)
    out = Dense((x.shape[-1],), ("heads", "kv", "embed"), self.dtype, 2, self.use_bias,
                name="out")(out)
    return out, cache


class Mlp(nn.Module):
  """gelu: W2 gelu(W1 x) (gelu_exact: erf GELU); swiglu: W2 (silu(W_gate x) * W_up x).
  x: [b, n, D] -> [b, n, D]."""
  mlp_dim: int
  kind: str
  dtype: Any
  use_bias: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    dense = lambda name: Dense((self.mlp_dim,), ("embed", "mlp"), self.dtype,
                               use_bias=self.use_bias, name=name)
    if self.kind in ("gelu", "gelu_exact"):
      h = nn.gelu(dense("wi")(x), approximate=self.kind == "gelu")
    elif self.kind == "swiglu":
      h = nn.silu(dense("wi_gate")(x)) * dense("wi_up")(x)
    else:
      raise ValueError(f"mlp={self.kind!r}: use gelu, gelu_exact or swiglu")
    h = nn.with_logical_constraint(h, ("batch", "time", "mlp"))
    return Dense((x.shape[-1],), ("mlp", "embed"), self.dtype, use_bias=self.use_bias,
                 name="wo")(h)


class Block(nn.Module):
  """One pre-norm layer, or post-norm (`norm_first=False`: x = Norm(x + Dropout(f(x))) for
  attention then MLP, each norm under the same name as its pre-norm). `(x, cache, context) ->
  (x, cache)`: the signature `nn.scan` needs (carry x; the cache scanned over layers; the
  context broadcast)."""
  num_heads: int
  head_dim: int
  mlp_dim: int
  norm: str
  mlp: str
  position: str
  rope_max_wavelength: float
  dropout_rate: float
  attention_dropout_rate: float
  deterministic: bool
  attention_impl: str | None
  dtype: Any
  causal: bool = True
  use_bias: bool = False  # Biases in the attention and MLP dense layers.
  norm_first: bool = True  # False: post-norm.
  norm_epsilon: float = 1e-6

  @nn.compact
  def __call__(self, x: jnp.ndarray, cache: LayerCache | None,
               context: Context) -> tuple[jnp.ndarray, LayerCache | None]:
    dropout = nn.Dropout(self.dropout_rate, deterministic=self.deterministic)
    axes = ("batch", "time", "embed")
    norm = lambda name: _norm(self.norm, self.dtype, name, self.norm_epsilon)
    attention_norm, mlp_norm = norm("attention_norm"), norm("mlp_norm")
    h, cache = Attention(self.num_heads, self.head_dim, self.position, self.rope_max_wavelength,
                         self.attention_dropout_rate, self.deterministic, self.attention_impl,
                         self.dtype, self.causal, self.use_bias, name="attention")(
        attention_norm(x) if self.norm_first else x, cache, context)
    x = x + dropout(h)
    x = nn.with_logical_constraint(x if self.norm_first else attention_norm(x), axes)
    h = Mlp(self.mlp_dim, self.mlp, self.dtype, self.use_bias, name="mlp")(
        mlp_norm(x) if self.norm_first else x)
    x = x + dropout(h)
    return nn.with_logical_constraint(x if self.norm_first else mlp_norm(x), axes), cache


class Model(nn.Module):
  """Decoder-only transformer over `vocab_size` tokens (module docstring).

  `head_dim` defaults to embed_dim // num_heads. `dtype` is the compute dtype (params stay
  float32; logits come out float32). `scan_layers` runs the layers under one `nn.scan` (one
  layer compiled, params stacked [L, ...]); `remat` recomputes each layer in the backward
  pass (none | full | dots, as `wavenet.remat`).
  """
  vocab_size: int = 1024
  num_layers: int = 12
  embed_dim: int = 1024
  num_heads: int = 16
  head_dim: int = 0  # 0: embed_dim // num_heads.
  mlp_dim: int = 4096
  norm: str = "rms"  # rms | layer
  mlp: str = "gelu"  # gelu | swiglu
  position: str = "t5_bias"  # t5_bias | rope
  num_buckets: int = 32  # t5_bias: T5's defaults.
  max_distance: int = 128
  rope_max_wavelength: float = 10_000.0
  tie_embeddings: bool = True
  # The embedding/output table's rows rounded up to this (the extra rows are never input ids,
  # their logits are dropped): AudioLM's 13,314-token vocabulary as 13,440 = 105 x 128 rows
  # made an H100 training step 2.7% faster (benchmarks/RESULTS.md).
  vocab_multiple: int = 1
  dropout_rate: float = 0.0  # Embeddings and residual branches.
  attention_dropout_rate: float = 0.0  # Attention probabilities (explicit softmax when > 0).
  attention_impl: str | None = None  # jax.nn.dot_product_attention: None/xla | cudnn.
  dtype: Any = jnp.float32
  scan_layers: bool = False
  remat: str = "none"

  @property
  def layer_head_dim(self) -> int:
    return self.head_dim or self.embed_dim // self.num_heads

  def init_cache(self, batch: int, max_length: int, tiled: bool = False
                 ) -> tuple[LayerCache, ...] | LayerCache:
    """Zero keys [batch, heads, head_dim, max_length] and values [batch, heads, max_length,
    head_dim] for `decode`, per layer; one LayerCache with a leading [num_layers] axis on both
    when scan_layers. `tiled`: bfloat16 (its bits as uint16) in `LayerCache`'s tiled layout,
    which a CPU decode step reads in half the bytes (max_length and head_dim multiples of
    64)."""
    lead = (self.num_layers,) if self.scan_layers else ()
    heads, head_dim = self.num_heads, self.layer_head_dim
    zeros = lambda *shape: jnp.zeros((*lead, batch, heads, *shape),
                                     jnp.uint16 if tiled else self.dtype)
    if tiled:
      if max_length % TILE or head_dim % TILE:
        raise ValueError(f"a tiled cache needs max_length ({max_length}) and head_dim "
                         f"({head_dim}) to be multiples of {TILE}")
      shapes = (max_length // TILE, head_dim, TILE), (head_dim // TILE, max_length, TILE)
    else:
      shapes = (head_dim, max_length), (max_length, head_dim)
    layer = lambda: LayerCache(key=zeros(*shapes[0]), value=zeros(*shapes[1]), tiled=tiled)
    return layer() if self.scan_layers else tuple(layer() for _ in range(self.num_layers))

  def __call__(self, tokens: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    """tokens: int32 [b, t] -> logits float32 [b, t, vocab]; logits[:, i] predicts token i + 1
    from tokens[:, :i + 1]. `train` enables dropout (rng collection "dropout")."""
    return self._forward(tokens, None, 0, train)[0]

  def decode(self, tokens: jnp.ndarray, cache, position: int | jnp.ndarray):
    """tokens: int32 [b, n] at positions position..position + n - 1 (a prefill chunk or one
    step), the cache holding positions 0..position - 1 -> (logits float32 [b, n, vocab], the
    cache with these n written). Equal to `__call__` on all tokens up to them (no dropout)."""
    return self._forward(tokens, cache, position, False)

  @nn.compact
  def _forward(self, tokens, cache, position, train):
    if self.position not in POSITIONS:
      raise ValueError(f"position={self.position!r}: use one of {', '.join(POSITIONS)}")
    # cuDNN's fused attention trains only over even lengths (e.g. AudioLM's 750-token windows
    # give 749 inputs): an odd sequence gets one token appended, which no real position sees
    # (causal), and dropped before the output layer. Once per call, not per layer: padding
    # q, k, v and slicing each layer's output cost 4% of an H100 step.
    pad = int(cache is None and self.attention_impl == "cudnn" and tokens.shape[1] % 2)
    tokens = jnp.pad(tokens, ((0, 0), (0, pad)))
    n = tokens.shape[1]
    positions = position + jnp.arange(n, dtype=jnp.int32)  # [n]
    if cache is None:
      key_positions, mask = positions, None  # causal through `is_causal`
    else:
      max_length = (cache.value if self.scan_layers else cache[0].value).shape[-2]
      slots = jnp.arange(max_length, dtype=jnp.int32)  # The cache's S slots, then the chunk:
      key_positions = jnp.concatenate([slots, positions])  # [S + n]
      mask = jnp.concatenate([jnp.broadcast_to(slots < position, (n, max_length)),
                              positions[None, :] <= positions[:, None]], axis=1)[None, None]
    bias = None
    if self.position == "t5_bias":
      buckets = relative_position_bucket(positions[:, None] - key_positions[None, :],
                                         self.num_buckets, self.max_distance)  # [n, K]
      table = self.param("relative_bias", nn.with_logical_partitioning(
          nn.initializers.normal(0.1), (None, "heads")), (self.num_buckets, self.num_heads))
      # A one-hot contraction, not `table[buckets]`: the gather's gradient is a scatter-add
      # of n x S x N values into B x N slots (atomics on a GPU, slow on a TPU); as a matmul
      # it is one reduction (T5X does the same). HIGHEST: the exact table values in float32.
      one_hot = jax.nn.one_hot(buckets, self.num_buckets, dtype=self.dtype)  # [n, S, B]
      bias = jnp.einsum("tsb,bn->nts", one_hot, table.astype(self.dtype),
                        precision=jax.lax.Precision.HIGHEST)[None]  # [1, N, n, S]
    context = Context(positions=positions, bias=bias, mask=mask)

    table_rows = -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple
    embed = nn.Embed(table_rows, self.embed_dim, dtype=self.dtype, name="embed",
                     embedding_init=nn.with_logical_partitioning(
                         nn.linear.default_embed_init, ("vocab", "embed")))
    dropout = nn.Dropout(self.dropout_rate, deterministic=not train)
    x = nn.with_logical_constraint(dropout(embed(tokens)), ("batch", "time", "embed"))

    block = remat(Block, self.remat)
    args = (self.num_heads, self.layer_head_dim, self.mlp_dim, self.norm, self.mlp,
            self.position, self.rope_max_wavelength, self.dropout_rate,
            self.attention_dropout_rate, not train, self.attention_impl, self.dtype)
    if self.scan_layers:
      stack = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True,
                                                                      "dropout": True},
                      in_axes=(0, nn.broadcast), length=self.num_layers,
                      metadata_params={nn.PARTITION_NAME: "layers"})
      x, cache = stack(*args, name="layers")(x, cache, context)
    else:
      caches = []
      for i in range(self.num_layers):
        x, layer_cache = block(*args, name=f"layer_{i}")(
            x, None if cache is None else cache[i], context)
        caches.append(layer_cache)
      cache = None if cache is None else tuple(caches)

    x = _norm(self.norm, self.dtype, "final_norm")(x[:, :n - pad])
    if self.tie_embeddings:
      logits = embed.attend(x)
    else:
      logits = Dense((table_rows,), ("embed", "vocab"), self.dtype, name="logits")(x)
    logits = nn.with_logical_constraint(logits[..., :self.vocab_size], ("batch", "time", "vocab"))
    return logits.astype(jnp.float32), cache
