"""The speaker encoder trained alone (`audiojax.models.speaker_encoder`, `tasks.
speaker_encoder_loss`) and its hand-over to a voice-cloning WaveNet (`train.init_from` with
`optimizer.frozen`)."""


import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from audiojax import models
from audiojax.eval import speaker_verification
from audiojax.train import tasks, trainer
from configs import speaker_encoder as encoder_config
from configs import wavenet as wavenet_config


def small_model(**overrides):
  config = encoder_config.get_config("tiny").model
  config.update({"num_speakers": 2, "embedding_dim": 8, "reference_mels": 16, **overrides})
  return models.get_model(config)


def voices(rng: np.random.Generator, n: int, samples: int = 3200) -> dict:
  """n clips of two "voices": harmonic tones near 120 Hz (speaker 0) or 260 Hz (speaker 1)
  with random pitch jitter, phase and level, plus noise."""
  t = np.arange(samples) / 16000
  speakers = np.arange(n) % 2
  audio = []
  for s in speakers:
    f0 = (120.0 if s == 0 else 260.0) * rng.uniform(0.9, 1.1)
    clip = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
    audio.append(rng.uniform(0.05, 0.5) * clip + 0.01 * rng.standard_normal(samples))
  return {"audio": jnp.asarray(np.stack(audio), jnp.float32),
          "speaker": jnp.asarray(speakers, jnp.int32)}


def test_vectors_are_unit_and_logits_are_scaled_cosines():
  model = small_model()
  mel = jax.random.normal(jax.random.key(0), (3, 20, 16))
  variables = nn.meta.unbox(model.init(jax.random.key(1), mel))
  vectors, logits = model.apply(variables, mel)
  assert vectors.shape == (3, 8) and logits.shape == (3, 2)
  np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, rtol=1e-5)
  centres = variables["params"]["speaker_centres"]
  centres = centres / np.linalg.norm(centres, axis=-1, keepdims=True)
  np.testing.assert_allclose(logits, model.scale * vectors @ centres.T, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="at least two speakers"):
    small_model(num_speakers=1)


def test_margin_applies_in_training_only():
  """AM-softmax: the label's logit lowered by scale x margin in training (a higher loss);
  eval's loss is the plain softmax's."""
  model = small_model()
  batch = voices(np.random.default_rng(0), 4)
  variables = tasks.speaker_encoder_init(model, jax.random.key(0), batch)
  train_loss, _ = tasks.speaker_encoder_loss(model, variables, batch, jax.random.key(0), True)
  eval_loss, (metrics, _) = tasks.speaker_encoder_loss(model, variables, batch,
                                                       jax.random.key(0), False)
  _, logits = model.apply(variables, tasks.reference_features(model, batch["audio"]))
  expected = optax.softmax_cross_entropy_with_integer_labels(logits, batch["speaker"]).mean()
  np.testing.assert_allclose(eval_loss, expected, rtol=1e-6)
  assert train_loss > eval_loss
  assert metrics["accuracy"] == np.mean(np.argmax(logits, -1) == np.asarray(batch["speaker"]))


def test_learns_to_tell_two_voices_apart_on_new_clips():
  """40 Adam steps on fresh clips of two voices: new clips of each are named right, and each
  clip's vector is closer (cosine) to its own voice's mean vector than to the other's."""
  model = small_model()
  rng = np.random.default_rng(0)
  variables = tasks.speaker_encoder_init(model, jax.random.key(0), voices(rng, 8))
  tx = optax.adam(3e-3)
  opt_state = tx.init(variables["params"])

  @jax.jit
  def step(params, opt_state, batch):
    grads = jax.grad(lambda p: tasks.speaker_encoder_loss(model, {"params": p}, batch,
                                                          jax.random.key(0))[0])(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state

  params = variables["params"]
  for _ in range(40):
    params, opt_state = step(params, opt_state, voices(rng, 8))
  held_out = voices(np.random.default_rng(1), 16)
  _, (metrics, _) = tasks.speaker_encoder_loss(model, {"params": params}, held_out,
                                               jax.random.key(0), False)
  assert metrics["accuracy"] == 1.0
  vectors, _ = model.apply({"params": params},
                           tasks.reference_features(model, held_out["audio"]))
  vectors, speakers = np.asarray(vectors), np.asarray(held_out["speaker"])
  means = np.stack([vectors[speakers == s].mean(0) for s in (0, 1)])
  cosine = vectors @ (means / np.linalg.norm(means, axis=-1, keepdims=True)).T
  assert np.all(cosine[np.arange(16), speakers] > cosine[np.arange(16), 1 - speakers])


def with_data_dir(config: ml_collections.ConfigDict, data_dir: str) -> ml_collections.ConfigDict:
  config.data.data_dir = data_dir
  return config


def test_a_cloning_wavenet_keeps_the_encoder_it_was_given(tmp_path, espeak_tiny_dir):
  """tts_cloning_tiny started from a tiny speaker-encoder run with the encoder frozen: after
  training, its speaker encoder is that run's, parameter for parameter. Frozen with nothing to
  start from, or from an encoder of another size, is a clear error before any step."""
  encoder_dir = str(tmp_path / "encoder")
  config = with_data_dir(encoder_config.get_config("tiny"), espeak_tiny_dir)
  config.train.update(num_steps=2, eval_every=0)
  trainer.train_and_evaluate(config, encoder_dir)

  config = with_data_dir(wavenet_config.get_config("tts_cloning_tiny"), espeak_tiny_dir)
  config.train.update(num_steps=2, eval_every=0, sample_every=0)
  config.optimizer.frozen = "speaker_encoder"
  with pytest.raises(ValueError, match="leaves speaker_encoder untrained: set train.init_from"):
    trainer.train_and_evaluate(config, str(tmp_path / "no_init"))
  config.train.init_from = encoder_dir
  wider = config.copy_and_resolve_references()
  wider.model.speaker_embedding_dim = 8
  with pytest.raises(ValueError, match="speaker_encoder/project/kernel, which this run keeps "
                                       "frozen"):
    trainer.train_and_evaluate(wider, str(tmp_path / "wider"))
  state = trainer.train_and_evaluate(config, str(tmp_path / "cloning"))
  assert int(state.step) == 2
  _, _, source, _ = trainer.restore_variables(trainer.load_config(encoder_dir), encoder_dir)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params["speaker_encoder"]),
               source["params"]["speaker_encoder"])
  # Both runs' encoders (the same weights) verify speakers alike; a run without one cannot.
  scores = [speaker_verification.evaluate(d, "test") for d in (encoder_dir,
                                                                 str(tmp_path / "cloning"))]
  assert scores[0] == scores[1]
  assert scores[0]["num_speakers"] == 3 and scores[0]["num_pairs"] == 15
  assert 0.0 <= scores[0]["equal_error_rate"] <= 1.0
  config = with_data_dir(wavenet_config.get_config("tts_tiny"), espeak_tiny_dir)
  config.train.update(num_steps=1, eval_every=0, sample_every=0)
  trainer.train_and_evaluate(config, str(tmp_path / "tts"))
  with pytest.raises(ValueError, match="has no speaker encoder"):
    speaker_verification.evaluate(str(tmp_path / "tts"), "test")


def test_equal_error_rate():
  """Separated scores: 0; reversed: 1; one negative above one positive of four each: 1/4 (a
  threshold between them rejects one target and accepts one impostor)."""
  same = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
  assert speaker_verification.equal_error_rate(np.arange(8.0), same) == 0.0
  assert speaker_verification.equal_error_rate(-np.arange(8.0), same) == 1.0
  scores = np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.7, 0.8, 0.9])
  assert speaker_verification.equal_error_rate(scores, same) == pytest.approx(0.25)
  rng = np.random.default_rng(0)
  random = speaker_verification.equal_error_rate(rng.standard_normal(4000), rng.random(4000) < 0.3)
  assert 0.45 < random < 0.55
  with pytest.raises(ValueError, match="same speaker and of different"):
    speaker_verification.equal_error_rate(scores, np.ones(8, bool))
