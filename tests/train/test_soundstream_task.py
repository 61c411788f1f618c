"""The SoundStream task on the shared trainer: one GAN step trains both parameter sets, and a
small codec learns to reconstruct."""

import jax
import numpy as np
import pytest

from audiojax.models import soundstream
from audiojax.train import sharding, trainer
from configs import soundstream as soundstream_config


def harmonic_batch(seed: int, rows: int, samples: int) -> dict[str, np.ndarray]:
  """Voiced-like test audio: a few harmonics of random pitches with a slow envelope."""
  rng = np.random.default_rng(seed)
  t = np.arange(samples) / 16000
  f0 = rng.uniform(100, 300, (rows, 1))
  audio = sum(rng.uniform(0.1, 0.3, (rows, 1)) * np.sin(2 * np.pi * k * f0 * t)
              for k in range(1, 5))
  audio *= 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6, (rows, 1)))
  return {"audio": audio.astype(np.float32), "mask": np.ones((rows, samples), np.float32),
          "speaker": np.zeros(rows, np.int32)}


@pytest.fixture(scope="module")
def codec():
  """A small codec (tiny config, wider) and its jitted train step, compiled once."""
  config = soundstream_config.get_config("tiny")
  config.mesh.update(data=-1)
  config.model.update(channels=8, num_quantizers=4, codebook_size=32, embedding_dim=16)
  config.optimizer.update(learning_rate=2e-3)
  model, task, tx, schedule, mesh, rules = trainer.build(config)
  state, _ = trainer.init_state(config, model, task, tx, mesh, rules)
  step = jax.jit(trainer.make_train_step(model, task, tx, schedule))
  return model, task, state, step, mesh


def test_one_step_updates_codec_discriminators_and_codebooks(codec):
  _, _, state, step, mesh = codec
  assert set(soundstream.DISCRIMINATORS) <= set(state.params)
  assert not state.model_state["codebooks"]["quantizer"]["initialized"]
  new = state
  for i in range(2):  # The learning rate warms up from 0 at step 0.
    new, metrics = step(new, sharding.shard_batch(harmonic_batch(i, 4, 2048), mesh),
                        jax.random.key(i))
  for name in state.params:
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           state.params[name], new.params[name])
    assert any(jax.tree.leaves(changed)), f"{name} was not updated"
  assert new.model_state["codebooks"]["quantizer"]["initialized"]
  for key in ("discriminator_loss", "adversarial", "feature_matching", "mel_distance"):
    assert np.isfinite(float(metrics[key])), key


def test_small_codec_learns_to_reconstruct(codec):
  model, task, state, step, mesh = codec
  held_out = sharding.shard_batch(harmonic_batch(99, 4, 2048), mesh)
  score = jax.jit(lambda v: task.loss_fn(model, v, held_out, jax.random.key(0), False)[1][0])

  def scores(state):
    metrics = score(state.variables)
    return float(metrics["mel_distance"]), float(metrics["si_snr_db"])

  mel_before, snr_before = scores(state)
  for i in range(150):
    state, _ = step(state, sharding.shard_batch(harmonic_batch(i, 4, 2048), mesh),
                    jax.random.key(i))
  mel_after, snr_after = scores(state)
  assert mel_after < 0.7 * mel_before, (mel_before, mel_after)
  assert snr_after > snr_before + 3.0, (snr_before, snr_after)
