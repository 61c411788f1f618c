"""The voicing check separates voiced speech from noise (used on generated samples)."""

import numpy as np
import pytest

from audiojax.data import espeak
from audiojax.eval import voicing

RATE_HZ = 16000


def test_harmonic_tone_is_voiced_at_its_pitch():
  result = voicing.voicing(harmonic_tone(), RATE_HZ)
  assert result.voiced_fraction > 0.9
  assert result.flatness < 0.01
  assert result.median_f0_hz == pytest.approx(150, rel=0.03)
  assert result.hnr_db > 30


def harmonic_tone(seconds: float = 1.0, f0_hz: float = 150.0) -> np.ndarray:
  t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
  return 0.1 * sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 12))


def test_pitch_range_of_a_melody_and_of_a_wavering_tone():
  """C3 E3 G3 C4, 0.4 s each: about an octave; one tone wavering by +-0.5 semitone: about one."""
  melody = np.concatenate([harmonic_tone(0.4, 440 * 2 ** ((midi - 69) / 12))
                           for midi in (48, 52, 55, 60)])
  assert voicing.voicing(melody, RATE_HZ).pitch_range == pytest.approx(12, abs=0.5)
  t = np.arange(2 * RATE_HZ) / RATE_HZ
  f0 = 85 * 2 ** (0.5 * np.sin(2 * np.pi * 0.5 * t) / 12)  # A slow glide across E2 / F2.
  phase = 2 * np.pi * np.cumsum(f0) / RATE_HZ
  wavering = voicing.voicing(0.1 * sum(np.sin(k * phase) / k for k in range(1, 12)), RATE_HZ)
  assert 0.5 < wavering.pitch_range < 1.2
  assert "pitch range" in str(wavering)


def test_white_noise_is_not_voiced():
  noise = 0.1 * np.random.default_rng(0).standard_normal(RATE_HZ)
  result = voicing.voicing(noise, RATE_HZ)
  assert result.voiced_fraction < 0.1
  assert result.flatness > 0.3
  assert np.isnan(result.median_f0_hz)
  assert result.hnr_db < 0


@pytest.mark.parametrize("snr_db", [10.0, 3.0, 0.0])
def test_hnr_grades_a_tone_under_noise_by_its_signal_to_noise_ratio(snr_db):
  """A periodic waveform under white noise: the HNR follows the SNR (within 2 dB), a graded
  measure where pYIN's voiced flag is all or nothing."""
  tone = harmonic_tone()
  noise = np.random.default_rng(1).standard_normal(tone.shape[0])
  noise *= tone.std() / noise.std() * 10 ** (-snr_db / 20)
  result = voicing.voicing(tone + noise, RATE_HZ)
  assert result.hnr_db == pytest.approx(snr_db, abs=2.0)


def test_synthesized_speech_is_voiced_and_pauses_do_not_count():
  speech, _ = espeak.synthesize("the quick brown fox jumps over the lazy dog", voice="en")
  audio = np.concatenate([speech / 32768, np.zeros(espeak.SAMPLE_RATE_HZ // 2)])
  result = voicing.voicing(audio, espeak.SAMPLE_RATE_HZ)
  assert 0.3 < result.loud_fraction < 0.9
  assert result.voiced_fraction > 0.5
  assert result.flatness < 0.05
  assert result.hnr_db > 5


def test_silence_constants_and_short_clips():
  for still in (np.zeros(RATE_HZ), np.full(RATE_HZ, 0.5)):  # A constant is DC, not sound.
    result = voicing.voicing(still, RATE_HZ)
    assert result.loud_fraction == result.voiced_fraction == 0
    assert str(result).startswith("silent")
  with pytest.raises(ValueError, match="shorter than one"):
    voicing.voicing(np.zeros(100), RATE_HZ)
  with pytest.raises(ValueError, match="mono"):
    voicing.voicing(np.zeros((2, RATE_HZ)), RATE_HZ)
