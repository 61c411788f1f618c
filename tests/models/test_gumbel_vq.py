"""wav2vec 2.0's Gumbel-softmax quantizer (`audiojax.models.gumbel_vq`)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from audiojax.models import gumbel_vq


def test_temperature_falls_geometrically_then_stays():
  tau = lambda step: float(gumbel_vq.temperature(jnp.asarray(step), (2.0, 0.5), 100))
  assert tau(0) == 2.0
  np.testing.assert_allclose(tau(50), 1.0, rtol=1e-6)  # sqrt(2 * 0.5)
  np.testing.assert_allclose([tau(100), tau(1000)], [0.5, 0.5], rtol=1e-6)


def _init(vq, x):
  return nn.meta.unbox(vq.init({"params": jax.random.key(0), "quantizer": jax.random.key(1)},
                               x, True))


def test_codes_follow_the_softmax_and_the_forward_pass_is_the_codes_vector():
  """Training codes are Gumbel-max samples of softmax(logits) (the temperature does not
  change which code wins); the quantized vector is exactly the code's row; eval takes the
  argmax; every training call advances the step."""
  vq = gumbel_vq.GumbelVQ(codebook_size=4, dim=3, temperatures=(2.0, 0.5), anneal_steps=10)
  x = jnp.ones((1, 20000, 2))  # One frame, many times: the codes' frequencies.
  variables = _init(vq, x)
  params = variables["params"]
  params = {**params, "logits": {"kernel": jnp.zeros((2, 4)),
                                 "bias": jnp.log(jnp.asarray([0.1, 0.2, 0.3, 0.4]))}}
  (quantized, codes, aux), state = vq.apply(
      {**variables, "params": params}, x, True, rngs={"quantizer": jax.random.key(2)},
      mutable=["codebooks"])
  frequencies = np.bincount(np.asarray(codes).ravel(), minlength=4) / codes.size
  np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.015)
  np.testing.assert_allclose(quantized[0], np.asarray(params["codebook"])[codes[0]], atol=1e-6)
  assert int(state["codebooks"]["step"]) == 1 and float(aux["temperature"]) == 2.0
  _, eval_codes, _ = vq.apply({**variables, "params": params}, x[:, :5], False)
  assert (np.asarray(eval_codes) == 3).all()


def test_gradients_reach_the_logits_through_the_straight_through_sample():
  vq = gumbel_vq.GumbelVQ(codebook_size=8, dim=4)
  x = jax.random.normal(jax.random.key(3), (2, 6, 5))
  variables = _init(vq, x)

  def loss(params):
    (quantized, _, _), _ = vq.apply({**variables, "params": params}, x, True,
                                    rngs={"quantizer": jax.random.key(4)}, mutable=["codebooks"])
    return jnp.sum(quantized ** 2)

  grads = jax.grad(loss)(variables["params"])
  assert np.abs(grads["logits"]["kernel"]).sum() > 0
  assert np.abs(grads["codebook"]).sum() > 0


def test_diversity_loss_is_zero_for_even_use_and_high_for_one_code():
  vq = gumbel_vq.GumbelVQ(codebook_size=16, dim=4)
  x = jax.random.normal(jax.random.key(5), (2, 10, 3))
  variables = _init(vq, x)
  params = variables["params"]
  even = {**params, "logits": {"kernel": jnp.zeros((3, 16)), "bias": jnp.zeros(16)}}
  one = {**params, "logits": {"kernel": jnp.zeros((3, 16)),
                              "bias": jnp.zeros(16).at[5].set(50.0)}}
  mask = jnp.ones((2, 10)).at[1, 5:].set(0.0)
  _, _, aux = vq.apply({**variables, "params": even}, x, False, mask)
  np.testing.assert_allclose([aux["diversity_loss"], aux["perplexity"]], [0.0, 16.0],
                             atol=1e-4)
  _, _, aux = vq.apply({**variables, "params": one}, x, False, mask)
  np.testing.assert_allclose(aux["diversity_loss"], 15 / 16, atol=1e-4)
