"""AudioLM transformer: causality, T5 buckets, KV-cached decode == forward, scan, sharding."""

import functools
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from audiojax.kernels import cpu_matmul
from audiojax.models import transformer

# Few buckets and a short max_distance, so 24-token sequences reach the log buckets and the cap.
TINY = dict(transformer.PRESETS["tiny"], num_buckets=8, max_distance=16)


def random_params(model: transformer.Model, seed: int = 0):
  """Random params of `model`'s shapes (norm scales near 1, a relative bias that matters)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
  rng = np.random.default_rng(seed)

  def draw(path, shape):
    name = path[-1].key
    if name in ("scale", "bias"):
      return jnp.asarray((name == "scale") + 0.1 * rng.standard_normal(shape.shape), jnp.float32)
    fan_in = np.prod(shape.shape[:-1])
    if name in ("embedding", "relative_bias"):  # Tied logits of order 1; a bias that matters.
      fan_in = shape.shape[-1] if name == "embedding" else 1
    if model.scan_layers and path[0].key == "layers":
      fan_in = np.prod(shape.shape[1:-1])
    return jnp.asarray(rng.standard_normal(shape.shape) / np.sqrt(fan_in), jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, nn.meta.unbox(shapes["params"]))


def random_tokens(seed: int, shape: tuple[int, ...], vocab: int = 64) -> jnp.ndarray:
  return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, shape), jnp.int32)


def forward(model: transformer.Model, params, tokens: jnp.ndarray) -> jnp.ndarray:
  return jax.jit(model.apply)({"params": params}, tokens)


def test_relative_position_bucket_table():
  # 8 buckets, max distance 16: 0-3 exact; then 4 + floor(2 log2(n / 4)), capped at 7.
  distance = jnp.arange(-2, 21)
  expected = [0, 0] + [0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 6, 6] + [7] * 9
  np.testing.assert_array_equal(transformer.relative_position_bucket(distance, 8, 16), expected)
  # T5's defaults (32, 128): 0-15 exact; then 16 + floor(16 log8(n / 16)), capped at 31.
  distance = jnp.array([0, 15, 16, 20, 30, 31, 32, 64, 127, 128, 1000])
  expected = [0, 15, 16, 17, 20, 21, 21, 26, 31, 31, 31]
  np.testing.assert_array_equal(transformer.relative_position_bucket(distance, 32, 128), expected)


def test_bidirectional_bucket_halves():
  # 16 buckets both ways: keys before the query (distance > 0) use the causal layout of 8 buckets,
  # keys after it (distance < 0) the same layout shifted to buckets 8-15.
  distance = jnp.arange(-20, 21)
  buckets = transformer.relative_position_bucket(distance, 16, 16, bidirectional=True)
  causal = transformer.relative_position_bucket(jnp.abs(distance), 8, 16)
  np.testing.assert_array_equal(buckets, np.where(distance < 0, 8 + causal, causal))


@pytest.mark.parametrize("position", transformer.POSITIONS)
def test_causal(position):
  model = transformer.Model(**TINY, position=position)
  params = random_params(model)
  tokens, t0 = random_tokens(1, (2, 20)), 11
  logits = forward(model, params, tokens)
  assert logits.shape == (2, 20, 64) and logits.dtype == jnp.float32
  changed = forward(model, params, tokens.at[:, t0:].set((tokens[:, t0:] + 7) % 64))
  np.testing.assert_allclose(changed[:, :t0], logits[:, :t0], atol=1e-6)
  assert np.abs(changed[:, t0:] - logits[:, t0:]).min(axis=-1).max() > 1e-3  # the future moved


def decode_in_chunks(model: transformer.Model, params, tokens: jnp.ndarray,
                     chunks: tuple[int, ...]) -> jnp.ndarray:
  """Logits of `decode` fed `tokens` in chunks of these sizes, then one token at a time."""
  decode = jax.jit(functools.partial(model.apply, method="decode"))
  cache, position, logits = model.init_cache(tokens.shape[0], tokens.shape[1] + 3), 0, []
  sizes = list(chunks) + [1] * (tokens.shape[1] - sum(chunks))
  for size in sizes:
    out, cache = decode({"params": params}, tokens[:, position:position + size], cache,
                        jnp.int32(position))
    logits.append(out)
    position += size
  return jnp.concatenate(logits, axis=1)


@pytest.mark.parametrize("overrides", [
    dict(position="t5_bias"),
    dict(position="rope"),
    dict(position="rope", mlp="swiglu", norm="layer", tie_embeddings=False),
    dict(position="t5_bias", scan_layers=True),
    dict(position="rope", vocab_size=61, vocab_multiple=16),
    dict(position="rope", vocab_size=61, vocab_multiple=16, tie_embeddings=False),
])
def test_cached_decode_equals_forward(overrides):
  """A 7-token prefill, a 3-token chunk, then single steps, past max_distance: same logits."""
  model = transformer.Model(**{**TINY, **overrides})
  params = random_params(model, seed=2)
  tokens = random_tokens(3, (2, 24), vocab=model.vocab_size)
  expected = forward(model, params, tokens)
  np.testing.assert_allclose(decode_in_chunks(model, params, tokens, (7, 3)), expected,
                             atol=1e-5, rtol=0)


@pytest.mark.parametrize("weights,tie_embeddings", [("bf16", True), ("bf16", False),
                                                    ("int8", True)])
def test_low_precision_weights_decode_as_their_float32_values(weights, tie_embeddings):
  """Kernels cast by `bfloat16_weights` / `int8_weights`: decoding (through the CPU kernels
  where they apply) gives the float32 model's logits for those rounded weights; embeddings and
  norms stay float32."""
  model = transformer.Model(**{**TINY, "embed_dim": 64, "mlp_dim": 128},
                            tie_embeddings=tie_embeddings)
  float_params = random_params(model, seed=5)
  cast = transformer.bfloat16_weights if weights == "bf16" else transformer.int8_weights
  params = cast(float_params)
  kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if path[-1].key == "kernel"]
  assert kernels and {k.dtype for k in kernels} == {jnp.dtype(jnp.bfloat16 if weights == "bf16"
                                                              else jnp.int8)}
  assert params["embed"]["embedding"].dtype == jnp.float32
  if weights == "bf16":
    rounded = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), params)
  else:  # Per output column: the attention output's over both of its input axes.
    out = params["layer_0"]["attention"]["out"]
    assert out["kernel_scale"].shape == (64,)
    assert params["layer_0"]["attention"]["query"]["kernel_scale"].shape == (2, 32)

    def dequantize(tree):
      if "kernel_scale" in tree:
        return {"kernel": tree["kernel"] * tree["kernel_scale"]}
      return {k: dequantize(v) if isinstance(v, dict) else v for k, v in tree.items()}
    rounded = dequantize(params)
    wi = lambda tree: tree["layer_0"]["mlp"]["wi"]["kernel"]
    error = wi(rounded) - wi(float_params)
    assert 0 < float(jnp.abs(error).max()) < 0.01
  tokens = random_tokens(6, (1, 12), vocab=model.vocab_size)
  np.testing.assert_allclose(decode_in_chunks(model, params, tokens, (5,)),
                             forward(model, rounded, tokens), atol=1e-5, rtol=0)
  step = jax.jit(functools.partial(model.apply, method="decode")).lower(
      {"params": params}, tokens[:, :1], model.init_cache(1, 16), jnp.int32(0))
  if cpu_matmul.available():
    assert cpu_matmul.TARGETS[weights] in step.compile().as_text()


def test_int8_weights_under_bfloat16_compute_keep_their_scales():
  """A bfloat16-compute model takes XLA's product for int8 kernels, scaled all the same."""
  model = transformer.Model(**{**TINY, "embed_dim": 64, "mlp_dim": 128}, dtype=jnp.bfloat16)
  float_params = random_params(model, seed=5)
  params = transformer.int8_weights(float_params)
  tokens = random_tokens(6, (1, 12), vocab=model.vocab_size)
  error = np.abs(np.asarray(forward(model, params, tokens) - forward(model, float_params, tokens)))
  assert error.max() < 0.1, error.max()


@pytest.mark.parametrize("prefill", [5, 70])
def test_tiled_bfloat16_cache_decodes_as_the_float32_cache(prefill):
  """A tiled bfloat16 cache (`init_cache(tiled=True)`; through the CPU kernel for single steps,
  XLA's product for a 70-token prefill that also straddles a key tile): the float32 cache's
  logits up to bfloat16 rounding of keys and values."""
  model = transformer.Model(**{**TINY, "embed_dim": 128, "mlp_dim": 128})  # head_dim 64
  params = random_params(model, seed=7)
  tokens = random_tokens(8, (2, 100), vocab=model.vocab_size)
  decode = jax.jit(functools.partial(model.apply, method="decode"))

  def run(cache):
    position, logits = 0, []
    for size in [prefill] + [1] * (tokens.shape[1] - prefill):
      out, cache = decode({"params": params}, tokens[:, position:position + size], cache,
                          jnp.int32(position))
      logits.append(out)
      position += size
    return jnp.concatenate(logits, axis=1), cache

  exact, _ = run(model.init_cache(2, 128))
  tiled, cache = run(model.init_cache(2, 128, tiled=True))
  assert cache[0].tiled and cache[0].key.shape == (2, 2, 2, 64, 64)
  assert cache[0].key.dtype == jnp.uint16 and cache[0].value.shape == (2, 2, 1, 128, 64)
  error = np.abs(np.asarray(tiled - exact))
  assert 0 < error.max() < 0.03 and error.mean() < 0.005, (error.max(), error.mean())
  np.testing.assert_allclose(exact, forward(model, params, tokens), atol=1e-5, rtol=0)


def test_tiled_cache_needs_whole_tiles():
  model = transformer.Model(**{**TINY, "embed_dim": 128, "mlp_dim": 128})
  with pytest.raises(ValueError, match="multiples of 64"):
    model.init_cache(1, 100, tiled=True)
  with pytest.raises(ValueError, match="multiples of 64"):
    transformer.Model(**TINY).init_cache(1, 128, tiled=True)  # head_dim 16


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_vocab_multiple_pads_the_table_not_the_logits(tie_embeddings):
  """61 tokens with vocab_multiple=16: a 64-row table, 61 logits, the same 61 as a model whose
  table holds just those rows."""
  model = transformer.Model(**{**TINY, "vocab_size": 61}, vocab_multiple=16,
                            tie_embeddings=tie_embeddings)
  params = random_params(model)
  table = params["embed"]["embedding"] if tie_embeddings else params["logits"]["kernel"]
  assert table.shape[0 if tie_embeddings else 1] == 64
  tokens = random_tokens(4, (2, 8), vocab=61)
  logits = forward(model, params, tokens)
  assert logits.shape == (2, 8, 61)
  exact = transformer.Model(**{**TINY, "vocab_size": 61}, tie_embeddings=tie_embeddings)
  trimmed = dict(params, embed={"embedding": params["embed"]["embedding"][:61]})
  if not tie_embeddings:
    trimmed["logits"] = {"kernel": params["logits"]["kernel"][:, :61]}
  np.testing.assert_allclose(forward(exact, trimmed, tokens), logits, atol=1e-6, rtol=0)


def test_cache_layout():
  model = transformer.Model(**TINY)
  cache = model.init_cache(3, 10)
  assert len(cache) == 2 and cache[0].key.shape == cache[1].key.shape == (3, 2, 16, 10)
  assert cache[0].value.shape == cache[1].value.shape == (3, 2, 10, 16)
  stacked = transformer.Model(**TINY, scan_layers=True).init_cache(3, 10)
  assert stacked.key.shape == (2, 3, 2, 16, 10) and stacked.value.shape == (2, 3, 2, 10, 16)


def test_scan_layers_equals_unrolled_stack():
  scanned = transformer.Model(**TINY, scan_layers=True)
  unrolled = transformer.Model(**TINY)
  params = random_params(scanned, seed=4)
  unstacked = transformer.unstack_layers(params)
  unrolled_shapes = jax.eval_shape(unrolled.init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
  assert jax.tree.map(lambda x: x.shape, unstacked) == jax.tree.map(
      lambda x: x.shape, nn.meta.unbox(unrolled_shapes["params"]))
  np.testing.assert_array_equal(unstacked["layer_1"]["mlp"]["wo"]["kernel"],
                                params["layers"]["mlp"]["wo"]["kernel"][1])
  tokens = random_tokens(5, (2, 16))
  np.testing.assert_allclose(forward(scanned, params, tokens),
                             forward(unrolled, unstacked, tokens), atol=1e-5, rtol=0)


def test_params_carry_logical_axes():
  tokens = jnp.zeros((1, 4), jnp.int32)
  boxed = jax.eval_shape(transformer.Model(**TINY, tie_embeddings=False).init,
                         jax.random.key(0), tokens)["params"]
  names = lambda tree: jax.tree.map(lambda box: box.names, tree,
                                    is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  axes = names(boxed)
  assert axes["embed"]["embedding"] == ("vocab", "embed")
  assert axes["relative_bias"] == (None, "heads")
  assert axes["layer_0"]["attention"]["query"]["kernel"] == ("embed", "heads", "kv")
  assert axes["layer_0"]["attention"]["out"]["kernel"] == ("heads", "kv", "embed")
  assert axes["layer_1"]["mlp"]["wi"]["kernel"] == ("embed", "mlp")
  assert axes["layer_1"]["mlp"]["wo"]["kernel"] == ("mlp", "embed")
  assert axes["layer_0"]["mlp_norm"]["scale"] == ("embed",)
  assert axes["logits"]["kernel"] == ("embed", "vocab")
  assert all(isinstance(x, nn.LogicallyPartitioned) for x in jax.tree.leaves(
      boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned)))
  scanned = jax.eval_shape(transformer.Model(**TINY, scan_layers=True).init,
                           jax.random.key(0), tokens)["params"]
  assert names(scanned)["layers"]["attention"]["key"]["kernel"] == ("layers", "embed", "heads",
                                                                    "kv")


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = transformer.Model(**TINY, dtype=jnp.bfloat16)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
  assert {x.dtype for x in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
  params = random_params(model)
  tokens = random_tokens(6, (2, 12))
  logits = forward(model, params, tokens)
  assert logits.dtype == jnp.float32
  reference = forward(transformer.Model(**TINY), params, tokens)
  np.testing.assert_allclose(logits, reference, atol=0.25, rtol=0.02)  # bf16: 8-bit mantissa
  assert np.abs(logits - reference).mean() < 0.05


def test_explicit_attention_path_matches_dot_product_attention():
  """The dropout path's arithmetic (at a rate that drops nothing) is the fused API's."""
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.standard_normal((2, 9, 2, 8)), jnp.float32) for _ in range(3))
  bias = jnp.asarray(rng.standard_normal((1, 2, 9, 9)), jnp.float32)
  np.testing.assert_allclose(
      transformer._explicit_attention(q, k, v, bias, None, 1e-12, jax.random.key(4)),
      jax.nn.dot_product_attention(q, k, v, bias, is_causal=True), atol=1e-6)
  mask = jnp.arange(9)[None, None, None, :] < jnp.array([9, 5])[:, None, None, None]
  np.testing.assert_allclose(
      transformer._explicit_attention(q, k, v, bias, mask, 1e-12, jax.random.key(4), False),
      jax.nn.dot_product_attention(q, k, v, bias, mask), atol=1e-6)


def test_cached_attention_is_attention_over_cache_and_chunk():
  """Keys 0..5 in the cache (slots 6..7 stale), a chunk of 3 more: the fused API's attention
  of the chunk's queries over all 9 keys, causal."""
  rng = np.random.default_rng(1)
  q, k, v = (jnp.asarray(rng.standard_normal((2, 9, 2, 8)), jnp.float32) for _ in range(3))
  bias = jnp.asarray(rng.standard_normal((1, 2, 9, 9)), jnp.float32)
  expected = jax.nn.dot_product_attention(q, k, v, bias, is_causal=True)[:, 6:]
  stale = jnp.asarray(rng.standard_normal((2, 2, 2, 8)), jnp.float32)
  cache = transformer.LayerCache(
      key=jnp.transpose(jnp.concatenate([k[:, :6], stale], 1), (0, 2, 3, 1)),  # [b, N, H, S]
      value=jnp.swapaxes(jnp.concatenate([v[:, :6], stale], 1), 1, 2))  # [b, N, S, H]
  slot_bias = jnp.concatenate([bias[..., 6:, :6], jnp.zeros((1, 2, 3, 2))], -1)
  mask = jnp.concatenate([jnp.arange(8) < 6 + jnp.zeros((3, 1), bool),
                          jnp.tril(jnp.ones((3, 3), bool))], -1)
  np.testing.assert_allclose(
      transformer._cached_attention(q[:, 6:], k[:, 6:], v[:, 6:], cache,
                                    jnp.concatenate([slot_bias, bias[..., 6:, 6:]], -1), mask),
      expected, atol=1e-6)


@pytest.mark.parametrize("position", transformer.POSITIONS)
def test_cudnn_odd_length_is_padded_to_even(monkeypatch, position):
  """cuDNN trains over even lengths only (with or without a bias): an odd sequence goes in
  with one extra position that changes nothing (checked through XLA, standing in for the
  kernel)."""
  lengths = []
  xla = jax.nn.dot_product_attention

  def fake_cudnn(q, k, v, bias=None, mask=None, *, is_causal=False, implementation=None):
    lengths.append(q.shape[1])
    return xla(q, k, v, bias, mask, is_causal=is_causal)

  model = transformer.Model(**TINY, position=position)
  params = random_params(model)
  tokens = random_tokens(5, (2, 9))
  reference = forward(model, params, tokens)
  monkeypatch.setattr(jax.nn, "dot_product_attention", fake_cudnn)
  logits = transformer.Model(**TINY, position=position, attention_impl="cudnn").apply(
      {"params": params}, tokens)
  assert set(lengths) == {10} and logits.shape == reference.shape
  np.testing.assert_allclose(logits, reference, atol=1e-5)


def test_relative_bias_is_the_table_at_each_bucket():
  model = transformer.Model(**TINY)
  params = random_params(model)
  tokens = random_tokens(3, (1, 24))
  biases = []
  xla = jax.nn.dot_product_attention

  def spy(q, k, v, bias=None, mask=None, **kwargs):
    biases.append(bias)
    return xla(q, k, v, bias, mask, **kwargs)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(jax.nn, "dot_product_attention", spy)
    model.apply({"params": params}, tokens)
  positions = np.arange(24)
  buckets = transformer.relative_position_bucket(positions[:, None] - positions[None, :],
                                                 TINY["num_buckets"], TINY["max_distance"])
  expected = np.transpose(np.asarray(params["relative_bias"])[np.asarray(buckets)], (2, 0, 1))
  np.testing.assert_array_equal(biases[0][0], expected)


def test_dropout_only_while_training():
  model = transformer.Model(**TINY, dropout_rate=0.3, attention_dropout_rate=0.3)
  params = random_params(model)
  tokens = random_tokens(7, (2, 12))
  jitted = jax.jit(model.apply, static_argnums=2)
  apply = lambda train, seed: jitted({"params": params}, tokens, train,
                                     rngs={"dropout": jax.random.key(seed)})
  np.testing.assert_array_equal(apply(False, 0), apply(False, 1))
  np.testing.assert_allclose(apply(False, 0), forward(transformer.Model(**TINY), params, tokens),
                             atol=1e-5)
  assert np.abs(apply(True, 0) - apply(True, 1)).max() > 1e-2


def test_tiny_model_overfits_a_batch():
  model = transformer.Model(**TINY, dropout_rate=0.1, remat="full")
  tokens = random_tokens(8, (4, 16))
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), tokens)["params"])
  tx = optax.adam(3e-3)

  def loss_fn(params, rng):
    logits = model.apply({"params": params}, tokens[:, :-1], True, rngs={"dropout": rng})
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

  @jax.jit
  def train(params):
    def step(carry, rng):
      params, opt_state = carry
      loss, grads = jax.value_and_grad(loss_fn)(params, rng)
      updates, opt_state = tx.update(grads, opt_state)
      return (optax.apply_updates(params, updates), opt_state), loss
    return jax.lax.scan(step, (params, tx.init(params)), jax.random.split(jax.random.key(1), 100))

  (params, _), losses = train(params)
  assert losses[0] > 3.5 and losses[-5:].mean() < 0.5 * losses[0], losses


def test_presets():
  bench = transformer.from_preset("bench")
  assert (bench.num_layers, bench.embed_dim, bench.num_heads, bench.vocab_size) == (6, 512, 8, 1024)
  paper = transformer.from_preset("paper", position="rope")
  assert (paper.num_layers, paper.num_heads, paper.embed_dim, paper.mlp_dim) == (12, 16, 1024, 4096)
  assert paper.position == "rope" and paper.dropout_rate == 0.1
  with pytest.raises(ValueError, match="preset"):
    transformer.from_preset("huge")


def test_sharded_forward_equals_single_device():
  """data=2, fsdp=2, tensor=2 over 8 CPU devices: the same logits (its own process)."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  result = subprocess.run([sys.executable, "-m", "tests.models.transformer_multidevice"],
                          cwd=root, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-4000:]
