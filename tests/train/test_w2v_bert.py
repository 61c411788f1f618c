"""w2v-BERT's objective (`hubert.Model(objective="w2v_bert")`, `tasks.w2v_bert_loss`)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax import models
from audiojax.train import losses, optimizer, tasks, trainer
from configs import semantic


def unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_contrastive_loss_matches_a_hand_computed_case():
  """Two masked frames per clip: each one's only distractor is the other (drawn K times)."""
  rng = np.random.default_rng(0)
  context, targets = rng.standard_normal((2, 5, 4))
  masked = np.zeros((1, 5), bool)
  masked[0, [1, 3]] = True
  codes = np.arange(5)[None]
  k, temperature = 3, 0.5
  loss, _ = losses.contrastive_loss(jnp.asarray(context[None]), jnp.asarray(targets[None]),
                                    jnp.asarray(codes), jnp.asarray(masked), jax.random.key(0),
                                    k, temperature)
  sim = unit(context) @ unit(targets).T / temperature
  expected = np.mean([-sim[t, t] + np.log(np.exp(sim[t, t]) + k * np.exp(sim[t, o]))
                      for t, o in ((1, 3), (3, 1))])
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_distractors_come_from_other_masked_frames_with_other_codes():
  """Unmasked frames are never distractors (targets there equal to the context change
  nothing); a distractor sharing the frame's code is left out; with aligned context and
  orthogonal targets the right target wins everywhere."""
  b, t, d = 2, 12, 16
  targets = np.eye(d)[:t][None].repeat(b, 0)  # Orthogonal, one per frame.
  context = targets.copy()
  masked = np.zeros((b, t), bool)
  masked[:, 2:8] = True
  codes = np.arange(t)[None].repeat(b, 0)
  args = lambda targets, codes: (jnp.asarray(context), jnp.asarray(targets), jnp.asarray(codes),
                                 jnp.asarray(masked), jax.random.key(1), 20, 0.1)
  loss, accuracy = losses.contrastive_loss(*args(targets, codes))
  assert accuracy == 1.0 and loss < 1e-3
  decoys = targets.copy()
  decoys[:, 8:] = context[:, 2:6]  # Unmasked frames that would be perfect distractors.
  np.testing.assert_allclose(losses.contrastive_loss(*args(decoys, codes))[0], loss, rtol=1e-6)
  same = np.where(masked, 7, codes)  # Every masked frame has code 7: no distractor left.
  twins = np.where(masked[..., None], targets[:, 2:3], targets)  # One shared target.
  assert losses.contrastive_loss(*args(twins, same))[0] < 1e-6


def test_zero_vectors_give_finite_gradients():
  """Padding frames quantize to zero vectors: the loss's gradient must stay finite."""
  rng = np.random.default_rng(2)
  context, targets = (jnp.asarray(x, jnp.float32) for x in rng.standard_normal((2, 1, 8, 4)))
  targets = targets.at[:, 5:].set(0.0)
  masked = jnp.asarray(np.arange(8) < 6)[None]
  grads = jax.grad(lambda c, q: losses.contrastive_loss(
      c, q, jnp.arange(8)[None], masked, jax.random.key(0), 5, 0.1)[0], argnums=(0, 1))(
          context, targets)
  assert all(np.isfinite(g).all() for g in grads)


def model_config_with(config, **overrides):
  model_config = config.model.copy_and_resolve_references()
  model_config.update(overrides)
  return model_config


def test_unknown_objective_and_bad_split_are_refused():
  config = semantic.get_config("w2v_bert_tiny")
  with pytest.raises(ValueError, match="objective"):
    models.get_model(model_config_with(config, objective="wav2vec"))
  with pytest.raises(ValueError, match="contrastive_layers"):
    models.get_model(model_config_with(config, contrastive_layers=2))  # Tiny has 2 layers.


def test_tiny_w2v_bert_trains_and_its_codebook_follows_the_features():
  """A few steps on one batch lower both losses; the codebook is k-means initialised on the
  first step and moves after; the head's codes are the quantizer's; eval leaves it alone."""
  config = semantic.get_config("w2v_bert_tiny")
  config.data.crop_samples = 6400  # 20 frames.
  model = models.get_model(config.model)
  task = tasks.get_task("hubert")
  tx, schedule = optimizer.make_optimizer(config.optimizer, 100)
  rng = np.random.default_rng(0)
  t = np.arange(6400) / 16000
  audio = np.stack([0.3 * np.sin(2 * np.pi * f * t) * (t % 0.1 < 0.05)
                    + 0.02 * rng.standard_normal(t.shape) for f in (220.0, 330.0, 440.0, 550.0)])
  batch = {"audio": jnp.asarray(audio, jnp.float32), "mask": jnp.ones(audio.shape, jnp.float32),
           "speaker": jnp.zeros((4,), jnp.int32)}
  state = jax.jit(lambda: nn.meta.unbox(trainer.create_train_state(model, task, tx, batch, 0))
                  )()
  assert not state.model_state["codebooks"]["quantizer"]["initialized"]
  step = jax.jit(trainer.make_train_step(model, task, tx, schedule))
  history = []
  for i in range(30):
    state, metrics = step(state, batch, jax.random.key(i))
    history.append(jax.device_get(metrics))
    if i == 0:
      first_codebook = state.model_state["codebooks"]["quantizer"]["level_0_embedding"]
  codebooks = state.model_state["codebooks"]["quantizer"]
  assert codebooks["initialized"]
  assert not np.allclose(codebooks["level_0_embedding"], first_codebook)
  start = np.mean([h["loss"] for h in history[:3]])
  end = np.mean([h["loss"] for h in history[-3:]])
  assert end < 0.8 * start, (start, end)
  assert all(np.isfinite(h["contrastive_loss"]) and np.isfinite(h["mlm_loss"])
             for h in history)
  _, (metrics, new_state) = task.loss_fn(model, state.variables, batch, jax.random.key(0),
                                         False)
  assert new_state == {} and np.isfinite(metrics["loss"])


def test_tiny_w2v_bert_trains_with_the_gumbel_quantizer():
  """quantizer="gumbel": losses fall, the diversity loss is in the loss, and the temperature
  counter (checkpointed in "codebooks") counts the training steps."""
  config = semantic.get_config("w2v_bert_tiny")
  config.data.crop_samples = 6400
  config.model.update(quantizer="gumbel", gumbel_anneal_steps=20)
  model = models.get_model(config.model)
  task = tasks.get_task("hubert")
  state, history = train_on_one_batch(model, task, config, tone_batch(), 30)
  assert int(state.model_state["codebooks"]["quantizer"]["step"]) == 30
  assert all(0 <= h["diversity_loss"] < 1 and h["commitment_loss"] == 0 for h in history)
  start = np.mean([h["loss"] for h in history[:3]])
  end = np.mean([h["loss"] for h in history[-3:]])
  assert end < 0.8 * start, (start, end)


def train_on_one_batch(model, task, config, batch: dict, steps: int):
  """(state, per-step metrics) of `steps` training steps of `model` on one batch."""
  tx, schedule = optimizer.make_optimizer(config.optimizer, 100)
  state = jax.jit(lambda: nn.meta.unbox(trainer.create_train_state(model, task, tx, batch, 0))
                  )()
  step = jax.jit(trainer.make_train_step(model, task, tx, schedule))
  history = []
  for i in range(steps):
    state, metrics = step(state, batch, jax.random.key(i))
    history.append(jax.device_get(metrics))
  return state, history


def tone_batch(num_samples=6400):
  t = np.arange(num_samples) / 16000
  audio = np.stack([0.3 * np.sin(2 * np.pi * f * t) * (t % 0.1 < 0.05)
                    for f in (220.0, 330.0, 440.0, 550.0)])
  return {"audio": jnp.asarray(audio, jnp.float32), "mask": jnp.ones(audio.shape, jnp.float32),
          "speaker": jnp.zeros((4,), jnp.int32)}


def test_mel_quantizer_features_are_fixed_and_normalised():
  """quantizer_features="mel": the quantizer codes the clip's log-mel, mel_subsampling frames
  stacked per frame, each band of mean 0 and variance 1 over the clip; nothing upstream of the
  codebook is learned (no quantizer_input), and the contrast is with projected targets."""
  config = semantic.get_config("w2v_bert_tiny")
  config.model.quantizer_features = "mel"
  model = models.get_model(config.model)
  batch = tone_batch()
  variables = nn.meta.unbox(model.init({"params": jax.random.key(0),
                                        "quantizer": jax.random.key(1)},
                                       batch["audio"], batch["mask"]))
  assert "quantizer_input" not in variables["params"]
  assert "target_projection" in variables["params"]
  frames = 20
  dim = model.mel_subsampling * model.num_mels
  assert variables["codebooks"]["quantizer"]["level_0_embedding"].shape == (8, dim)
  features = model.apply(variables, batch["audio"], None, frames,
                         method=type(model)._quantizer_mel)
  assert features.shape == (4, frames, dim)
  np.testing.assert_allclose(features.mean(1), 0.0, atol=1e-4)
  np.testing.assert_allclose(features.var(1), 1.0, atol=1e-2)
  # Each frame stacks log-mel frames 2t and 2t + 1 (up to the per-band normalisation).
  mel = np.asarray(losses.mel_features(batch["audio"], 16000, model.hop_samples // 2,
                                       model.num_mels, window=model._mel_window))[:, :40]
  stacked = mel.reshape(4, frames, dim)
  np.testing.assert_allclose(np.corrcoef(stacked[0, :, 3], features[0, :, 3])[0, 1], 1.0,
                             atol=1e-4)
  # No gradient flows back through the features.
  grads = jax.grad(lambda a: model.apply(variables, a, None, frames,
                                         method=type(model)._quantizer_mel).sum())(batch["audio"])
  assert not np.any(grads)


def test_loss_weights_masked_and_unmasked_frames():
  """masked_loss_weight alpha: loss = alpha (contrastive + MLM at masked frames) + (1 - alpha)
  (the same at unmasked frames) (+ the commitment loss, not with fixed mel features)."""
  config = semantic.get_config("w2v_bert_tiny")
  batch = tone_batch()
  for features, alpha in (("mel", 0.5), ("mel", 1.0), ("frontend", 0.3)):
    config.model.update(quantizer_features=features, masked_loss_weight=alpha)
    model = models.get_model(config.model)
    task = tasks.get_task("hubert")
    variables = nn.meta.unbox(model.init({"params": jax.random.key(0),
                                          "quantizer": jax.random.key(1)},
                                         batch["audio"], batch["mask"]))
    _, (m, _) = task.loss_fn(model, variables, batch, jax.random.key(2), False)
    commitment = tasks.W2V_BERT_COMMITMENT_WEIGHT * m["commitment_loss"]
    expected = (alpha * (m["contrastive_loss"] + m["mlm_loss"])
                + (1 - alpha) * (m["unmasked_contrastive_loss"] + m["unmasked_mlm_loss"])
                + (0.0 if features == "mel" else commitment))
    np.testing.assert_allclose(m["loss"], expected, rtol=1e-5)
