"""The CTC phone recognizer: its model, its batches (phone targets) and its training task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax import models
from audiojax.data import phonemes, pipeline
from audiojax.eval import phone_recognizer as recognizer_lib
from audiojax.models import phone_recognizer
from audiojax.train import trainer
from configs import phone_recognizer as recognizer_config


@pytest.fixture(scope="module")
def tiny_config(espeak_tiny_dir):
  config = recognizer_config.get_config("tiny")
  config.data.data_dir = espeak_tiny_dir
  return trainer.with_phoneme_inventory(config)


def test_inventory_is_the_train_splits_phones_without_pauses_or_stress(tiny_config):
  inventory = tiny_config.data.phonemes.split()
  assert tiny_config.model.num_phonemes == len(inventory) > 20
  assert inventory == sorted(set(inventory))
  assert not any(p.startswith(("_", "'", ",")) for p in inventory)
  with pytest.raises(ValueError, match="num_phonemes=5"):
    config = tiny_config.copy_and_resolve_references()
    config.model.num_phonemes = 5
    trainer.with_phoneme_inventory(config)
  with pytest.raises(ValueError, match="num_phonemes=0"):
    models.get_model(recognizer_config.get_config("tiny").model)


def test_batches_bring_the_phones_of_their_crops(tiny_config):
  """Train crops hold the phones whose middle lies in them; an utterance's eval crops hold all
  its phones, once, in order."""
  data = tiny_config.data
  inventory = data.phonemes.split()
  example = next(pipeline.utterances(data, "train", max_examples=1))
  phones = pipeline.recognizer_phones(example)
  record = {k: example[k] for k in ("phoneme_starts", "phoneme_ends")}
  spoken = [p for p, _, _ in phonemes.espeak_phonemes(
      {**record, "phonemes": " ".join(example["phonemes"])}) if p != phonemes.PAUSE]
  assert [p for p, _ in phones] == spoken and len(spoken) > 5
  ids, middles = pipeline.label_fn(data)(example)
  assert [inventory[k - 1] for k in ids] == spoken

  got = []
  for batch in pipeline.eval_batches(data, "train", max_examples=1, batch_size=2):
    for row, length in zip(batch["phoneme_ids"], batch["phoneme_lengths"], strict=True):
      assert not row[length:].any()
      got += list(row[:length])
  np.testing.assert_array_equal(got, ids)

  batch = next(iter(pipeline.train_dataset(data, seed=0, process_index=0, process_count=1)))
  assert batch["phoneme_ids"].shape == (data.batch_size, data.max_phonemes)
  assert batch["phoneme_ids"].dtype == batch["phoneme_lengths"].dtype == np.int32
  assert (batch["phoneme_lengths"] > 0).all()
  assert set(pipeline.example_batch(data)) == set(batch)
  # A crop's phones: those whose middle lies in [start, start + crop).
  crop = pipeline.crop_labels((ids, middles), int(middles[2]), 1 + int(middles[4] - middles[2]),
                              8)
  np.testing.assert_array_equal(crop["phoneme_ids"], np.pad(ids[2:5], (0, 5)))
  with pytest.raises(ValueError, match="raise it"):
    pipeline.crop_labels((ids, middles), 0, 10 ** 6, 2)


def test_greedy_path_and_edit_distances_match_the_numpy_versions():
  rng = np.random.default_rng(0)
  b, t, num_classes, num_refs = 16, 12, 4, 7
  logits = rng.standard_normal((b, t, num_classes))
  logits[:, :, 0] += 0.5  # Some blanks.
  valid = np.arange(t)[None] < rng.integers(0, t + 1, (b, 1))
  refs = rng.integers(1, num_classes, (b, num_refs))
  lengths = rng.integers(0, num_refs + 1, b)
  classes, emit = phone_recognizer.greedy_path(jnp.asarray(logits), jnp.asarray(valid))
  distances = phone_recognizer.edit_distances(classes, emit, jnp.asarray(refs),
                                              jnp.asarray(lengths))
  for i in range(b):
    hypothesis = recognizer_lib.greedy_decode(logits[i, :valid[i].sum()])
    np.testing.assert_array_equal(np.asarray(classes)[i][np.asarray(emit)[i]], hypothesis)
    assert int(distances[i]) == recognizer_lib.edit_distance(list(refs[i, :lengths[i]]),
                                                             list(hypothesis))
  # By hand: frames a a _ a b b _ (_ = blank) decode to a a b; against "a b" one insertion.
  path = jnp.asarray([[1, 1, 0, 1, 2, 2, 0]])
  classes, emit = phone_recognizer.greedy_path(jax.nn.one_hot(path, 3), jnp.ones((1, 7), bool))
  np.testing.assert_array_equal(classes[emit], [1, 1, 2])
  assert phone_recognizer.edit_distances(classes, emit, jnp.asarray([[1, 2, 0]]),
                                         jnp.asarray([2]))[0] == 1


def test_logits_have_one_frame_per_hop_and_padding_is_hidden(tiny_config):
  model = models.get_model(tiny_config.model)
  audio = jax.random.normal(jax.random.key(0), (2, 6000)) * 0.1
  mask = jnp.ones_like(audio).at[1, 2000:].set(0.0)
  variables = jax.jit(model.init)(jax.random.key(1), audio, mask)
  apply = jax.jit(model.apply)
  logits = apply(variables, audio * mask, mask)
  assert logits.shape == (2, 19, tiny_config.model.num_phonemes + 1)  # ceil(6000 / 320)
  # Row 1's 7 real frames do not see what lies in its padding beyond their receptive field.
  beyond = 2000 + model.receptive_field
  other = apply(variables, (audio * mask).at[1, beyond:].set(0.5), mask)
  np.testing.assert_allclose(other[1, :7], logits[1, :7], atol=1e-5)
  assert np.abs(other[1, 7:] - logits[1, 7:]).max() > 1e-3


def test_ctc_loss_falls_when_overfitting_one_batch(tiny_config):
  """100 steps on one batch of two 0.4-s crops: the tiny model memorises their phones (a
  random one scores a CTC loss of ~14 nats per phone and a phone error rate of ~1). The tiny
  config neither masks nor drops out: the train metrics are what eval would say."""
  config = tiny_config.copy_and_resolve_references()
  config.optimizer.schedule = "constant"
  model, task, tx, schedule, mesh, rules = trainer.build(config)
  state, _ = trainer.init_state(config, model, task, tx, mesh, rules)
  batch = next(iter(pipeline.train_dataset(config.data, seed=0, process_index=0,
                                           process_count=1)))
  assert batch["phoneme_lengths"].sum() >= 8
  step = jax.jit(trainer.make_train_step(model, task, tx, schedule))
  history = []
  for i in range(100):
    state, metrics = step(state, batch, jax.random.key(i))
    history.append(jax.device_get(metrics))
  first, last = history[0], history[-1]
  assert first["loss"] > 5.0 and first["phone_error_rate"] > 0.8
  assert last["loss"] < 0.05 * first["loss"], (first, last)
  assert last["phone_error_rate"] < 0.2, (first, last)
  assert last["num_predictions"] == batch["phoneme_lengths"].sum()  # Weighted by target phones.


def test_add_noise_hits_the_drawn_snr_on_the_real_samples_of_the_chosen_rows():
  t = jnp.arange(16000) / 16000.0
  audio = jnp.stack([0.3 * jnp.sin(2 * jnp.pi * 220 * t)] * 64)  # power 0.045
  mask = jnp.ones_like(audio).at[:, 12000:].set(0.0)
  audio = audio * mask
  rng = jax.random.key(0)
  assert (phone_recognizer.add_noise(rng, audio, mask, 0.0, (0.0, 30.0)) == audio).all()
  noisy = phone_recognizer.add_noise(rng, audio, mask, 0.5, (10.0, 10.0))
  changed = np.asarray((noisy != audio).any(-1))
  assert 16 < changed.sum() < 48  # about half the rows
  assert (noisy[:, 12000:] == 0).all()  # padding stays silent
  noise = np.asarray(noisy - audio)[changed, :12000]
  snr_db = 10 * np.log10(0.045 / (noise ** 2).mean(-1))
  np.testing.assert_allclose(snr_db, 10.0, atol=0.2)
  spread = phone_recognizer.add_noise(rng, audio, mask, 1.0, (0.0, 30.0))
  snr_db = 10 * np.log10(0.045 / (np.asarray(spread - audio)[:, :12000] ** 2).mean(-1))
  assert snr_db.min() < 8 and snr_db.max() > 22 and (snr_db > -0.5).all() and (snr_db < 30.5).all()


def test_training_loss_hears_the_noise_and_eval_does_not(tiny_config):
  """model.noise_prob reaches the training step's audio (noise at 0 dB changes the loss) and
  not eval's."""
  losses = {}
  for prob in (0.0, 1.0):
    config = tiny_config.copy_and_resolve_references()
    config.model.update(noise_prob=prob, noise_snr_db=(0.0, 0.0))
    model, task, _, _, _, _ = trainer.build(config)
    variables = task.init_fn(model, jax.random.key(0), batch := next(iter(
        pipeline.train_dataset(config.data, seed=0, process_index=0, process_count=1))))
    losses[prob] = [float(task.loss_fn(model, variables, batch, jax.random.key(1), train)[0])
                    for train in (True, False)]
  assert abs(losses[1.0][0] - losses[0.0][0]) > 1e-3
  assert losses[1.0][1] == losses[0.0][1]
