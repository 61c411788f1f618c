"""The config's optimizer (`audiojax.train.optimizer`): frozen parameters."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from audiojax.train import optimizer


def config(**overrides) -> ml_collections.ConfigDict:
  opt = ml_collections.ConfigDict(dict(
      learning_rate=0.1, schedule="constant", warmup_steps=1, final_lr_fraction=0.0, b1=0.9,
      b2=0.98, eps=1e-6, weight_decay=0.1, clip_norm=1.0))
  opt.update(overrides)
  return opt


def test_frozen_modules_keep_their_values_and_the_rest_trains():
  """Modules matching `frozen` in full keep their values (no update, no weight decay); the
  others train exactly as with no frozen module but the gradient norm clipped over them only."""
  params = {"layer_0": {"kernel": jnp.ones((3, 3))}, "layer_1": {"kernel": jnp.ones((3,))},
            "layer_10": {"kernel": jnp.ones((2,))}, "head": {"kernel": jnp.ones((2,))}}
  grads = jax.tree.map(lambda p: 5.0 * jnp.ones_like(p), params)
  tx, _ = optimizer.make_optimizer(config(frozen="layer_[01],nothing"), 10)
  state = tx.init(params)
  updated = params
  for _ in range(3):
    updates, state = tx.update(grads, state, updated)
    updated = optax.apply_updates(updated, updates)
  for name in ("layer_0", "layer_1"):
    np.testing.assert_array_equal(updated[name]["kernel"], params[name]["kernel"])
  trained = {k: params[k] for k in ("layer_10", "head")}
  plain, _ = optimizer.make_optimizer(config(), 10)
  plain_state, expected = plain.init(trained), trained
  for _ in range(3):
    updates, plain_state = plain.update({k: grads[k] for k in trained}, plain_state, expected)
    expected = optax.apply_updates(expected, updates)
  for name in trained:
    np.testing.assert_allclose(updated[name]["kernel"], expected[name]["kernel"], rtol=1e-6)
    assert not np.allclose(updated[name]["kernel"], params[name]["kernel"])


def test_without_frozen_modules_the_state_is_what_older_checkpoints_hold():
  """Checkpoints store the optimizer state: with nothing frozen it keeps its structure."""
  params = {"layer_0": {"kernel": jnp.ones((3, 3))}}
  opt = config()
  tx, schedule = optimizer.make_optimizer(opt, 10)
  older = optax.chain(optax.clip_by_global_norm(opt.clip_norm),
                      optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps,
                                  weight_decay=opt.weight_decay))
  assert (jax.tree.structure(tx.init(params)) == jax.tree.structure(older.init(params)))


def test_a_bad_pattern_is_a_clear_error():
  with pytest.raises(ValueError, match="optimizer.frozen='layer_\\[0': not a list"):
    optimizer.make_optimizer(config(frozen="layer_[0"), 10)
