"""SPIN's speaker-invariant clustering (`hubert.Model(objective="spin")`, `tasks.spin_loss`) and
fine-tuning from another run (`trainer.params_from_run`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax import models
from audiojax.data import voice_perturbation
from audiojax.train import losses, tasks, trainer
from configs import semantic
from tests.train.test_w2v_bert import model_config_with, tone_batch, train_on_one_batch


def test_sinkhorn_balances_prototypes_and_normalises_rows():
  """Scores that favour prototype 0 for every row still give each prototype 1/K of the mass;
  each counted row sums to 1; rows not counted get nothing."""
  rng = np.random.default_rng(0)
  n, k = 64, 4
  scores = rng.uniform(-0.2, 0.2, (n, k))
  scores[:, 0] += 0.5
  where = np.arange(n) < 48
  q = np.asarray(losses.sinkhorn_assignments(jnp.asarray(scores), jnp.asarray(where), 0.05,
                                             iterations=20))
  np.testing.assert_allclose(q[where].sum(1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(q[where].sum(0), where.sum() / k, rtol=1e-3)
  assert np.all(q[~where] == 0)
  # Balanced scores already: assignments follow the argmax.
  clear = np.eye(k)[np.arange(n) % k]
  q = losses.sinkhorn_assignments(jnp.asarray(clear), jnp.ones(n, bool), 0.05)
  np.testing.assert_array_equal(np.argmax(q, 1), np.arange(n) % k)


def test_swapped_prediction_is_low_when_the_views_agree_and_high_when_they_do_not():
  """Views whose frames pick the same prototype confidently: loss near 0, agreement 1; views
  whose assignments are shuffled: loss near log K."""
  k, t = 8, 32
  cosine = jnp.asarray(np.eye(k)[np.arange(t) % k][None], jnp.float32)  # [1, T, K]
  where = jnp.ones((1, t), bool)
  temperature, epsilon = 0.05, 0.05
  loss, agreement = losses.swapped_prediction_loss(cosine / temperature, cosine / temperature,
                                                   cosine, cosine, where, epsilon)
  assert loss < 0.01 and agreement == 1.0
  shuffled = jnp.roll(cosine, 3, axis=1)
  loss, agreement = losses.swapped_prediction_loss(cosine / temperature,
                                                   shuffled / temperature, cosine, shuffled,
                                                   where, epsilon)
  assert loss > 10 and agreement == 0.0


def test_spin_needs_its_assignment_setting_and_two_different_views():
  config = semantic.get_config("spin_tiny")
  with pytest.raises(ValueError, match="sinkhorn_epsilon"):
    models.get_model(model_config_with(config, sinkhorn_epsilon=0.0))
  model = models.get_model(config.model)
  batch = {"audio": jnp.zeros((1, 3200)), "mask": jnp.ones((1, 3200))}
  with pytest.raises(ValueError, match="perturb_voice"):
    tasks.spin_loss(model, {"params": {}}, batch, jax.random.key(0))


def test_tiny_spin_learns_assignments_that_survive_another_voice():
  """On one batch of tones and their copies in other voices, a few steps lower the
  swapped-prediction loss and raise the share of frames whose two views pick the same
  prototype; eval's figures are finite and reproducible."""
  config = semantic.get_config("spin_tiny")
  model = models.get_model(config.model)
  task = tasks.get_task("hubert")
  batch = tone_batch()
  batch["perturbed"] = jnp.asarray(np.stack([
      voice_perturbation.perturb_voice(np.asarray(a), 16000, np.random.default_rng(i))
      for i, a in enumerate(batch["audio"])]))
  state, history = train_on_one_batch(model, task, config, batch, 40)
  start = np.mean([h["loss"] for h in history[:3]])
  end = np.mean([h["loss"] for h in history[-3:]])
  assert end < 0.8 * start, (start, end)
  assert np.mean([h["view_agreement"] for h in history[-3:]]) > np.mean(
      [h["view_agreement"] for h in history[:3]])
  evaluate = lambda: task.loss_fn(model, state.variables, batch, jax.random.key(7), False)
  (loss, (metrics, new_state)), (again, _) = evaluate(), evaluate()
  assert new_state == {} and np.isfinite(loss) and loss == again
  assert 1 <= metrics["prototype_perplexity"] <= config.model.num_targets


def test_params_from_run_copies_the_encoder_and_keeps_the_head_fresh(semantic_run,
                                                                      untrained_codec_workdir):
  """spin_tiny started from the tiny HuBERT run: every parameter but the excluded head equals
  the run's; the head keeps its initialisation; a codec run shares nothing: a clear error."""
  _, workdir = semantic_run
  config = semantic.get_config("spin_tiny")
  model, task, tx, _, mesh, rules = trainer.build(config)
  state, shardings = trainer.init_state(config, model, task, tx, mesh, rules)
  params = trainer.params_from_run(workdir, state.params, shardings.params,
                                   ["head", "label_embeddings"])
  _, _, source, _ = trainer.restore_variables(trainer.load_config(workdir), workdir)
  assert set(params) == set(state.params)
  for name in params:
    expected = state.params[name] if name in ("head", "label_embeddings") else \
        source["params"][name]
    jax.tree.map(np.testing.assert_array_equal, params[name], expected)
  assert not np.array_equal(params["label_embeddings"], source["params"]["label_embeddings"])
  with pytest.raises(ValueError, match="shares no parameter"):
    trainer.params_from_run(untrained_codec_workdir, state.params, shardings.params)
