"""Pitch marks and the pitch-synchronous excitation (audiojax.data.pitch)."""

import numpy as np
import pytest

from audiojax.data import pitch

RATE = 16000


def voiced_tone(f0_hz: float, seconds: float) -> np.ndarray:
  """A glottal-pulse-like periodic signal: decaying resonances restarted every period."""
  n = np.arange(int(seconds * RATE))
  phase = (n * f0_hz / RATE) % 1.0
  return (0.5 * np.exp(-8 * phase) * np.sin(2 * np.pi * 700 * phase / f0_hz)).astype(np.float32)


@pytest.mark.parametrize("f0_hz", [100.0, 220.0])
def test_pulses_are_one_per_period(f0_hz):
  points = pitch.pulses(voiced_tone(f0_hz, 0.5), RATE)
  periods = np.diff(points)
  assert len(points) > 0.4 * f0_hz  # Nearly every period of the half second is marked.
  np.testing.assert_allclose(np.median(periods), RATE / f0_hz, rtol=0.02)
  assert np.all(np.abs(periods - RATE / f0_hz) <= 2)


def test_no_pulses_in_silence_noise_or_too_short_audio():
  assert pitch.pulses(np.zeros(RATE, np.float32), RATE).shape == (0,)
  noise = np.random.default_rng(0).normal(0, 0.1, RATE).astype(np.float32)
  assert len(pitch.pulses(noise, RATE)) < 10
  assert pitch.pulses(voiced_tone(150, 0.02), RATE).shape == (0,)
  with pytest.raises(ValueError, match="one channel"):
    pitch.pulses(np.zeros((2, RATE)), RATE)


def test_excitation_phase_runs_from_point_to_point():
  points = np.array([10, 110, 210, 1000])  # The last gap (790 samples) is longer than 60 Hz.
  features = pitch.excitation(points, 1200, RATE)
  assert features.shape == (1200, pitch.EXCITATION_CHANNELS)
  voiced = features[:, 0] > 0
  np.testing.assert_array_equal(np.flatnonzero(voiced), np.arange(10, 210))
  np.testing.assert_array_equal(np.flatnonzero(features[:, 1]), [10, 110])  # The pulses.
  np.testing.assert_allclose(features[[10, 110], 2:4], [[0, 1], [0, 1]], atol=1e-6)  # Phase 0.
  np.testing.assert_allclose(features[60, 2:4], [0, -1], atol=1e-6)  # Half way: phase pi.
  np.testing.assert_array_equal(features[~voiced], 0.0)
  # The period, 100 samples, in units of one FLOOR_HZ cycle, and back.
  period = features[voiced, pitch.PERIOD_CHANNEL]
  np.testing.assert_allclose(period, 100 / pitch.period_scale(RATE), rtol=1e-6)
  np.testing.assert_array_equal(pitch.periods(features[:, pitch.PERIOD_CHANNEL], RATE),
                                np.where(voiced, 100, 0))
  # A model trained on the first four channels gets those four.
  np.testing.assert_array_equal(pitch.excitation(points, 1200, RATE, channels=4),
                                features[:, :4])
  with pytest.raises(ValueError, match="channels"):
    pitch.excitation(points, 1200, RATE, channels=6)


def test_frames_pack_the_samples_in_order():
  audio = voiced_tone(150, 0.3)
  hop = 64
  frames = pitch.excitation_frames(audio, RATE, hop)
  assert frames.shape == (-(-audio.shape[0] // hop), hop * pitch.EXCITATION_CHANNELS)
  per_sample = pitch.excitation(pitch.pulses(audio, RATE), frames.shape[0] * hop, RATE)
  np.testing.assert_array_equal(frames.reshape(-1, pitch.EXCITATION_CHANNELS), per_sample)
  assert per_sample[:, 0].mean() > 0.7
  four = pitch.excitation_frames(audio, RATE, hop, channels=4)
  np.testing.assert_array_equal(four.reshape(-1, 4), per_sample[:, :4])


def test_pulse_cache_returns_what_pulses_finds_and_remembers_it():
  cache = pitch.PulseCache(RATE, max_entries=2)
  tones = [voiced_tone(f0, 0.2) for f0 in (110, 150, 200)]
  np.testing.assert_array_equal(cache(tones[0]), pitch.pulses(tones[0], RATE))
  assert cache(tones[0]) is cache(tones[0])
  cache(tones[1]), cache(tones[2])  # Evicts the oldest.
  assert len(cache._points) == 2
  np.testing.assert_array_equal(cache(tones[0]), pitch.pulses(tones[0], RATE))


def test_scale_pulses_moves_the_pitch_and_keeps_the_voiced_stretches():
  run_a = np.arange(1000, 3000, 160)  # 100 Hz
  run_b = np.arange(6000, 7000, 100)  # 160 Hz, after an unvoiced gap
  points = np.concatenate([run_a, run_b])
  assert pitch.median_f0(points, RATE) == 100.0
  np.testing.assert_array_equal(pitch.scale_pulses(points, 1.0, RATE), points)
  higher = pitch.scale_pulses(points, 1.25, RATE)
  a, b = higher[higher < 4000], higher[higher >= 4000]
  assert a[0] == 1000 and b[0] == 6000  # Each stretch starts where it did, ends before its end.
  assert a[-1] <= run_a[-1] and b[-1] <= run_b[-1]
  np.testing.assert_array_equal(np.diff(a), 128)  # 160 / 1.25
  np.testing.assert_array_equal(np.diff(b), 80)
  # Lower: periods are capped at one FLOOR_HZ cycle, so the stretches stay voiced.
  lower = pitch.scale_pulses(points, 0.5, RATE)
  assert np.diff(lower[lower < 4000]).max() <= RATE / pitch.FLOOR_HZ
  assert np.isnan(pitch.median_f0(np.array([5]), RATE))
  with pytest.raises(ValueError, match="positive"):
    pitch.scale_pulses(points, 0.0, RATE)


def test_an_excitation_condition_without_channels_is_a_clear_error():
  import ml_collections

  from audiojax.data import pipeline

  config = ml_collections.ConfigDict(dict(condition="excitation", excitation_channels=0,
                                          sample_rate_hz=RATE, condition_hop=16))
  with pytest.raises(ValueError, match="excitation_channels=0"):
    pipeline.condition_fn(config)
