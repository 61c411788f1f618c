"""WaveNet local conditioning: frame-to-sample alignment, causality, incremental decoder; and
global conditioning on speaker vectors from reference audio (voice cloning)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.models import wavenet
from audiojax.sample import wavenet as sampler
from audiojax.train import losses
from tests.models.test_wavenet import TINY, random_classes, random_params

HOP = 8
LOCAL = {**TINY, "condition_channels": 3, "condition_hop": HOP}
UPSAMPLE = {"repeat": dict(condition_upsample="repeat"),
            "transposed": dict(condition_upsample="transposed", condition_strides=(2, 4))}


def random_condition(seed: int, batch: int, frames: int) -> jnp.ndarray:
  return jnp.asarray(np.random.default_rng(seed).normal(size=(batch, frames, 3)), jnp.float32)


@pytest.mark.parametrize("mode", sorted(UPSAMPLE))
def test_upsampling_aligns_frames_to_samples(mode):
  """Upsampled row n depends on frame n // hop (and, transposed, earlier ones), never later."""
  model = wavenet.Model(**LOCAL, **UPSAMPLE[mode])
  params = random_params(model)
  condition, k = random_condition(0, 2, 5), 2
  upsample = jax.jit(lambda c: wavenet.upsample_condition(model, params, c))
  rows = upsample(condition)
  assert rows.shape == (2, 5 * HOP, 3)
  changed = np.abs(upsample(condition.at[:, k].add(1.0)) - rows).max(axis=(0, 2))
  np.testing.assert_array_equal(changed[:k * HOP], 0.0)
  assert (changed[k * HOP:(k + 1) * HOP] > 1e-4).all()
  if mode == "repeat":
    np.testing.assert_array_equal(rows, np.repeat(condition, HOP, axis=1))
    np.testing.assert_array_equal(changed[(k + 1) * HOP:], 0.0)


@pytest.mark.parametrize("mode", sorted(UPSAMPLE))
def test_outputs_see_frames_from_their_own_on(mode):
  """Changing frame k changes outputs from position k * hop - offset on, none before."""
  model = wavenet.Model(**LOCAL, **UPSAMPLE[mode])
  params = random_params(model)
  inputs, condition, k = random_classes(1, (2, 40)), random_condition(2, 2, 6), 3
  for offset in (0, 1):
    apply = jax.jit(lambda c, offset=offset: model.apply({"params": params}, inputs, None, c,
                                                         offset))
    changed = np.abs(apply(condition.at[:, k].add(1.0)) - apply(condition)).max(axis=(0, 2))
    first = k * HOP - offset
    np.testing.assert_array_equal(changed[:first], 0.0)
    assert (changed[first:first + HOP] > 1e-4).all(), changed


def test_still_causal_in_the_audio():
  model = wavenet.Model(**LOCAL, **UPSAMPLE["transposed"], num_speakers=2)
  params = random_params(model)
  condition, speaker = random_condition(3, 2, 4), jnp.array([1, 0])
  apply = jax.jit(lambda x: model.apply({"params": params}, x, speaker, condition))
  inputs, t0 = random_classes(4, (2, 32)), 17
  logits = apply(inputs)
  future = inputs.at[:, t0:].set((inputs[:, t0:] + 101) % 256)
  np.testing.assert_allclose(apply(future)[:, :t0], logits[:, :t0], atol=1e-6)


@pytest.mark.parametrize("mode,num_speakers,output", [
    ("repeat", 0, "softmax"), ("transposed", 0, "softmax"), ("transposed", 3, "softmax"),
    ("repeat", 3, "mol")])
def test_incremental_equals_parallel(mode, num_speakers, output):
  model = wavenet.Model(**{**LOCAL, "num_speakers": num_speakers, "output": output,
                           "num_mixtures": 2}, **UPSAMPLE[mode])
  params = random_params(model, seed=7)
  time = 2 * model.receptive_field + 5
  if output == "mol":
    inputs = jnp.asarray(np.random.default_rng(5).uniform(-1, 1, (3, time)), jnp.float32)
  else:
    inputs = random_classes(5, (3, time))
  condition = random_condition(6, 3, -(-time // HOP))
  speaker = jnp.array([0, 1, num_speakers - 1]) if num_speakers else None
  parallel = model.apply({"params": params}, inputs, speaker, condition)
  incremental = sampler.teacher_forced_logits(model, params, inputs, speaker, condition)
  assert incremental.shape == parallel.shape == (*inputs.shape, model.num_outputs)
  np.testing.assert_allclose(incremental, parallel, atol=1e-5, rtol=0)


def test_scan_sampler_equals_naive_and_follows_the_features():
  model = wavenet.Model(**LOCAL, **UPSAMPLE["transposed"], num_speakers=2)
  params = random_params(model)
  num_samples = 3 * model.receptive_field
  condition = random_condition(8, 2, -(-num_samples // HOP))
  kwargs = dict(num_samples=num_samples, batch_size=2, rng=jax.random.key(3),
                speaker=jnp.array([1, 0]), condition=condition)
  fast = sampler.sample(model, params, **kwargs)
  np.testing.assert_array_equal(fast, sampler.naive_sample(model, params, **kwargs))
  other = sampler.sample(model, params, **{**kwargs, "condition": condition.at[:, 2:].add(1.0)})
  np.testing.assert_array_equal(other[:, :2 * HOP], fast[:, :2 * HOP])
  assert (other[:, 2 * HOP:] != fast[:, 2 * HOP:]).any()
  with pytest.raises(ValueError, match="too few"):
    sampler.sample(model, params, **{**kwargs, "condition": condition[:, :2]})
  with pytest.raises(ValueError, match="pass condition"):
    sampler.sample(model, params, **{**kwargs, "condition": None})


def test_mel_features_frame_k_describes_its_hop_samples():
  """A burst inside frame k: shape ceil(samples / hop) frames, loudest at frame k."""
  hop, samples = 16, 200
  audio = np.zeros((3, samples), np.float32)
  for row, k in enumerate([0, 5, 12]):  # Frame 12 is the last, partial one (192..199).
    burst = audio[row, k * hop:(k + 1) * hop]
    burst[:] = np.random.default_rng(row).normal(size=burst.size)
  mel = np.asarray(losses.mel_features(jnp.asarray(audio), 16000, hop, 8))
  assert mel.shape == (3, 13, 8) and np.isfinite(mel).all()
  np.testing.assert_array_equal(mel.sum(-1).argmax(-1), [0, 5, 12])
  assert mel.min() >= -1e-6 and mel.max() < 1.5


CLONING = {**LOCAL, "speaker_embedding_dim": 4, "reference_mels": 5}


def test_speaker_vectors_come_from_the_reference_and_condition_every_step():
  """The parallel model on a reference log-mel == on its vector == the incremental decoder on
  the vector; the vector has unit norm, and another reference changes the outputs."""
  model = wavenet.Model(**CLONING)
  params = random_params(model, seed=2)
  reference = jnp.asarray(np.random.default_rng(1).normal(size=(3, 7, 5)), jnp.float32)
  vectors = wavenet.speaker_vectors(model, params, reference)
  assert vectors.shape == (3, 4)
  np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, rtol=1e-5)
  time = 2 * model.receptive_field + 5
  inputs, condition = random_classes(5, (3, time)), random_condition(6, 3, -(-time // HOP))
  from_reference = model.apply({"params": params}, inputs, reference, condition)
  from_vector = model.apply({"params": params}, inputs, vectors, condition)
  np.testing.assert_allclose(from_vector, from_reference, atol=1e-6)
  incremental = sampler.teacher_forced_logits(model, params, inputs, vectors, condition)
  np.testing.assert_allclose(incremental, from_vector, atol=1e-5, rtol=0)
  other = model.apply({"params": params}, inputs, vectors[::-1], condition)
  assert np.abs(np.asarray(other - from_vector))[[0, 2]].min(axis=-1).max() > 1e-4
  with pytest.raises(ValueError, match="speaker_embedding_dim"):
    model.apply({"params": params}, inputs, None, condition)
  with pytest.raises(ValueError, match="speaker vectors"):
    sampler.teacher_forced_logits(model, params, inputs, reference, condition)


EXCITATION = {**LOCAL, "excitation_channels": 2, **UPSAMPLE["transposed"]}


def test_excitation_channels_reach_their_samples_unchanged():
  """Each frame's last hop x E features are E channels at the sample rate, in order; the rest
  is upsampled as before."""
  model = wavenet.Model(**EXCITATION)
  params = random_params(model)
  frames = random_condition(0, 2, 5)
  samples = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5 * HOP, 2)), jnp.float32)
  packed = jnp.concatenate([frames, samples.reshape(2, 5, HOP * 2)], axis=-1)
  rows = wavenet.upsample_condition(model, params, packed)
  assert rows.shape == (2, 5 * HOP, 3 + 2)
  np.testing.assert_array_equal(rows[..., 3:], samples)
  plain = wavenet.Model(**{**EXCITATION, "excitation_channels": 0})
  np.testing.assert_allclose(rows[..., :3], wavenet.upsample_condition(plain, params, frames),
                             atol=1e-6)
  with pytest.raises(ValueError, match="channels per frame"):
    model.apply({"params": params}, random_classes(0, (2, 40)), None, frames)


def test_incremental_equals_parallel_with_excitation():
  model = wavenet.Model(**EXCITATION)
  params = random_params(model, seed=3)
  time = 2 * model.receptive_field + 5
  inputs = random_classes(5, (2, time))
  frames = -(-time // HOP)
  condition = jnp.asarray(np.random.default_rng(6).normal(size=(2, frames, 3 + 2 * HOP)),
                          jnp.float32)
  parallel = model.apply({"params": params}, inputs, None, condition)
  incremental = sampler.teacher_forced_logits(model, params, inputs, None, condition)
  np.testing.assert_allclose(incremental, parallel, atol=1e-5, rtol=0)
