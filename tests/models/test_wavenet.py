"""WaveNet model: causality, receptive field, mu-law classes and a tiny overfit."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from audiojax import audio as audio_lib
from audiojax.models import wavenet

TINY = dict(num_classes=256, residual_channels=8, gate_channels=8, skip_channels=8,
            head_channels=16, kernel_size=2, dilation_cycles=2, max_dilation=4)


def random_params(model: wavenet.Model, seed: int = 0):
  """Random params of `model`'s shapes, biases included (cheaper than compiling `init`)."""
  speaker = jnp.zeros((1,), jnp.int32) if model.num_speakers else None
  if model.speaker_embedding_dim:  # A reference log-mel of 4 frames.
    speaker = jnp.zeros((1, 4, model.reference_mels))
  inputs = jnp.zeros((1, 8), jnp.float32 if model.output == "mol" else jnp.int32)
  condition = None
  if model.condition_channels:
    condition = jnp.zeros((1, -(-8 // model.condition_hop), model.condition_channels
                           + model.condition_hop * model.excitation_channels))
  shapes = jax.eval_shape(model.init, jax.random.key(0), inputs, speaker, condition)
  rng = np.random.default_rng(seed)

  def draw(path, shape):
    name = path[-1].key
    fan_in = 1 if name in ("embedding", "bias") else np.prod(shape.shape[:-1])
    scale = 0.1 if name == "bias" else 1 / np.sqrt(fan_in)
    return jnp.asarray(scale * rng.standard_normal(shape.shape), jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, nn.meta.unbox(shapes["params"]))


def random_classes(seed: int, shape: tuple[int, ...]) -> jnp.ndarray:
  return jnp.asarray(np.random.default_rng(seed).integers(0, 256, shape), jnp.int32)


def test_receptive_field_formula():
  assert wavenet.receptive_field(2, [1, 2, 4]) == 8
  assert wavenet.receptive_field(3, [1, 2, 4]) == 15
  paper = wavenet.Model()
  assert paper.dilations == tuple(2**i for i in range(10)) * 3
  assert paper.receptive_field == 3070  # (2 - 1) * 3 * 1023 + 1
  assert wavenet.Model(**TINY).receptive_field == 15  # 2 * (1 + 2 + 4) + 1


@pytest.mark.parametrize("num_speakers", [0, 3])
def test_causal(num_speakers):
  model = wavenet.Model(**TINY, num_speakers=num_speakers)
  params = random_params(model)
  speaker = jnp.array([0, 2]) if num_speakers else None
  apply = jax.jit(lambda x: model.apply({"params": params}, x, speaker))
  inputs, t0 = random_classes(1, (2, 32)), 17
  logits = apply(inputs)
  assert logits.shape == (2, 32, 256) and logits.dtype == jnp.float32

  future = inputs.at[:, t0:].set((inputs[:, t0:] + 101) % 256)
  np.testing.assert_allclose(apply(future)[:, :t0], logits[:, :t0], atol=1e-6)
  last = inputs.at[:, t0 - 1].set((inputs[:, t0 - 1] + 101) % 256)
  changed = np.abs(apply(last)[:, t0 - 1] - logits[:, t0 - 1]).max(axis=-1)
  assert (changed > 1e-4).all(), changed


@pytest.mark.parametrize("kernel_size,max_dilation,dilation_cycles",
                         [(2, 4, 2), (3, 8, 1), (3, 2, 3)])
def test_receptive_field_empirical(kernel_size, max_dilation, dilation_cycles):
  """logits[:, T] depends on inputs T - rf + 1 .. T and on nothing earlier."""
  model = wavenet.Model(**{**TINY, "kernel_size": kernel_size, "max_dilation": max_dilation,
                           "dilation_cycles": dilation_cycles})
  params, rf = random_params(model), model.receptive_field
  last = rf + 4  # the output position T; inputs 0..T
  inputs = random_classes(2, (last + 1,))
  # Row s changes input s only; row last + 1 is the unchanged input.
  rows = jnp.tile(inputs, (last + 2, 1))
  rows = rows.at[jnp.arange(last + 1), jnp.arange(last + 1)].add(77) % 256
  logits = jax.jit(model.apply)({"params": params}, rows)[:, last]  # [rows, classes]
  change = np.abs(logits[:-1] - logits[-1]).max(axis=-1)  # [last + 1]
  depends = change > 1e-6
  np.testing.assert_array_equal(depends, np.arange(last + 1) > last - rf,
                                err_msg=f"rf={rf}, change={change}")


def test_mu_law_round_trip_within_a_bin():
  mu = 255
  audio = np.linspace(-1.0, 1.0, 20001)
  classes = np.asarray(audio_lib.mu_law_encode(audio, mu))
  assert classes.dtype == np.int32 and classes.min() == 0 and classes.max() == mu
  assert int(audio_lib.mu_law_encode(jnp.float32(0.0), mu)) == 128
  decoded = np.asarray(audio_lib.mu_law_decode(classes, mu), np.float64)
  # Quantisation rounds the companded value to the nearest level 2k / mu - 1: an error of at
  # most 1 / mu there, i.e. at most the distance to the expanded values at f(x) +- 1 / mu.
  companded = np.sign(audio) * np.log1p(mu * np.abs(audio)) / np.log1p(mu)
  expand = lambda c: np.sign(c) * np.expm1(np.abs(c) * np.log1p(mu)) / mu
  bound = np.maximum(np.abs(expand(np.minimum(companded + 1 / mu, 1.0)) - audio),
                     np.abs(expand(np.maximum(companded - 1 / mu, -1.0)) - audio))
  error = np.abs(decoded - audio)
  assert (error <= bound + 1e-6).all(), (error - bound).max()
  assert error[np.abs(audio) < 1e-3].max() < 1e-4  # fine steps near silence
  assert 0.01 < error.max() < 0.03  # coarse steps near full scale (half a bin ~ 0.02)


def test_overfits_one_batch():
  """Next-sample cross-entropy on one short sine batch falls far below log(256)."""
  model = wavenet.Model(**{**TINY, "residual_channels": 16, "gate_channels": 32,
                           "skip_channels": 32, "head_channels": 32})
  params = nn.meta.unbox(
      jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"])
  time_hz = np.arange(257)[None, :] / 16000.0
  audio = 0.8 * np.sin(2 * np.pi * np.array([[220.0], [330.0]]) * time_hz)
  classes = audio_lib.mu_law_encode(jnp.asarray(audio, jnp.float32))  # [2, 257]
  optimizer = optax.adam(1e-2)

  def loss_fn(params):
    logits = model.apply({"params": params}, classes[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, classes[:, 1:]).mean()

  @jax.jit
  def train_step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = optimizer.init(params)
  first = float(loss_fn(params))
  for _ in range(150):
    params, opt_state, loss = train_step(params, opt_state)
  assert first > 4.0 and float(loss) < 1.0, (first, float(loss))
