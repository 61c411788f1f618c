"""KV-cached LM sampler: equal to the uncached reference, greedy, top-k, top-p, allowed ranges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.models import transformer
from audiojax.sample import lm
from tests.models.test_transformer import TINY, random_params, random_tokens


def model_and_params(**overrides):
  model = transformer.Model(**{**TINY, **overrides})
  return model, random_params(model, seed=1)


def teacher_forced_logits(model, params, prompt, drawn):
  """Logits [b, num_tokens, V] the full forward gives for each drawn token's position."""
  tokens = jnp.concatenate([prompt, drawn], axis=1)
  logits = jax.jit(model.apply)({"params": params}, tokens)
  return logits[:, prompt.shape[1] - 1:-1]


@pytest.mark.parametrize("position,kwargs", [
    ("t5_bias", dict()),
    ("rope", dict()),
    ("t5_bias", dict(temperature=0.8, top_k=10, top_p=0.9, allowed_range=(8, 40))),
])
def test_cached_sampler_equals_uncached(position, kwargs):
  model, params = model_and_params(position=position)
  prompt = random_tokens(2, (3, 5))
  args = (model, params, prompt, 22, jax.random.key(7))
  cached = lm.sample(*args, **kwargs)
  assert cached.shape == (3, 22) and cached.dtype == jnp.int32
  np.testing.assert_array_equal(cached, lm.sample_uncached(*args, **kwargs))
  assert len(np.unique(np.asarray(cached))) > 8  # random params: draws are spread out
  assert (lm.sample(*args[:-1], jax.random.key(8), **kwargs) != cached).any()  # rng matters


def test_cache_sizes_grow_to_the_run_length():
  assert lm.cache_sizes(10, 500) == (128, 192, 320, 509)
  assert lm.cache_sizes(10, 500, growth=0) == (509,)
  assert lm.cache_sizes(10, 120) == (129,)  # a short last segment joins the one before
  assert lm.cache_sizes(200, 1) == (200,)
  for prompt_length, num_tokens in [(1, 1), (5, 260), (130, 700), (3000, 2000)]:
    sizes = lm.cache_sizes(prompt_length, num_tokens)
    assert sizes[0] >= min(prompt_length + 1, sizes[-1]) and list(sizes) == sorted(set(sizes))
    assert sizes[-1] == prompt_length + num_tokens - 1


def test_segmented_cache_samples_like_one_cache_and_the_uncached_reference():
  """260 tokens after 5: caches of 128, 192 and 264 positions (three scans, each cache padded
  into the next) draw what one full-length cache and the uncached reference draw."""
  model, params = model_and_params()
  prompt = random_tokens(4, (2, 5))
  args = (model, params, prompt, 260, jax.random.key(3))
  assert lm.cache_sizes(5, 260) == (128, 192, 264)
  segmented = lm.sample(*args, temperature=0.9)
  np.testing.assert_array_equal(segmented, lm.sample(*args, temperature=0.9, cache_growth=0))
  np.testing.assert_array_equal(segmented, lm.sample_uncached(*args, temperature=0.9))


def test_bfloat16_cache_and_low_precision_weights_sample_nearly_alike():
  """int8 weights and a bfloat16 cache over three growing segments (rounded to whole tiles):
  most draws equal float32's (the logits differ by rounding); a head_dim the tiles do not fit
  is a clear error."""
  model, params = model_and_params(embed_dim=128, mlp_dim=128)  # head_dim 64
  prompt = random_tokens(4, (2, 5))
  args = (model, params, prompt, 260, jax.random.key(3))
  exact = np.asarray(lm.sample(*args, temperature=0.9))
  for weights in (params, transformer.int8_weights(params)):
    low = lm.sample(model, weights, *args[2:], temperature=0.9, bfloat16_cache=True)
    assert low.shape == exact.shape and np.mean(np.asarray(low) == exact) > 0.8
  small, small_params = model_and_params()
  with pytest.raises(ValueError, match="head_dim a multiple of 64"):
    lm.sample(small, small_params, prompt, 4, jax.random.key(0), bfloat16_cache=True)


def test_noise_drawn_before_the_loop_or_in_it_gives_the_same_tokens(monkeypatch):
  """Gumbel noise drawn for a whole segment up front (`gumbel_noise`) is categorical's own, so
  the draws equal those with the noise drawn step by step (a segment over NOISE_BYTES)."""
  model, params = model_and_params()
  args = (model, params, random_tokens(6, (3, 4)), 150, jax.random.key(9))
  up_front = lm.sample(*args, temperature=0.8, top_k=20)
  monkeypatch.setattr(lm, "NOISE_BYTES", 0)
  lm._sample.clear_cache()
  np.testing.assert_array_equal(up_front, lm.sample(*args, temperature=0.8, top_k=20))
  lm._sample.clear_cache()


@pytest.mark.parametrize("cast", [None, transformer.int8_weights])
def test_scan_layers_model_samples_like_the_unrolled_one(cast):
  """Also with int8 weights: a stack's scales are per layer, as the unrolled layers' are."""
  scanned, params = model_and_params(scan_layers=True)
  unrolled = transformer.Model(**TINY)
  prompt = random_tokens(9, (2, 3))
  cast = cast or (lambda params: params)
  np.testing.assert_array_equal(
      lm.sample(scanned, cast(params), prompt, 12, jax.random.key(5)),
      lm.sample(unrolled, cast(transformer.unstack_layers(params)), prompt, 12,
                jax.random.key(5)))


def test_greedy_picks_the_argmax():
  model, params = model_and_params()
  prompt = random_tokens(3, (2, 4))
  greedy = lm.sample(model, params, prompt, 16, jax.random.key(0), temperature=0.0)
  np.testing.assert_array_equal(
      greedy, lm.sample(model, params, prompt, 16, jax.random.key(1), temperature=0.0))
  logits = teacher_forced_logits(model, params, prompt, greedy)
  np.testing.assert_array_equal(greedy, logits.argmax(-1))


def test_top_k_stays_in_the_top_k():
  model, params = model_and_params()
  prompt = random_tokens(4, (4, 3))
  drawn = lm.sample(model, params, prompt, 24, jax.random.key(2), temperature=3.0, top_k=3)
  logits = np.asarray(teacher_forced_logits(model, params, prompt, drawn))
  top3 = np.argsort(-logits, axis=-1)[..., :3]
  assert (top3 == np.asarray(drawn)[..., None]).any(-1).all()
  # Hot and unfiltered, the same model leaves its top 3 often: the filter does the work.
  free = lm.sample(model, params, prompt, 24, jax.random.key(2), temperature=3.0)
  top3 = np.argsort(-np.asarray(teacher_forced_logits(model, params, prompt, free)), -1)[..., :3]
  assert (top3 != np.asarray(free)[..., None]).all(-1).mean() > 0.3


def test_filter_logits_top_p_keeps_the_smallest_nucleus():
  logits = jnp.log(jnp.array([[0.05, 0.5, 0.15, 0.3]]))
  kept = lambda top_p: np.flatnonzero(np.isfinite(lm.filter_logits(logits, 1.0, 0, top_p)[0]))
  np.testing.assert_array_equal(kept(0.5), [1])  # 0.5 reaches 0.5
  np.testing.assert_array_equal(kept(0.7), [1, 3])  # 0.5 + 0.3
  np.testing.assert_array_equal(kept(0.9), [1, 2, 3])  # + 0.15
  np.testing.assert_array_equal(kept(1.0), [0, 1, 2, 3])  # off
  np.testing.assert_array_equal(
      np.flatnonzero(np.isfinite(lm.filter_logits(logits, 1.0, 2, 1.0)[0])), [1, 3])  # top-2
  masked = lm.filter_logits(logits, 0.5, 0, 1.0, jnp.array([2, 4]))[0]
  np.testing.assert_allclose(masked, [-np.inf, -np.inf, 2 * np.log(0.15), 2 * np.log(0.3)],
                             rtol=1e-6)


def test_top_p_draws_only_from_the_nucleus():
  model, params = model_and_params()
  prompt = random_tokens(5, (4, 3))
  drawn = lm.sample(model, params, prompt, 24, jax.random.key(3), temperature=2.0, top_p=0.3)
  logits = np.asarray(teacher_forced_logits(model, params, prompt, drawn)) / 2.0
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  drawn_prob = np.take_along_axis(probs, np.asarray(drawn)[..., None], -1)
  mass_above = (probs * (probs > drawn_prob)).sum(-1)  # of the tokens ranked before it
  assert (mass_above < 0.3 + 1e-5).all()


def test_allowed_range_per_step():
  model, params = model_and_params()
  prompt = random_tokens(6, (3, 4))
  level_range = lambda t: (0, 16) if t % 2 == 0 else (48, 64)  # two "RVQ levels"
  drawn = np.asarray(lm.sample(model, params, prompt, 20, jax.random.key(4),
                               allowed_range=level_range))
  assert (drawn[:, 0::2] < 16).all() and (drawn[:, 1::2] >= 48).all()
  table = np.array([level_range(t) for t in range(20)])
  np.testing.assert_array_equal(
      drawn, lm.sample(model, params, prompt, 20, jax.random.key(4), allowed_range=table))
  greedy = np.asarray(lm.sample(model, params, prompt, 20, jax.random.key(0), temperature=0.0,
                                top_k=5, allowed_range=(30, 31)))
  assert (greedy == 30).all()


def test_step_ranges_checks_its_input():
  np.testing.assert_array_equal(lm.step_ranges((3, 9), 2), [[3, 9], [3, 9]])
  assert lm.step_ranges(None, 5) is None
  with pytest.raises(ValueError, match="shape"):
    lm.step_ranges(np.zeros((3, 2)), 4)
  with pytest.raises(ValueError, match="empty"):
    lm.step_ranges((5, 5), 4)


def test_sampler_rejects_an_empty_prompt():
  model, params = model_and_params()
  with pytest.raises(ValueError, match="prompt"):
    lm.sample(model, params, jnp.zeros((2, 0), jnp.int32), 4, jax.random.key(0))
