"""WaveNet with a discretized mixture of logistics: likelihood, sampler, incremental decoder."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax import audio as audio_lib
from audiojax.models import wavenet
from audiojax.sample import wavenet as sampler
from tests.models.test_wavenet import TINY, random_params

MOL = {**TINY, "output": "mol", "num_mixtures": 3}


def mixture(logits, means, log_scales) -> jnp.ndarray:
  """Mixture outputs [3K] from per-component lists."""
  return jnp.asarray(np.concatenate([logits, means, log_scales]), jnp.float32)


def mixture_cdf(x: np.ndarray, weights, means, scales) -> np.ndarray:
  """The continuous mixture's CDF at x."""
  z = (x[:, None] - np.asarray(means)) / np.asarray(scales)
  return (np.asarray(weights) / (1 + np.exp(-z))).sum(-1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probabilities_over_all_levels_sum_to_one(seed):
  """Every 16-bit level (and every mu-law class) under random params: total mass 1."""
  rng, k = np.random.default_rng(seed), 10
  outputs = mixture(rng.normal(size=k), rng.uniform(-1.2, 1.2, k), rng.uniform(-11, 1, k))
  log_prob = jax.jit(wavenet.mixture_log_prob, static_argnums=4)
  levels = jnp.arange(wavenet.MOL_LEVELS)
  bins = audio_lib.linear_bins(levels, wavenet.MOL_LEVELS)
  total = jnp.exp(log_prob(jnp.broadcast_to(outputs, (levels.size, 3 * k)), *bins, -12.0)).sum()
  assert abs(float(total) - 1.0) < 1e-4, float(total)
  classes = jnp.arange(256)
  bins = audio_lib.mu_law_bins(classes, 255)
  total = jnp.exp(log_prob(jnp.broadcast_to(outputs, (256, 3 * k)), *bins, -12.0)).sum()
  assert abs(float(total) - 1.0) < 1e-4, float(total)


def test_log_prob_is_stable_and_has_finite_gradients():
  """Far tails, edge bins and clamped scales: finite values and gradients."""
  outputs = mixture([0.0, 2.0], [0.999, -0.5], [-30.0, 0.0])  # first scale clamped to e^-12
  levels = jnp.array([0, 1, 32768, 65534, 65535])
  loss = lambda o: -wavenet.mixture_log_prob(
      jnp.broadcast_to(o, (5, 6)), *audio_lib.linear_bins(levels), -12.0).sum()
  value, grad = jax.value_and_grad(loss)(outputs)
  assert np.isfinite(float(value)) and np.isfinite(np.asarray(grad)).all()
  assert float(grad[4]) == 0.0  # below the clamp: no gradient to that log scale


def test_next_amplitudes_follow_the_mixture():
  """20k draws: KS distance to the mixture CDF, mean and variance; temperature and argmax."""
  weights, means, scales = np.array([0.3, 0.7]), np.array([-0.3, 0.2]), np.array([0.05, 0.1])
  outputs = jnp.broadcast_to(mixture(np.log(weights), means, np.log(scales)), (20000, 6))
  uniforms = jnp.asarray(np.random.default_rng(0).uniform(size=(20000, 2)), jnp.float32)
  draw = jax.jit(sampler.next_amplitudes, static_argnums=(2, 3))
  x = np.sort(np.asarray(draw(uniforms, outputs, 1.0, -12.0), np.float64))
  levels = (x + 1) / 2 * (wavenet.MOL_LEVELS - 1)
  np.testing.assert_allclose(levels, np.round(levels), atol=1e-2)  # on the 16-bit grid
  empirical = np.arange(1, x.size + 1) / x.size
  assert np.abs(empirical - mixture_cdf(x, weights, means, scales)).max() < 0.015  # KS, p ~ 1e-3
  mean = weights @ means
  variance = weights @ (scales**2 * np.pi**2 / 3 + means**2) - mean**2
  assert abs(x.mean() - mean) < 0.005 and abs(x.var() / variance - 1) < 0.05
  # Temperature 0.5 halves a component's scale: a single logistic's std halves.
  one = jnp.broadcast_to(mixture([0.0], [0.1], [np.log(0.1)]), (20000, 3))
  std = np.asarray(draw(uniforms, one, 0.5, -12.0)).std()
  np.testing.assert_allclose(std, 0.5 * 0.1 * np.pi / np.sqrt(3), rtol=0.03)
  greedy = np.asarray(draw(uniforms[:2], outputs[:2], 0.0, -12.0))
  np.testing.assert_allclose(greedy, 0.2, atol=1 / wavenet.MOL_LEVELS)  # heavier component


def test_incremental_equals_parallel_and_samplers_agree():
  model = wavenet.Model(**MOL, num_speakers=2)
  params = random_params(model, seed=5)
  levels = np.random.default_rng(1).integers(0, wavenet.MOL_LEVELS, (3, 2 * model.receptive_field))
  inputs = audio_lib.linear_decode(jnp.asarray(levels, jnp.int32))
  speaker = jnp.array([0, 1, 1])
  parallel = model.apply({"params": params}, inputs, speaker)
  assert parallel.shape == (*inputs.shape, 9)
  incremental = sampler.teacher_forced_logits(model, params, inputs, speaker)
  np.testing.assert_allclose(incremental, parallel, atol=1e-5, rtol=0)

  kwargs = dict(num_samples=3 * model.receptive_field, batch_size=3, rng=jax.random.key(3),
                speaker=speaker)
  fast = np.asarray(sampler.sample(model, params, **kwargs))
  naive = np.asarray(sampler.naive_sample(model, params, **kwargs))
  assert fast.shape == (3, kwargs["num_samples"]) and fast.dtype == np.float32
  assert -1 <= fast.min() and fast.max() <= 1 and np.unique(fast).size > 20
  # Same outputs up to rounding, and a continuous draw: at most a level apart, mostly equal.
  step = 2 / (wavenet.MOL_LEVELS - 1)
  assert np.abs(fast - naive).max() <= 1.5 * step and (fast == naive).mean() > 0.9


def test_causal_in_the_amplitudes():
  model = wavenet.Model(**MOL)
  params = random_params(model)
  apply = jax.jit(lambda x: model.apply({"params": params}, x))
  inputs = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (2, 32)), jnp.float32)
  outputs, t0 = apply(inputs), 17
  changed = apply(inputs.at[:, t0:].multiply(-0.5))
  np.testing.assert_allclose(changed[:, :t0], outputs[:, :t0], atol=1e-6)
  assert (np.abs(changed[:, t0] - outputs[:, t0]).max(-1) > 1e-4).all()
