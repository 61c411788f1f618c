"""Codec metrics: ideal on identical clips, worse with more noise, NaN where unscoreable."""

import jax
import numpy as np
import pytest

from audiojax.data import audio_io, espeak
from audiojax.eval import codec_metrics
from audiojax.train import losses

RATE_HZ = 16000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
  """~2.5 s of synthetic speech at 16 kHz, float32 [samples]."""
  audio, _ = espeak.synthesize("The quick brown fox jumps over the lazy dog.", voice="en")
  return audio_io.resample(audio_io.to_mono_float(audio), espeak.SAMPLE_RATE_HZ, RATE_HZ)


def noisy(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
  noise = np.random.default_rng(seed).standard_normal(audio.shape[0]).astype(np.float32)
  return audio + noise * np.std(audio) * 10 ** (-snr_db / 20)


def test_identical_clips_score_ideally(speech):
  scores = codec_metrics.compute(speech, speech, RATE_HZ)
  assert scores["mel_distance"] == 0 and scores["mr_stft"] == 0
  assert scores["si_snr_db"] > 60
  assert scores["pesq"] > 4.5 and scores["stoi"] > 0.999


def test_every_metric_worsens_with_more_noise(speech):
  scores = [codec_metrics.compute(speech, noisy(speech, snr), RATE_HZ) for snr in (30, 20, 10)]
  for name, sign in [("mel_distance", 1), ("mr_stft", 1), ("si_snr_db", -1), ("pesq", -1),
                     ("stoi", -1)]:
    values = [sign * s[name] for s in scores]
    assert values == sorted(values) and len(set(values)) == 3, (name, values)
  assert [round(s["si_snr_db"]) for s in scores] == [30, 20, 10]


def test_si_snr_is_scale_invariant(speech):
  estimate = noisy(speech, 15)
  reference = codec_metrics.si_snr_db(speech, estimate)
  for scale in (3.0, 0.01, -0.5):
    assert codec_metrics.si_snr_db(speech, scale * estimate) == pytest.approx(reference, abs=1e-3)


def test_mel_distance_of_padded_clips_equals_the_unpadded_definition(speech):
  """The jitted metric pads to a length bucket and masks; compare with log_mel as it is."""
  reference, estimate = speech[:3000], noisy(speech, 10)[:3000]
  log_mel = jax.jit(losses.log_mel, static_argnums=(1, 2, 3, 4))
  direct = []
  for window in codec_metrics.MEL_WINDOWS:
    if window <= reference.shape[0]:
      hop = window // 4
      a, b = (log_mel(x[None], RATE_HZ, window, hop, min(64, hop)) for x in (reference, estimate))
      direct.append(float(np.mean(np.abs(np.asarray(a) - np.asarray(b)))))
  assert codec_metrics.mel_distance(reference, estimate, RATE_HZ) == pytest.approx(
      np.mean(direct), rel=1e-4)


def test_unscoreable_clips_give_nan_not_errors(speech):
  silence = np.zeros(RATE_HZ, np.float32)
  scores = codec_metrics.compute(silence, silence, RATE_HZ)
  assert np.isnan(scores["pesq"]) and np.isnan(scores["stoi"])
  assert scores["mel_distance"] == 0 and scores["si_snr_db"] == 0
  assert np.isnan(codec_metrics.pesq_wb(speech, np.zeros_like(speech), RATE_HZ))
  skipped = codec_metrics.compute(speech, speech, RATE_HZ, speech=False)
  assert np.isnan(skipped["pesq"]) and np.isnan(skipped["stoi"])
  short = speech[:320]  # 20 ms: under one of STOI's 256-sample frames at 10 kHz.
  assert np.isnan(codec_metrics.stoi(short, short, RATE_HZ))


def test_other_rates_and_bad_shapes(speech):
  at_24k = audio_io.resample(speech, RATE_HZ, 24000)
  assert codec_metrics.pesq_wb(at_24k, at_24k, 24000) > 4.5  # Resampled to 16 kHz for PESQ.
  with pytest.raises(ValueError, match="one length"):
    codec_metrics.compute(speech, speech[:-1], RATE_HZ)
