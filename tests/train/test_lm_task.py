"""AudioLM stages on the shared trainer: a tiny stage overfits a batch, and trains from token
datasets end to end (checkpoints, eval)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.train import sharding, trainer
from configs import audiolm as audiolm_config
from tests.data.test_audiolm_tokens import write_token_datasets


def test_tiny_stage_overfits_a_batch(tmp_path):
  semantic_dir, acoustic_dir = write_token_datasets(tmp_path)
  config = audiolm_config.get_config("coarse_tiny")
  config.data.update(semantic_dir=semantic_dir, acoustic_dir=acoustic_dir)
  config.optimizer.update(learning_rate=3e-3, warmup_steps=1, schedule="constant")
  model, task, tx, schedule, mesh, rules = trainer.build(config)
  state, _ = trainer.init_state(config, model, task, tx, mesh, rules)
  from audiojax.data import pipeline

  batch = sharding.shard_batch(next(iter(pipeline.train_dataset(
      config.data, seed=0, process_index=0, process_count=1))), mesh)
  step = jax.jit(trainer.make_train_step(model, task, tx, schedule))
  losses = []
  for i in range(150):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.05 * losses[0], losses[::25]
  assert float(metrics["accuracy"]) == 1.0


def test_stage_trains_and_evaluates_from_token_datasets(tmp_path):
  semantic_dir, acoustic_dir = write_token_datasets(tmp_path)
  config = audiolm_config.get_config("fine_tiny")
  config.data.update(semantic_dir=semantic_dir, acoustic_dir=acoustic_dir)
  workdir = str(tmp_path / "run")
  state = trainer.train_and_evaluate(config, workdir)
  assert int(state.step) == 4
  result = trainer.evaluate(workdir, split="validation")
  assert np.isfinite(result["loss"]) and 0.0 <= result["accuracy"] <= 1.0
  assert result["num_predictions"] > 0


@pytest.mark.parametrize("stage", ["semantic", "coarse", "fine"])
def test_kv_cache_equals_full_forward_for_every_stage(stage):
  """Each stage's tiny model: logits of a prefill then one-token cached steps equal the full
  forward's (to 1e-5), on a sequence of its own token layout."""
  config = audiolm_config.get_config(f"{stage}_tiny")
  model, task, tx, _, _, _ = trainer.build(config)
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0),
                                             jnp.zeros((1, 8), jnp.int32)))["params"]
  tokens = jnp.asarray(np.random.default_rng(1).integers(0, model.vocab_size, (2, 12)),
                       jnp.int32)
  full = jax.jit(model.apply)({"params": params}, tokens)
  decode = jax.jit(lambda tokens, cache, position: model.apply(
      {"params": params}, tokens, cache, position, method="decode"))
  logits, cache = decode(tokens[:, :5], model.init_cache(2, 12), 0)
  steps = [logits]
  for t in range(5, 12):
    logits, cache = decode(tokens[:, t:t + 1], cache, t)
    steps.append(logits)
  np.testing.assert_allclose(jnp.concatenate(steps, 1), full, atol=1e-5)


def test_rng_impl_draws_dropout_from_another_generator_deterministically():
  """`train.rng_impl="rbg"`: the step's dropout comes from the rbg generator keyed by the
  step's key: the same key gives the same update, and it differs from threefry's."""
  config = audiolm_config.get_config("semantic_tiny")
  config.model.dropout_rate = 0.3
  model, task, tx, schedule, mesh, rules = trainer.build(config)
  state, _ = trainer.init_state(config, model, task, tx, mesh, rules)
  tokens = np.random.default_rng(0).integers(0, model.vocab_size, (2, 17)).astype(np.int32)
  batch = {"tokens": jnp.asarray(tokens), "loss_mask": jnp.ones((2, 17), jnp.float32)}
  losses = {}
  for impl in ("", "rbg", "rbg"):
    step = jax.jit(trainer.make_train_step(model, task, tx, schedule, rng_impl=impl))
    losses.setdefault(impl, []).append(float(step(state, batch, jax.random.key(3))[1]["loss"]))
  assert losses["rbg"][0] == losses["rbg"][1]
  assert losses["rbg"][0] != losses[""][0]
