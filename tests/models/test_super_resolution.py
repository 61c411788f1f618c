"""Super-resolution's conditioning: the low band of the audio, framed in step with the hop."""

import jax.numpy as jnp
import numpy as np

from audiojax import audio as audio_lib
from audiojax.eval import codec_metrics
from audiojax.models import wavenet
from audiojax.train import tasks


def sine(hz: float, samples: int, rate: int = 16000) -> np.ndarray:
  return np.sin(2 * np.pi * hz * np.arange(samples) / rate).astype(np.float32)


def test_lowband_keeps_the_low_band_and_removes_the_high_one():
  low = np.asarray(audio_lib.lowband(jnp.asarray(sine(1000, 1600))[None], 2))[0]
  assert low.shape == (800,)
  # Away from the ends, a 1 kHz tone at 8 kHz (zero-phase filter: no delay).
  np.testing.assert_allclose(low[50:-50], sine(1000, 800, 8000)[50:-50], atol=0.02)
  high = np.asarray(audio_lib.lowband(jnp.asarray(sine(6000, 1600))[None], 2))[0]
  assert np.abs(high[50:-50]).max() < 0.01  # Above 4 kHz: gone (it would alias to 2 kHz).


def test_lowband_features_frame_the_low_rate_samples():
  model = wavenet.Model(condition_channels=8, condition_hop=16, condition_source="lowband",
                        lowband_factor=2)
  audio = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 100)), jnp.float32)
  features = tasks.condition_features(model, audio)
  assert features.shape == (2, 7, 8)  # ceil(100 / 16) frames of 16 / 2 low-rate samples
  low = audio_lib.lowband(audio, 2)  # [2, 50]
  np.testing.assert_allclose(features.reshape(2, -1)[:, :50], low, atol=1e-6)
  np.testing.assert_array_equal(features.reshape(2, -1)[:, 50:], 0.0)


def test_log_spectral_distance():
  clean = sine(440, 16000) * 0.5
  assert codec_metrics.log_spectral_distance(clean, clean, 16000) == 0.0
  noisy = clean + 0.01 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
  far = codec_metrics.log_spectral_distance(clean, noisy, 16000)
  near = codec_metrics.log_spectral_distance(clean, clean + 0.1 * noisy, 16000)
  assert far > near > 0
