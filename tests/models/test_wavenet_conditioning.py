"""WaveNet local conditioning: frame-to-sample alignment, causality, incremental decoder; and
global conditioning on speaker vectors from reference audio (voice cloning)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from audiojax import audio
from audiojax.data import pitch
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


FRAME_NETWORK = dict(condition_layers=2, condition_width=4, condition_kernel=3)


@pytest.mark.parametrize("mode", sorted(UPSAMPLE))
def test_frame_network_appends_features_of_each_frames_context(mode):
  """With K convs of kernel 3 over frames, row n keeps the frame features (repeat: exactly)
  and gains `condition_width` features that see frames n // hop - K .. n // hop + K."""
  model = wavenet.Model(**LOCAL, **UPSAMPLE[mode], **FRAME_NETWORK)
  params = random_params(model)
  assert params["condition_upsampler"]["frame_conv_0"]["kernel"].shape == (3, 3, 4)
  assert params["condition_upsampler"]["frame_conv_1"]["kernel"].shape == (3, 4, 4)
  condition, k = random_condition(0, 2, 9), 5
  upsample = jax.jit(lambda c: wavenet.upsample_condition(model, params, c))
  rows = upsample(condition)
  assert rows.shape == (2, 9 * HOP, 3 + 4)
  changed = np.abs(upsample(condition.at[:, k].add(1.0)) - rows).max(axis=(0, 2))
  first = (k - 2) * HOP  # Two frames of lookahead.
  np.testing.assert_array_equal(changed[:first], 0.0)
  assert (changed[first:(k + 1) * HOP] > 1e-4).all()
  if mode == "repeat":
    np.testing.assert_array_equal(rows[..., :3], np.repeat(condition, HOP, axis=1))
    np.testing.assert_array_equal(changed[(k + 3) * HOP:], 0.0)
    assert (changed[(k + 1) * HOP:(k + 3) * HOP] > 1e-4).all()


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


@pytest.mark.parametrize("mode,num_speakers,output,frame_network", [
    ("repeat", 0, "softmax", False), ("transposed", 0, "softmax", False),
    ("transposed", 3, "softmax", False), ("repeat", 3, "mol", False),
    ("repeat", 3, "softmax", True)])
def test_incremental_equals_parallel(mode, num_speakers, output, frame_network):
  model = wavenet.Model(**{**LOCAL, "num_speakers": num_speakers, "output": output,
                           "num_mixtures": 2}, **UPSAMPLE[mode],
                        **(FRAME_NETWORK if frame_network else {}))
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


PERIOD = {**LOCAL, "excitation_channels": 5, "period_input": True, **UPSAMPLE["transposed"]}


def period_condition(seed: int, batch: int, frames: int, max_period: int) -> jnp.ndarray:
  """Random frame features and excitation [batch, frames, 3 + hop x 5] whose period channel
  holds whole periods in 0..max_period samples (0: unvoiced), constant over runs of samples."""
  rng = np.random.default_rng(seed)
  periods = np.repeat(rng.integers(0, max_period + 1, (batch, frames * HOP // 4)), 4, axis=1)
  samples = rng.normal(size=(batch, frames * HOP, 5))
  samples[..., pitch.PERIOD_CHANNEL] = periods / pitch.period_scale(16000)
  return jnp.asarray(np.concatenate([rng.normal(size=(batch, frames, 3)),
                                     samples.reshape(batch, frames, HOP * 5)], -1), jnp.float32)


def test_lagged_inputs_are_one_period_back():
  model = wavenet.Model(**PERIOD)
  inputs = jnp.arange(10, 20, dtype=jnp.int32)[None]  # position t holds 10 + t
  periods = jnp.array([[3, 3, 3, 3, 0, 1, 2, 600, 5, 5]])
  # Position t takes position t + 1 - P: none before position 0, when unvoiced (P = 0) or
  # when P reaches the decoder's history.
  np.testing.assert_array_equal(wavenet.lagged_inputs(model, inputs, periods)[..., 0],
                                [[256, 256, 10, 11, 256, 15, 15, 256, 14, 15]])
  assert pitch.period_scale(16000) < wavenet.history_size(model) == 512
  # Three taps: t - P, t + 1 - P, t + 2 - P, each in its own block of 257 rows; the last
  # tap of P = 1 would be the sample being drawn: none.
  three = wavenet.Model(**{**PERIOD, "period_taps": 3})
  lagged = np.asarray(wavenet.lagged_inputs(three, inputs, periods))[0]
  np.testing.assert_array_equal(lagged[3], [10, 257 + 11, 2 * 257 + 12])
  np.testing.assert_array_equal(lagged[5], [14, 257 + 15, 2 * 257 + 256])
  np.testing.assert_array_equal(lagged[2], [256, 257 + 10, 2 * 257 + 11])


def test_period_input_reaches_beyond_the_receptive_field():
  """With a period longer than the receptive field, the output still depends on the input one
  period back (and, through the earlier positions in its receptive field, on those before it
  up to a receptive field back), not on older ones."""
  model = wavenet.Model(**PERIOD)
  params = random_params(model, seed=2)
  time, period, t = 64, 40, 60
  condition = np.asarray(period_condition(0, 1, time // HOP, 0))
  samples = condition[..., 3:].reshape(1, time, 5)
  samples[..., pitch.PERIOD_CHANNEL] = period / pitch.period_scale(16000)
  condition = jnp.asarray(np.concatenate([condition[..., :3], samples.reshape(1, -1, HOP * 5)],
                                         -1))
  inputs = random_classes(1, (1, time))
  outputs = jax.jit(lambda x: model.apply({"params": params}, x, None, condition))
  base = outputs(inputs)[0, t]
  assert model.receptive_field < period
  lag = t + 1 - period
  assert np.abs(outputs(inputs.at[0, lag].add(7))[0, t] - base).max() > 1e-4
  np.testing.assert_array_equal(
      outputs(inputs.at[0, lag - model.receptive_field].add(7))[0, t], base)


@pytest.mark.parametrize("taps,amplitude", [(1, False), (3, False), (3, True)])
def test_incremental_equals_parallel_with_period_input(taps, amplitude):
  model = wavenet.Model(**PERIOD, period_taps=taps, amplitude_input=amplitude)
  params = random_params(model, seed=3)
  time = 2 * model.receptive_field + 40
  inputs = random_classes(5, (2, time))
  condition = period_condition(6, 2, -(-time // HOP), max_period=50)
  parallel = model.apply({"params": params}, inputs, None, condition)
  incremental = sampler.teacher_forced_logits(model, params, inputs, None, condition)
  np.testing.assert_allclose(incremental, parallel, atol=1e-5, rtol=0)


def test_scan_sampler_equals_naive_sampler_with_period_input():
  model = wavenet.Model(**PERIOD, period_taps=3)
  params = random_params(model, seed=4)
  num = 3 * model.receptive_field
  condition = period_condition(7, 2, -(-num // HOP), max_period=30)
  kwargs = dict(num_samples=num, batch_size=2, rng=jax.random.key(8), condition=condition)
  fast = sampler.sample(model, params, **kwargs)
  np.testing.assert_array_equal(fast, sampler.naive_sample(model, params, **kwargs))
  primed = sampler.sample(model, params, **kwargs, prompt=fast[:, :model.receptive_field + 3])
  np.testing.assert_array_equal(primed, fast)


@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_voiced_temperature_applies_where_the_excitation_is_voiced(output):
  """All steps voiced draw as `temperature=voiced_temperature` does, none voiced as
  `temperature` does (same uniforms); voiced from step 20 on draws as `temperature` up to step
  20 only."""
  model = wavenet.Model(**{**PERIOD, "period_input": output == "softmax"}, output=output,
                        num_mixtures=2)
  params = random_params(model, seed=5)
  num = 3 * model.receptive_field
  condition = np.asarray(period_condition(9, 2, -(-num // HOP), max_period=30))

  def with_voiced(voiced):  # voiced: [samples] -> the excitation's voiced flag set to it
    samples = condition[..., 3:].reshape(2, -1, 5).copy()
    samples[..., 0] = voiced[:samples.shape[1]]
    return jnp.asarray(np.concatenate([condition[..., :3], samples.reshape(2, -1, HOP * 5)],
                                      -1))

  kwargs = dict(num_samples=num, batch_size=2, rng=jax.random.key(8))
  draw = lambda voiced, **kw: np.asarray(
      sampler.sample(model, params, condition=with_voiced(voiced), **kwargs, **kw))
  ones = np.ones(condition.shape[1] * HOP)
  sharp = draw(ones, temperature=0.5)
  assert (sharp != draw(ones, temperature=1.0)).any()
  np.testing.assert_array_equal(draw(ones, voiced_temperature=0.5), sharp)
  np.testing.assert_array_equal(draw(0 * ones, voiced_temperature=0.5),
                                draw(0 * ones, temperature=1.0))
  late_voiced = np.where(np.arange(ones.shape[0]) >= 20, 1.0, 0.0)
  late, plain = draw(late_voiced, voiced_temperature=0.5), draw(late_voiced, temperature=1.0)
  np.testing.assert_array_equal(late[:, :20], plain[:, :20])
  assert (late[:, 20:] != plain[:, 20:]).any()
  with pytest.raises(ValueError, match="both must be > 0"):
    draw(ones, voiced_temperature=0.5, temperature=0.0)
  local = wavenet.Model(**LOCAL)
  with pytest.raises(ValueError, match="excitation"):
    sampler.sample(local, random_params(local), condition=random_condition(0, 2, 4),
                   num_samples=32, batch_size=2, rng=jax.random.key(0), voiced_temperature=0.5)


def test_amplitude_input_is_linear_in_the_class_amplitude():
  """With amplitude_input, an input's embedding is its class's row plus a 1x1 of the class's
  amplitude and companded value; the decoder's folded table equals the two summed."""
  model = wavenet.Model(**PERIOD, period_taps=3, amplitude_input=True)
  params = random_params(model, seed=5)
  assert params["embed_amplitude"]["kernel"].shape == (2, model.residual_channels)
  assert params["period_amplitude"].shape == (3, 2, model.residual_channels)
  features = np.asarray(wavenet.class_features(model, jnp.array([0, 127, 128, 255])))
  np.testing.assert_allclose(features[:, 0], audio.mu_law_decode(jnp.array([0, 127, 128, 255])))
  np.testing.assert_allclose(features[[0, 3], 1], [-1, 1])
  weights = wavenet.decode_weights(model, params)
  np.testing.assert_allclose(
      weights.embedding, params["embed"]["embedding"]
      + wavenet.class_features(model, jnp.arange(256)) @ params["embed_amplitude"]["kernel"],
      atol=1e-6)
  rows = np.asarray(weights.period_embedding).reshape(3, 257, -1)
  table = np.asarray(params["period_embed"]["embedding"]).reshape(3, 257, -1)
  np.testing.assert_allclose(rows[:, 256], table[:, 256])  # A tap's "none" has no amplitude.
  np.testing.assert_allclose(
      rows[1, 200], table[1, 200] + np.asarray(
          wavenet.class_features(model, jnp.array(200))) @ params["period_amplitude"][1],
      atol=1e-6)
  with pytest.raises(ValueError, match="amplitude_input"):
    wavenet.Model(output="mol", amplitude_input=True).init(
        jax.random.key(0), jnp.zeros((1, 8)))


def test_period_input_needs_the_period_channel_and_odd_taps():
  init = lambda model, channels: model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32), None,
                                            jnp.zeros((1, 1, 3 + channels * HOP)))
  with pytest.raises(ValueError, match="period channel"):
    init(wavenet.Model(**{**PERIOD, "excitation_channels": 4}), 4)
  with pytest.raises(ValueError, match="odd"):
    init(wavenet.Model(**PERIOD, period_taps=2), 5)


def test_drop_periods_zeroes_only_the_period_channel_of_dropped_rows():
  model = wavenet.Model(**PERIOD)
  condition = period_condition(9, 3, 4, max_period=50)
  dropped = np.asarray(wavenet.drop_periods(model, condition, jnp.array([True, False, True])))
  condition = np.asarray(condition)
  np.testing.assert_array_equal(dropped[[0, 2]], condition[[0, 2]])
  samples = lambda c: c[..., 3:].reshape(4, HOP, 5)
  np.testing.assert_array_equal(samples(dropped[1])[..., pitch.PERIOD_CHANNEL], 0.0)
  np.testing.assert_array_equal(np.delete(samples(dropped[1]), pitch.PERIOD_CHANNEL, -1),
                                np.delete(samples(condition[1]), pitch.PERIOD_CHANNEL, -1))
  np.testing.assert_array_equal(dropped[1, :, :3], condition[1, :, :3])


LPC = {**PERIOD, "period_taps": 3, "lpc_order": 4}


def lpc_condition(seed: int, batch: int, frames: int, excitation_channels: int) -> jnp.ndarray:
  """`period_condition` (periods up to 50 samples) with its 3 bands in the range of real log-mel
  features (`losses.mel_features`), or only those bands (no excitation). Within ~20 dB of each
  other, so that the predictors are well conditioned: each compiled program rounds the FFT
  and Levinson's recursion its own way, and with an ill-conditioned fit the predictions of
  the two paths would differ enough to flip a class now and then."""
  condition = period_condition(seed, batch, frames, max_period=50)
  bands = np.random.default_rng(seed).uniform(0.7, 0.9, (batch, frames, 3))
  rest = condition[..., 3:] if excitation_channels else condition[..., :0]
  return jnp.concatenate([jnp.asarray(bands, jnp.float32), rest], axis=-1)


def test_levinson_solves_the_normal_equations():
  rng = np.random.default_rng(0)
  signal = scipy.signal.lfilter([1.0], [1.0, -1.3, 0.8], rng.normal(size=4000))
  r = np.array([signal[:len(signal) - k] @ signal[k:] for k in range(7)]) / len(signal)
  expected = scipy.linalg.solve_toeplitz(r[:6], r[1:7])
  np.testing.assert_allclose(wavenet.levinson(jnp.asarray(r[None]), 6)[0], expected,
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pre_emphasis", [0.0, 0.85])
def test_lpc_from_log_mel_predicts_a_voiced_sound(pre_emphasis):
  """The predictor fitted to the log-mel envelope alone (no audio) predicts a vowel-like sound
  (a 120 Hz pulse train through two formant resonances) far better than silence does."""
  rate, hop = 16000, 128
  pulses = np.zeros(rate // 2)
  pulses[::rate // 120] = 1.0
  vowel = pulses
  for hz, bandwidth in ((700, 130), (1200, 70)):
    radius = np.exp(-np.pi * bandwidth / rate)
    vowel = scipy.signal.lfilter([1.0], [1.0, -2 * radius * np.cos(2 * np.pi * hz / rate),
                                         radius**2], vowel)
  vowel = (0.5 * vowel / np.abs(vowel).max()).astype(np.float32)
  model = wavenet.Model(**{**TINY, "condition_channels": 40, "condition_hop": hop,
                           "lpc_order": 16, "pre_emphasis": pre_emphasis})
  features = losses.mel_features(jnp.asarray(vowel)[None], rate, hop, 40)
  # With pre_emphasis, the model's samples (what it predicts) are the vowel pre-emphasised; the
  # features stay those of the audio.
  vowel = np.asarray(audio.pre_emphasize(jnp.asarray(vowel), pre_emphasis))
  rows = jnp.repeat(wavenet.lpc_coefficients(model, features), hop, axis=1)[:, :vowel.shape[0]]
  # Position t draws sample t + 1 from inputs up to t (the audio as classes).
  inputs = audio.mu_law_encode(jnp.asarray(vowel)[None, :-1])
  prediction = np.asarray(wavenet.linear_prediction(model, inputs, rows[:, 1:]))[0]
  target = vowel[1:]
  gain_db = 10 * np.log10(np.sum(target**2) / np.sum((target - prediction) ** 2))
  assert gain_db > 10, gain_db


@pytest.mark.parametrize("extra", [dict(period_input=False, excitation_channels=0), {},
                                   dict(lpc_period=True),
                                   dict(lpc_period=True, excitation_input=True)])
def test_incremental_equals_parallel_with_lpc(extra):
  model = wavenet.Model(**{**LPC, **extra})
  params = random_params(model, seed=3)
  time = 2 * model.receptive_field + 40
  inputs = random_classes(5, (2, time))
  condition = lpc_condition(6, 2, -(-time // HOP), model.excitation_channels)
  parallel = model.apply({"params": params}, inputs, None, condition)
  incremental = sampler.teacher_forced_logits(model, params, inputs, None, condition)
  np.testing.assert_allclose(incremental, parallel, atol=1e-4, rtol=0)  # (lpc_condition)
  # Position t's prediction reads inputs t .. t - 3 (lpc_order 4): with a receptive field of
  # 2 positions, the output at t reaches input t - 4 and no further; with excitation_input
  # position t - 1 also reads the prediction made at t - 2, so it reaches t - 5.
  reach = 5 if extra.get("excitation_input") else 4
  short = wavenet.Model(**{**LPC, **extra, "dilation_cycles": 1, "max_dilation": 1})
  assert short.receptive_field == 2
  params = random_params(short, seed=4)
  outputs = jax.jit(lambda x: short.apply({"params": params}, x, None, condition))
  t = 30
  base = outputs(inputs)[0, t]
  change = lambda k, d: np.abs(outputs(inputs.at[0, t - k].add(d))[0, t] - base).max()
  assert max(change(reach, 40), change(reach, -40)) > 1e-4  # (one may clip the excitation)
  assert change(reach + 1, 40) == change(reach + 1, -40) == 0


@pytest.mark.parametrize("extra", [{}, dict(lpc_period=True),
                                   dict(lpc_period=True, lpc_excitation=True),
                                   dict(lpc_period=True, lpc_excitation=True,
                                        excitation_input=True)])
def test_scan_sampler_equals_naive_sampler_with_lpc(extra):
  model = wavenet.Model(**LPC, **extra)
  params = random_params(model, seed=4)
  num = 3 * model.receptive_field
  condition = lpc_condition(7, 2, -(-num // HOP), model.excitation_channels)
  kwargs = dict(num_samples=num, batch_size=2, rng=jax.random.key(8), condition=condition)
  drawn = sampler.sample(model, params, **kwargs)
  np.testing.assert_array_equal(drawn, sampler.naive_sample(model, params, **kwargs))
  if model.lpc_excitation:  # Each sample: its prediction plus the excitation drawn from the
    # outputs (the same uniforms), not a class drawn from them.
    inputs = jnp.concatenate([jnp.full((2, 1), sampler.silence_class(model)), drawn[:, :-1]], 1)
    logits = sampler.teacher_forced_logits(model, params, inputs, None, condition)
    uniforms = sampler.step_uniforms(jax.random.key(8), num, 2).T  # [batch, time]
    excitation = sampler.next_classes(uniforms.reshape(-1), logits.reshape(2 * num, -1),
                                      1.0).reshape(2, num)
    prediction = wavenet.linear_predictions(model, inputs, condition)
    np.testing.assert_array_equal(drawn, wavenet.sample_classes(model, excitation, prediction))
    assert np.mean(np.asarray(drawn) != np.asarray(excitation)) > 0.5


def test_excitation_limit_holds_the_drawn_excitation_near_its_level():
  """excitation_limit: where a model draws its excitation far above its frames' level
  (random weights), the gain control keeps the draws' RMS near K times the level; a limit
  never reached changes nothing; a model of the sample refuses it."""
  model = wavenet.Model(**LPC, lpc_period=True, lpc_excitation=True)
  params = random_params(model, seed=4)
  num = 3 * model.receptive_field
  condition = lpc_condition(7, 2, -(-num // HOP), model.excitation_channels)
  kwargs = dict(num_samples=num, batch_size=2, rng=jax.random.key(8), condition=condition)
  levels = np.repeat(np.asarray(wavenet.excitation_levels(model, condition)), HOP, 1)[:, :num]

  def excitation_rms(drawn):  # of the excitation drawn, s - p, in units of its frame's level
    inputs = jnp.concatenate([jnp.full((2, 1), sampler.silence_class(model)), drawn[:, :-1]], 1)
    excitation = (audio.mu_law_decode(drawn)
                  - wavenet.linear_predictions(model, inputs, condition))
    return float(np.sqrt(np.mean((np.asarray(excitation) / levels) ** 2)))

  free = sampler.sample(model, params, **kwargs)
  limited = sampler.sample(model, params, excitation_limit=1.0, **kwargs)
  print(f"excitation RMS / level: free {excitation_rms(free):.1f}, "
        f"limit 1: {excitation_rms(limited):.1f}")
  # (Measured: 4.0 and 1.6; the mu-law rounding of each sample adds to the limited one.)
  assert excitation_rms(free) > 3 and excitation_rms(limited) < 0.5 * excitation_rms(free)
  np.testing.assert_array_equal(
      sampler.sample(model, params, excitation_limit=1e9, **kwargs), free)
  plain = wavenet.Model(**LPC)
  with pytest.raises(ValueError, match="excitation_limit"):
    sampler.sample(plain, random_params(plain), excitation_limit=2.0, **kwargs)


def test_excitation_classes_invert_to_the_sample():
  """A sample that is its prediction plus an excitation on the mu-law grid: the excitation's
  class is recovered, and from it and the prediction the sample's own class."""
  model = wavenet.Model(**LPC, lpc_excitation=True)
  classes = jnp.arange(20, 236, 3)
  excitation = audio.mu_law_decode(classes)
  predictions = 0.1 * jnp.sin(jnp.arange(classes.shape[0], dtype=jnp.float32))
  samples = predictions + excitation
  found = wavenet.excitation_classes(model, samples, predictions)
  assert np.abs(np.asarray(found) - np.asarray(classes)).max() <= 1  # (float rounding)
  assert np.mean(np.asarray(found) == np.asarray(classes)) > 0.9
  np.testing.assert_array_equal(wavenet.sample_classes(model, classes, predictions),
                                audio.mu_law_encode(samples))


def test_lpc_needs_log_mel_conditioning():
  with pytest.raises(ValueError, match="lpc_order"):
    wavenet.Model(**{**TINY, "lpc_order": 4}).init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
  with pytest.raises(ValueError, match="excitation_input needs lpc_order"):
    wavenet.Model(**{**LOCAL, "excitation_input": True}).init(
        jax.random.key(0), jnp.zeros((1, 8), jnp.int32), None, jnp.zeros((1, 1, 3)))
  with pytest.raises(ValueError, match="lpc_period"):
    wavenet.Model(**{**LOCAL, "lpc_period": True}).init(
        jax.random.key(0), jnp.zeros((1, 8), jnp.int32), None, jnp.zeros((1, 1, 3)))
