"""WaveNet's context stack: causal at frame boundaries, the crop, incremental == parallel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.models import wavenet
from audiojax.sample import wavenet as sampler
from tests.models.test_wavenet import TINY, random_classes, random_params

HOP = 4
# R = 4 frames of 4 inputs, each frame's spectrum over its last 8 inputs.
CONTEXT = dict(context_hop=HOP, context_window=8, context_layers=2, context_width=6)


def context_model(**kwargs) -> wavenet.Model:
  return wavenet.Model(**{**TINY, **CONTEXT, **kwargs})


def test_params_and_receptive_frames():
  model = context_model()
  params = random_params(model)
  assert params["context_stack"]["embed"]["kernel"].shape == (8 // 2 + 1, 6)
  assert params["context_stack"]["conv_1"]["kernel"].shape == (2, 6, 6)
  assert params["layer_0"]["context"]["kernel"].shape == (6, TINY["gate_channels"])
  assert wavenet.context_frames(model) == 4 and wavenet.context_span(model) == 3 * HOP + 8
  # The context's 1x1s start at zero: training starts from the plain WaveNet.
  init = model.init(jax.random.key(0), jnp.zeros((1, 12), jnp.int32))["params"]
  assert not np.asarray(init["layer_1"]["context"]["kernel"].value).any()
  with pytest.raises(ValueError, match="context_window=2 < context_hop=4"):
    context_model(context_window=2).init(jax.random.key(0), jnp.zeros((1, 12), jnp.int32))


def test_context_is_causal_and_reaches_back_seconds_of_frames():
  """Output t sees input t (the WaveNet) but never input t + 1; it sees inputs far beyond the
  WaveNet's receptive field (15) through the stack, up to R frames before its own frame."""
  model = context_model()
  params = random_params(model)
  apply = jax.jit(lambda x: model.apply({"params": params}, x))
  inputs = random_classes(1, (2, 48))
  logits = apply(inputs)
  for t in (21, 23, 24, 30):  # Inside a frame, its last step, a frame's first step.
    future = inputs.at[:, t + 1:].set((inputs[:, t + 1:] + 101) % 256)
    np.testing.assert_allclose(apply(future)[:, :t + 1], logits[:, :t + 1], atol=1e-6)
  # Output 40 reads positions 26..40 through the WaveNet (receptive field 15), whose gates
  # read the stack's outputs for frames 6..10, each over the R = 4 frames before it: frames
  # 2..9, frame 2's spectrum over inputs 4..11 (the periodic Hann window's first tap is 0:
  # 5..11). Input 5, 35 inputs back, reaches it; inputs 4 and 3 do not.
  def changed(i):  # The input's amplitude flipped in sign (mu-law class 255 - c).
    return np.abs(apply(inputs.at[:, i].set(255 - inputs[:, i]))[:, 40] - logits[:, 40]).max()

  assert changed(5) > 0.0 and changed(4) == changed(3) == 0.0  # (a long path: ~1e-6)
  # Frame 10's steps do not see their own frame through the stack, only through the WaveNet:
  # input 39 changes output 39 but not output 38 (and input 38's change reaches output 39).
  assert np.abs(apply(inputs.at[:, 39].add(77) % 256)[:, 38] - logits[:, 38]).max() < 1e-6


def test_crop_is_the_last_positions_past_the_wavenet_receptive_field():
  model = context_model()
  params = random_params(model)
  inputs = random_classes(2, (2, 50))
  full = model.apply({"params": params}, inputs)
  crop = 23
  cropped = model.apply({"params": params}, inputs, crop=crop)
  assert cropped.shape == (2, crop, 256)
  rf = model.receptive_field  # The WaveNet's own padding at the crop's start differs.
  np.testing.assert_allclose(cropped[:, rf - 1:], full[:, -crop + rf - 1:], atol=1e-5)
  plain = wavenet.Model(**TINY)  # Any model crops: its outputs over the last positions.
  plain_params = random_params(plain)
  np.testing.assert_allclose(plain.apply({"params": plain_params}, inputs, crop=crop),
                             plain.apply({"params": plain_params}, inputs[:, -crop:]), atol=1e-6)


@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_incremental_equals_parallel(output):
  model = context_model(output=output, num_mixtures=2)
  params = random_params(model)
  inputs = random_classes(3, (2, 37))
  if output == "mol":
    inputs = (inputs.astype(jnp.float32) - 128) / 128
  parallel = model.apply({"params": params}, inputs)
  incremental = sampler.teacher_forced_logits(model, params, inputs)
  np.testing.assert_allclose(incremental, parallel, atol=1e-5, rtol=1e-5)


def test_incremental_equals_parallel_with_local_conditioning():
  """The context stack's terms add to the features' (repeat mode, hop 3: frames of the two
  do not line up)."""
  model = context_model(condition_channels=2, condition_hop=3)
  params = random_params(model)
  inputs = random_classes(4, (2, 30))
  condition = jnp.asarray(np.random.default_rng(2).normal(size=(2, 10, 2)), jnp.float32)
  parallel = model.apply({"params": params}, inputs, None, condition)
  incremental = sampler.teacher_forced_logits(model, params, inputs, None, condition)
  np.testing.assert_allclose(incremental, parallel, atol=1e-5, rtol=1e-5)


def test_scan_sampler_equals_naive_sampler_with_speaker():
  model = context_model(num_speakers=3)
  params = random_params(model)
  kwargs = dict(num_samples=41, batch_size=2, rng=jax.random.key(5), temperature=1.0,
                speaker=jnp.array([0, 2]))
  fast = sampler.sample(model, params, **kwargs)
  np.testing.assert_array_equal(fast, sampler.naive_sample(model, params, **kwargs))
