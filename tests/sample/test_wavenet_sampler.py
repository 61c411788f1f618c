"""WaveNet incremental decoding and samplers agree with the parallel model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.models import wavenet
from audiojax.sample import wavenet as sampler

TINY = dict(num_classes=256, residual_channels=8, gate_channels=8, skip_channels=8,
            head_channels=16, kernel_size=2, dilation_cycles=2, max_dilation=4)


def random_params(model: wavenet.Model, seed: int = 0):
  """Random params of `model`'s shapes, biases included (cheaper than compiling `init`)."""
  speaker = jnp.zeros((1,), jnp.int32) if model.num_speakers else None
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32), speaker)
  rng = np.random.default_rng(seed)

  def draw(path, shape):
    name = path[-1].key
    fan_in = 1 if name in ("embedding", "bias") else np.prod(shape.shape[:-1])
    scale = 0.1 if name == "bias" else 1 / np.sqrt(fan_in)
    return jnp.asarray(scale * rng.standard_normal(shape.shape), jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes["params"])


@pytest.mark.parametrize("kernel_size,max_dilation,dilation_cycles,num_speakers",
                         [(2, 4, 2, 0), (2, 8, 1, 3), (3, 4, 2, 0), (3, 2, 2, 4)])
def test_incremental_equals_parallel(kernel_size, max_dilation, dilation_cycles, num_speakers):
  model = wavenet.Model(**{**TINY, "kernel_size": kernel_size, "max_dilation": max_dilation,
                           "dilation_cycles": dilation_cycles, "num_speakers": num_speakers})
  params = random_params(model, seed=kernel_size)
  inputs = np.random.default_rng(1).integers(0, 256, (3, 2 * model.receptive_field + 5))
  inputs = jnp.asarray(inputs, jnp.int32)
  speaker = jnp.array([0, 1, num_speakers - 1]) if num_speakers else None
  parallel = model.apply({"params": params}, inputs, speaker)
  incremental = sampler.teacher_forced_logits(model, params, inputs, speaker)
  assert incremental.shape == parallel.shape == (*inputs.shape, 256)
  np.testing.assert_allclose(incremental, parallel, atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_speakers", [0, 3])
def test_scan_sampler_equals_naive_sampler(num_speakers):
  model = wavenet.Model(**TINY, num_speakers=num_speakers)
  params = random_params(model)
  speaker = jnp.array([2, 0]) if num_speakers else None
  kwargs = dict(num_samples=3 * model.receptive_field, batch_size=2, rng=jax.random.key(3),
                speaker=speaker)
  fast = sampler.sample(model, params, **kwargs)
  assert fast.shape == (2, kwargs["num_samples"]) and fast.dtype == jnp.int32
  assert 0 <= int(fast.min()) and int(fast.max()) < 256
  np.testing.assert_array_equal(fast, sampler.naive_sample(model, params, **kwargs))
  assert len(np.unique(np.asarray(fast))) > 10  # random params: samples are spread out


def test_speaker_changes_samples():
  model = wavenet.Model(**TINY, num_speakers=3)
  params = random_params(model)
  draw = lambda speaker: sampler.sample(model, params, num_samples=64, batch_size=2,
                                        rng=jax.random.key(4), speaker=jnp.array(speaker))
  np.testing.assert_array_equal(draw([1, 1]), draw([1, 1]))
  assert (draw([0, 0]) != draw([1, 1])).any()


def test_temperature_zero_is_greedy_and_deterministic():
  model = wavenet.Model(**TINY)
  params = random_params(model)
  draw = lambda seed: sampler.sample(model, params, num_samples=40, batch_size=2,
                                     rng=jax.random.key(seed), temperature=0.0)
  greedy = draw(0)
  np.testing.assert_array_equal(greedy, draw(1))
  silence = jnp.full((2, 1), sampler.silence_class(model), jnp.int32)
  inputs = jnp.concatenate([silence, greedy[:, :-1]], axis=1)
  logits = model.apply({"params": params}, inputs)
  np.testing.assert_array_equal(greedy, logits.argmax(-1))


def test_next_classes_follows_softmax():
  logits = jnp.log(jnp.array([[0.1, 0.2, 0.3, 0.4]]))
  uniforms = jnp.asarray(np.random.default_rng(0).uniform(size=(20000, 1)), jnp.float32)
  draw = jax.vmap(lambda u, t: sampler.next_classes(u, logits, t), in_axes=(0, None))
  counts = lambda t: np.bincount(np.asarray(draw(uniforms, t)).ravel(), minlength=4) / 20000
  np.testing.assert_allclose(counts(1.0), [0.1, 0.2, 0.3, 0.4], atol=0.015)
  sharp = np.array([0.1, 0.2, 0.3, 0.4]) ** 2  # temperature 0.5 squares the probabilities
  np.testing.assert_allclose(counts(0.5), sharp / sharp.sum(), atol=0.015)
  assert int(sampler.next_classes(jnp.array([0.3]), logits, 0.0)[0]) == 3
