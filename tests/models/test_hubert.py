import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.models import hubert

TINY = dict(conv_channels=8, num_layers=2, embed_dim=16, num_heads=2, mlp_dim=32,
            num_targets=10, final_dim=8, dropout_rate=0.0)


def noise(seed: int, shape: tuple[int, ...]) -> jnp.ndarray:
  return jnp.asarray(0.1 * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("frontend", hubert.FRONTENDS)
def test_frames_line_up_with_hops(frontend):
  """ceil(samples / 320) frames at 50 Hz (the token_metrics convention), logits per target,
  one hidden state per layer; `features` is the hidden state of that layer."""
  # Two front-end convs (stride 5 then 64: 320 samples) keep the eager init's compiles few.
  model = hubert.Model(frontend=frontend, num_mels=16, conv_kernels=(10, 64),
                       conv_strides=(5, 64), **TINY)
  audio = noise(0, (2, 3300))
  variables = model.init(jax.random.key(0), audio)
  out = model.apply(variables, audio)
  assert out["logits"].shape == (2, 11, 10) and len(out["hidden"]) == 3
  assert np.abs(out["logits"]).max() <= 1 / model.logit_temperature + 1e-4  # cosine / 0.1
  features = model.apply(variables, audio, 1, method="features")
  np.testing.assert_allclose(features, out["hidden"][1], atol=1e-6)
  with pytest.raises(ValueError, match="layer 3"):
    model.apply(variables, audio, 3, method="features")


def test_paper_front_end_sees_400_samples():
  model = hubert.Model(**TINY)
  assert model.receptive_field == 400 and model.frame_rate_hz == 50.0
  with pytest.raises(ValueError, match="multiply"):
    hubert.Model(conv_strides=(5, 2), conv_kernels=(10, 3))


def test_padding_is_hidden_from_the_real_frames():
  """With the audio mask, what lies in the padding (beyond the real frames' receptive field)
  does not change the real frames; without it, attention sees it."""
  model = hubert.Model(frontend="mel", num_mels=16, **TINY)
  real, total = 3200, 9600  # 10 real frames of 30.
  audio = noise(1, (1, total)).at[:, real:].set(0.0)
  mask = (jnp.arange(total) < real).astype(jnp.float32)[None]
  variables = model.init(jax.random.key(0), audio)
  changed = audio.at[:, real + model.receptive_field:].set(noise(2, (1, total - real -
                                                                    model.receptive_field)))
  features = lambda a, m: model.apply(variables, a, 2, m, method="features")[0, :10]
  np.testing.assert_allclose(features(audio, mask), features(changed, mask), atol=1e-5)
  assert np.abs(features(audio, None) - features(changed, None)).max() > 1e-3


def test_masked_frames_get_the_mask_embedding():
  model = hubert.Model(frontend="mel", num_mels=16, **TINY)
  audio = noise(3, (2, 3200))
  variables = model.init(jax.random.key(0), audio)
  masked = jnp.zeros((2, 10), bool).at[0, 2:5].set(True)
  a = model.apply(variables, audio)["hidden"][0]
  b = model.apply(variables, audio, None, masked)["hidden"][0]
  np.testing.assert_allclose(b[0, 2:5], np.broadcast_to(
      variables["params"]["mask_embedding"].unbox(), (3, 16)), atol=1e-6)
  np.testing.assert_allclose(np.delete(np.asarray(b), np.s_[2:5], axis=1)[0],
                             np.delete(np.asarray(a), np.s_[2:5], axis=1)[0], atol=1e-6)


def test_span_mask_fraction_and_spans():
  """Starts with probability p, spans of `length` frames: 1 - (1 - p)^length masked."""
  mask = np.asarray(hubert.span_mask(jax.random.key(0), (64, 500), 0.08, 10))
  assert mask.shape == (64, 500) and mask.dtype == bool
  assert abs(mask[:, 9:].mean() - (1 - 0.92 ** 10)) < 0.02
  runs = np.diff(np.concatenate([np.zeros((64, 1)), mask, np.zeros((64, 1))], 1).astype(int), 1)
  lengths = np.nonzero(runs == -1)[1] - np.nonzero(runs == 1)[1]  # Row-major: runs pair up.
  interior = np.nonzero(runs == -1)[1] < 500  # Runs not cut off by the clip's end.
  assert lengths[interior].min() >= 10


def test_warp_mel_moves_spectral_peaks_by_the_factor():
  """A 1 kHz tone warped by 1.25 peaks where an 800 Hz tone does (within a band); factor 1
  is the identity; each clip gets its own factor."""
  from audiojax.train import losses
  rate, t = 16000, np.arange(8000) / 16000
  mel = lambda f: losses.mel_features(jnp.asarray(np.sin(2 * np.pi * f * t)[None], jnp.float32),
                                      rate, 160, 80, window=400)
  tones = jnp.concatenate([mel(1000.0), mel(1000.0)])
  warped = hubert.warp_mel(tones, jnp.array([1.0, 1.25]), rate)
  np.testing.assert_allclose(warped[0], tones[0], atol=1e-6)
  peak = lambda x: int(np.argmax(np.asarray(x)[20]))
  assert abs(peak(warped[1]) - peak(mel(800.0)[0])) <= 1 < peak(tones[0]) - peak(mel(800.0)[0])


def test_mel_warp_changes_training_only():
  model = hubert.Model(frontend="mel", num_mels=16, mel_warp=0.2, **TINY)
  plain = hubert.Model(frontend="mel", num_mels=16, **TINY)
  audio = noise(1, (2, 1600))
  variables = plain.init(jax.random.key(0), audio)
  rngs = {"dropout": jax.random.key(1)}
  logits = lambda m, train: m.apply(variables, audio, None, None, train, rngs=rngs)["logits"]
  np.testing.assert_array_equal(logits(model, False), logits(plain, False))
  np.testing.assert_array_equal(logits(plain, True), logits(plain, True))
  assert np.abs(logits(model, True) - logits(plain, True)).max() > 1e-4
  with pytest.raises(ValueError, match="mel_warp"):
    hubert.Model(frontend="waveform", mel_warp=0.1)
