"""The text-to-speech acoustic model: its pitch input, its batches and its training task, and
the two-stage glue to a vocoder (audiojax/sample/tts.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from audiojax import models
from audiojax.data import pipeline, pitch
from audiojax.models import acoustic, wavenet
from audiojax.sample import tts
from audiojax.train import losses, tasks, trainer
from configs import acoustic as acoustic_config
from configs import wavenet as wavenet_config


def test_frame_pitch_reads_voicing_and_f0_off_the_excitation():
  """Pulses every 80 samples (200 Hz at 16 kHz) over the first 1000 samples: those frames are
  voiced at log2(200 / 100) = 1, the silent ones after are 0, 0."""
  rate, hop = 16000, 100
  points = np.arange(0, 1001, 80)
  excitation = pitch.excitation(points, 2000, rate)  # [2000, 5]
  packed = jnp.asarray(excitation.reshape(1, 2000 // hop, hop * pitch.EXCITATION_CHANNELS))
  features = np.asarray(acoustic.frame_pitch(packed, hop, pitch.EXCITATION_CHANNELS, rate))
  assert features.shape == (1, 20, 2)
  np.testing.assert_allclose(features[0, :9], [[1.0, 1.0]] * 9, atol=1e-5)
  np.testing.assert_allclose(features[0, 11:], 0.0)
  # Without the period channel, the voicing only.
  four = jnp.asarray(excitation[:, :4].reshape(1, 20, hop * 4))
  np.testing.assert_allclose(np.asarray(acoustic.frame_pitch(four, hop, 4, rate))[0, :9],
                             [[1.0, 0.0]] * 9)


@pytest.fixture(scope="module")
def tiny_config(espeak_tiny_dir):
  config = acoustic_config.get_config("tiny")
  config.data.data_dir = espeak_tiny_dir
  return trainer.with_phoneme_inventory(config)


def test_training_fits_the_log_mel_of_a_batch(tiny_config):
  """The loss is the error against the log-mel of the batch audio, at the frames inside the
  utterance; a few hundred steps on one batch bring it far down."""
  model = models.get_model(tiny_config.model)
  batch = next(iter(pipeline.train_dataset(tiny_config.data, seed=0)))
  batch = jax.tree.map(jnp.asarray, batch)
  assert batch["condition"].shape[-1] == tiny_config.model.linguistic_channels + \
      tiny_config.model.hop * tiny_config.model.excitation_channels
  variables = tasks.acoustic_init(model, jax.random.PRNGKey(0), batch)
  tx = optax.adam(3e-3)
  opt_state = tx.init(variables["params"])

  @jax.jit
  def step(params, opt_state):
    loss_fn = lambda p: tasks.acoustic_loss(model, {"params": p}, batch, jax.random.PRNGKey(1),
                                            False)[0]
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  params, first = variables["params"], None
  for _ in range(300):
    params, opt_state, loss = step(params, opt_state)
    first = loss if first is None else first
  assert float(loss) < 0.2 * float(first), (first, loss)
  # Frames past the utterance (mask 0 at their first sample) do not count.
  hop = tiny_config.model.hop
  padded = batch["mask"].at[:, -hop:].set(0)
  loss, (metrics, _) = tasks.acoustic_loss(model, {"params": params},
                                           {**batch, "mask": padded}, jax.random.PRNGKey(1), False)
  error = np.asarray(model.apply({"params": params}, batch["condition"], batch["speaker"]) -
                     losses.mel_features(batch["audio"], 16000, hop, model.num_mels))
  inside = np.asarray(padded[:, ::hop]) > 0
  assert float(metrics["num_predictions"]) == inside.sum() < inside.size
  np.testing.assert_allclose(float(loss), np.abs(error[inside]).mean() +
                             np.square(error[inside]).mean(), rtol=1e-5)


def test_wrong_input_width_is_a_clear_error(tiny_config):
  model = models.get_model(tiny_config.model)
  with pytest.raises(ValueError, match="expected"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 7)), jnp.zeros((1,), jnp.int32))


def test_vocoder_condition_is_the_predicted_mel_then_the_excitation(tiny_config):
  """The quick start's tiny vocoder fits the tiny acoustic model; a vocoder of other frames or
  without the excitation is refused, naming what differs."""
  model = models.get_model(tiny_config.model)
  vocoder = models.get_model(wavenet_config.get_config("quickstart_tiny").model)
  tts.check_vocoder(model, vocoder)
  frames = 5
  condition = jax.random.normal(jax.random.PRNGKey(2), (1, frames, model.linguistic_channels +
                                                        model.hop * model.excitation_channels))
  speaker = jnp.zeros((1,), jnp.int32)
  variables = model.init(jax.random.PRNGKey(0), condition, speaker)
  out = tts.vocoder_condition(model, variables, [condition[0]], speaker)
  assert out.shape == (1, frames, vocoder.condition_channels + vocoder.condition_hop *
                       vocoder.excitation_channels)
  np.testing.assert_array_equal(out[..., model.num_mels:],
                                condition[..., model.linguistic_channels:])
  np.testing.assert_allclose(out[..., :model.num_mels], model.apply(variables, condition, speaker))
  # A batch with a longer sentence: the short one's rows are as alone, zeros past its end
  # (through a zero-padded batch its last frames would see the padding: the model is not
  # causal).
  longer = jax.random.normal(jax.random.PRNGKey(3), (2 * frames, condition.shape[-1]))
  both = tts.vocoder_condition(model, variables, [condition[0], longer], jnp.zeros((2,), jnp.int32))
  np.testing.assert_allclose(both[0, :frames], out[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(both[0, frames:], 0.0)
  padded = jnp.stack([jnp.pad(condition[0], ((0, frames), (0, 0))), longer])
  assert np.abs(model.apply(variables, padded, jnp.zeros((2,), jnp.int32))[0, :frames]
                - out[0, :, :model.num_mels]).max() > 1e-4
  for variant, message in (("vocoder_tiny", "excitation_channels=5 vs the vocoder's "
                            "excitation_channels=0"), ("tts_tiny", "conditioned on log-mel")):
    with pytest.raises(ValueError, match=message):
      tts.check_vocoder(model, models.get_model(wavenet_config.get_config(variant).model))


def test_cloning_conditions_on_the_reference_or_its_vector(espeak_tiny_dir):
  """A voice-cloning acoustic model takes the reference's log-mel or the vector its speaker
  encoder makes of it (`wavenet.speaker_vectors`, what launch.synthesize passes), alike;
  another reference gives other frames."""
  config = acoustic_config.get_config("cloning_tiny")
  config.data.data_dir = espeak_tiny_dir
  config = trainer.with_phoneme_inventory(config)
  model = models.get_model(config.model)
  batch = jax.tree.map(jnp.asarray, next(iter(pipeline.train_dataset(config.data, seed=0))))
  assert batch["reference"].shape == (2, 640)
  variables = tasks.acoustic_init(model, jax.random.PRNGKey(0), batch)
  mel = tasks.reference_features(model, batch["reference"])
  from_reference = model.apply(variables, batch["condition"], mel)
  np.testing.assert_allclose(
      model.apply(variables, batch["condition"], wavenet.speaker_vectors(model, variables[
          "params"], mel)), from_reference, atol=1e-5)
  assert float(jnp.abs(model.apply(variables, batch["condition"], mel[::-1]) -
                       from_reference).max()) > 1e-4
