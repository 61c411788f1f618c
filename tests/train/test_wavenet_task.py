"""The WaveNet task on the shared trainer with a mixture-of-logistics output and as a mel
vocoder: one step trains every part, generation runs, and a small model overfits one batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.train import losses, sharding, trainer
from configs import wavenet as wavenet_config
from tests.train.test_soundstream_task import harmonic_batch

SMALL = dict(residual_channels=16, gate_channels=32, skip_channels=32, head_channels=32,
             dilation_cycles=1, max_dilation=8)


def small_config(variant: str):
  """`variant` at unit-test size: tiny model, 2 x 512 samples, 100 steps at lr 3e-3."""
  config = wavenet_config.get_config(variant)
  config.mesh.update(data=-1)
  config.model.update(SMALL)
  config.data.update(crop_samples=512, batch_size=2)
  config.optimizer.update(learning_rate=3e-3, warmup_steps=2)
  config.train.update(num_steps=100)
  return config


@pytest.fixture(scope="module", params=["mol", "vocoder_tiny"])
def setup(request):
  """(config, model, task, initial state, jitted train step, mesh), compiled once."""
  config = small_config(request.param)
  model, task, tx, schedule, mesh, rules = trainer.build(config)
  state, _ = trainer.init_state(config, model, task, tx, mesh, rules)
  step = jax.jit(trainer.make_train_step(model, task, tx, schedule))
  return config, model, task, state, step, mesh


def test_one_step_trains_every_part_and_generates(setup):
  config, model, task, state, step, mesh = setup
  new = state
  for i in range(2):  # The learning rate warms up from 0 at step 0.
    new, metrics = step(new, sharding.shard_batch(harmonic_batch(i, 2, 512), mesh),
                        jax.random.key(i))
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         state.params, new.params)
  assert all(jax.tree.leaves(changed)), changed
  for key in ("loss", "bits_per_sample", "mu_law_bits_per_sample"):
    assert np.isfinite(float(metrics[key])), key
  if model.output == "softmax":
    np.testing.assert_allclose(metrics["mu_law_bits_per_sample"], metrics["bits_per_sample"])
  else:  # A mu-law class holds 6 to ~1400 16-bit levels: its mass is far larger.
    assert float(metrics["bits_per_sample"]) > float(metrics["mu_law_bits_per_sample"]) + 3

  condition = None
  if model.condition_channels:
    condition = losses.mel_features(jnp.asarray(harmonic_batch(9, 2, 48)["audio"]),
                                    model.sample_rate_hz, model.condition_hop,
                                    model.condition_channels)
  audio = task.generate(model, new.variables, jax.random.key(0), 2, 40, jnp.array([0, 1]),
                        1.0, None, condition=condition)
  assert audio.shape == (2, 40) and np.isfinite(np.asarray(audio)).all()
  assert np.abs(np.asarray(audio)).max() <= 1.0


def test_overfits_one_batch(setup):
  """100 steps on one harmonic batch: the NLL (mean of the last 10 steps) falls clearly."""
  _, model, task, state, step, mesh = setup
  batch = sharding.shard_batch(harmonic_batch(0, 2, 512), mesh)
  bits = []
  for i in range(100):
    state, metrics = step(state, batch, jax.random.key(i))
    bits.append(float(metrics["bits_per_sample"]))
  first, last = bits[0], np.mean(bits[-10:])
  print(f"{model.output}: {first:.2f} -> {last:.2f} bits/sample")
  # Measured: mol 17.1 -> ~12 (16-bit levels, noisy), vocoder (softmax) 8.0 -> ~3.7.
  assert last < first - (4.0 if model.output == "mol" else 2.5), (first, bits[-10:])


def test_input_noise_perturbs_training_inputs_only():
  """input_noise: the training loss sees noisy inputs (a different loss per key), evaluation
  the clean ones (the loss of the same model without noise)."""
  from audiojax.models import wavenet
  from audiojax.train import tasks
  from tests.models.test_wavenet import TINY, random_params
  clean, noisy = wavenet.Model(**TINY), wavenet.Model(**TINY, input_noise=2.0)
  variables = {"params": random_params(clean)}
  batch = harmonic_batch(0, 2, 256)
  loss = lambda model, key, train: float(tasks.wavenet_loss(
      model, variables, batch, jax.random.key(key), train)[0])
  assert loss(noisy, 0, False) == loss(clean, 0, True) == loss(clean, 1, True)
  assert len({loss(noisy, 0, True), loss(noisy, 1, True), loss(clean, 0, True)}) == 3
  with pytest.raises(ValueError, match="softmax"):
    tasks.wavenet_loss(wavenet.Model(**TINY, output="mol", input_noise=1.0), variables, batch,
                       jax.random.key(0))


def test_excitation_model_without_the_pipelines_excitation_is_a_clear_error():
  from audiojax.models import wavenet
  from audiojax.train import tasks
  from tests.models.test_wavenet import TINY, random_params
  model = wavenet.Model(**TINY, condition_channels=8, condition_hop=16, excitation_channels=4)
  with pytest.raises(ValueError, match="data.condition='excitation'"):
    tasks.wavenet_loss(model, {"params": random_params(model)}, harmonic_batch(0, 2, 256),
                       jax.random.key(0))


def test_lpc_excitation_trains_on_the_sample_minus_its_prediction():
  """lpc_excitation: the loss is the cross entropy against the mu-law classes of s - p, p the
  predictor of each frame's log-mel envelope applied to the 4 inputs before (computed here
  directly), not against the sample's classes."""
  from audiojax import audio as audio_lib
  from audiojax.models import wavenet
  from audiojax.train import tasks
  from tests.models.test_wavenet import TINY, random_params
  hop, order = 16, 4
  plain = wavenet.Model(**TINY, condition_channels=8, condition_hop=hop, lpc_order=order)
  model = plain.clone(lpc_excitation=True)
  variables = {"params": random_params(model)}
  batch = harmonic_batch(0, 2, 256)
  condition = tasks._condition(model, batch)
  inputs = audio_lib.mu_law_encode(batch["audio"][:, :-1])
  outputs = model.apply(variables, inputs, batch["speaker"], condition, 1)
  # Position t draws sample t + 1 with frame (t + 1) // hop's predictor from inputs t .. t - 3.
  a = np.repeat(np.asarray(wavenet.lpc_coefficients(model, condition)), hop, axis=1)[:, 1:256]
  x = np.pad(np.asarray(audio_lib.mu_law_decode(inputs)), ((0, 0), (order - 1, 0)))
  p = sum(a[..., k] * x[:, order - 1 - k:order - 1 - k + 255] for k in range(order))
  targets = audio_lib.mu_law_encode(np.clip(batch["audio"][:, 1:] - p, -1, 1))
  expected = optax_ce(outputs, targets)
  loss = float(tasks.wavenet_loss(model, variables, batch, jax.random.key(0), False)[0])
  np.testing.assert_allclose(loss, expected, rtol=1e-4)
  sample_targets = audio_lib.mu_law_encode(batch["audio"][:, 1:])
  assert abs(loss - optax_ce(outputs, sample_targets)) > 0.01
  np.testing.assert_allclose(  # The same network, trained on the samples' classes.
      float(tasks.wavenet_loss(plain, variables, batch, jax.random.key(0), False)[0]),
      optax_ce(outputs, sample_targets), rtol=1e-4)
  with pytest.raises(ValueError, match="lpc_excitation needs lpc_order"):
    wavenet.Model(**TINY, lpc_excitation=True).init(jax.random.key(0),
                                                    jnp.zeros((1, 8), jnp.int32))


def optax_ce(logits, targets) -> float:
  import optax
  return float(np.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets)))


def test_pre_emphasis_trains_on_and_draws_the_pre_emphasised_audio():
  """pre_emphasis: the loss is the plain model's on the audio x[n] - 0.85 x[n - 1], and what
  the sampler draws comes back de-emphasised (the inverse filter, tested on its own)."""
  from audiojax import audio as audio_lib
  from audiojax.models import wavenet
  from audiojax.train import tasks
  from tests.models.test_wavenet import TINY, random_params
  x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 300)).astype(np.float32)
  emphasised = audio_lib.pre_emphasize(jnp.asarray(x), 0.85)
  np.testing.assert_allclose(emphasised[:, 1:], x[:, 1:] - 0.85 * x[:, :-1], atol=1e-7)
  np.testing.assert_allclose(audio_lib.de_emphasize(emphasised, 0.85), x, atol=1e-6)
  plain = wavenet.Model(**TINY)
  model = plain.clone(pre_emphasis=0.85)
  variables = {"params": random_params(model)}
  batch = harmonic_batch(0, 2, 256)
  loss = lambda m, b: float(tasks.wavenet_loss(m, variables, b, jax.random.key(0), False)[0])
  np.testing.assert_allclose(
      loss(model, batch),
      loss(plain, {**batch, "audio": audio_lib.pre_emphasize(batch["audio"], 0.85)}), rtol=1e-6)
  assert abs(loss(model, batch) - loss(plain, batch)) > 1e-3
  speaker = jnp.zeros((2,), jnp.int32)
  drawn = tasks.wavenet_generate(plain, variables, jax.random.key(1), 2, 400, speaker)
  np.testing.assert_allclose(
      tasks.wavenet_generate(model, variables, jax.random.key(1), 2, 400, speaker),
      audio_lib.de_emphasize(np.asarray(drawn), 0.85), atol=1e-6)


def test_speaker_classes_name_the_reference_speaker_and_spread_the_vectors():
  """A voice-cloning model with `speaker_classes`: its loss is the samples' NLL + weight x the
  cross entropy of naming the reference's speaker from its vector, and training on two
  voices' references pulls their vectors apart (a jointly trained encoder alone gave every
  corpus voice nearly the same vector: README, the conditioning ablation)."""
  import flax.linen as nn
  import optax

  from audiojax.models import wavenet
  from audiojax.train import tasks

  model = wavenet.Model(**SMALL, num_classes=256, speaker_embedding_dim=4, reference_mels=8,
                        speaker_classes=2, speaker_loss_weight=0.5)
  batch = harmonic_batch(0, 2, 512)
  t = np.arange(8000) / 16000  # 0.5 s references: a low and a high voice.
  batch["reference"] = np.stack([np.sin(2 * np.pi * f * t) for f in (150, 2500)])
  batch["speaker"] = np.array([0, 1], np.int32)
  batch = jax.tree.map(jnp.asarray, batch)
  variables = nn.meta.unbox(tasks.wavenet_init(model, jax.random.key(0), batch))
  assert variables["params"]["speaker_classifier"]["kernel"].shape == (4, 2)
  loss_fn = lambda params: tasks.wavenet_loss(model, {"params": params}, batch,
                                              jax.random.key(1))
  loss, (metrics, _) = loss_fn(variables["params"])
  np.testing.assert_allclose(loss, metrics["bits_per_sample"] * np.log(2)
                             + 0.5 * metrics["speaker_loss"], rtol=1e-5)
  cosine = lambda params: float(jnp.prod(tasks.speaker_vectors(
      model, {"params": params}, batch["reference"]), axis=0).sum())
  params, tx = variables["params"], optax.adam(1e-2)
  opt_state, before = tx.init(params), cosine(params)
  grad_fn = jax.jit(jax.grad(lambda p: loss_fn(p)[0]))
  for _ in range(30):
    updates, opt_state = tx.update(grad_fn(params), opt_state)
    params = optax.apply_updates(params, updates)
  assert float(loss_fn(params)[1][0]["speaker_accuracy"]) == 1.0
  assert cosine(params) < min(before, 0.5), (before, cosine(params))
  plain = wavenet.Model(**SMALL, num_classes=256, speaker_embedding_dim=4, reference_mels=8)
  plain_variables = nn.meta.unbox(tasks.wavenet_init(plain, jax.random.key(0), batch))
  assert "speaker_classifier" not in plain_variables["params"]
  assert "speaker_loss" not in tasks.wavenet_loss(plain, plain_variables, batch,
                                                  jax.random.key(1))[1][0]
  with pytest.raises(ValueError, match="speaker_embedding_dim > 0 too"):
    tasks.wavenet_init(wavenet.Model(**SMALL, num_classes=256, num_speakers=2,
                                     speaker_classes=2), jax.random.key(0), batch)
