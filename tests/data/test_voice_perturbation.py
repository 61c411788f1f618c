"""Speaker perturbation (`voice_perturbation.perturb_voice`) and its place in the pipeline."""

import numpy as np
import parselmouth
from parselmouth import praat

from audiojax.data import pipeline, voice_perturbation
from tests.data.test_pipeline import data_config

RATE = 16000


def vowel(f0_hz: float, seconds: float = 1.0) -> np.ndarray:
  """A glottal pulse train at f0 through two formant resonances (700 and 1200 Hz): a vowel."""
  n = int(seconds * RATE)
  source = np.zeros(n)
  source[::int(RATE / f0_hz)] = 1.0
  out = source
  for formant, bandwidth in ((700.0, 80.0), (1200.0, 90.0)):
    r = np.exp(-np.pi * bandwidth / RATE)
    a1, a2 = 2 * r * np.cos(2 * np.pi * formant / RATE), -r * r
    y = np.zeros(n)
    for t in range(n):
      y[t] = out[t] + a1 * (y[t - 1] if t else 0) + a2 * (y[t - 2] if t > 1 else 0)
    out = y
  return (0.3 * out / np.abs(out).max()).astype(np.float32)


def median_f0(audio: np.ndarray) -> float:
  pitch = parselmouth.Sound(audio.astype(np.float64), RATE).to_pitch_ac(pitch_floor=40.0,
                                                                        pitch_ceiling=600.0)
  return praat.call(pitch, "Get quantile", 0.0, 0.0, 0.5, "Hertz")


def test_another_voice_moves_the_pitch_by_the_drawn_ratio_and_keeps_the_length():
  audio = vowel(150.0)
  for seed in range(4):
    rng = np.random.default_rng(seed)
    out = voice_perturbation.perturb_voice(audio, RATE, np.random.default_rng(seed))
    voice_perturbation._ratio(rng, voice_perturbation.FORMANT_SHIFT)
    shift = voice_perturbation._ratio(rng, voice_perturbation.PITCH_SHIFT)
    assert out.shape == audio.shape and out.dtype == np.float32
    np.testing.assert_allclose(median_f0(out), 150.0 * shift, rtol=0.05)
  again = voice_perturbation.perturb_voice(audio, RATE, np.random.default_rng(3))
  np.testing.assert_array_equal(again, out)  # The generator decides everything.


def test_silence_and_short_audio_come_back_unchanged():
  rng = np.random.default_rng(0)
  silence = np.zeros(RATE, np.float32)
  np.testing.assert_array_equal(voice_perturbation.perturb_voice(silence, RATE, rng), silence)
  short = vowel(150.0, 0.02)
  np.testing.assert_array_equal(voice_perturbation.perturb_voice(short, RATE, rng), short)
  noise = (0.01 * rng.standard_normal(RATE)).astype(np.float32)  # Unvoiced: formants only.
  assert voice_perturbation.perturb_voice(noise, RATE, rng).shape == noise.shape


def test_batches_bring_the_crops_in_other_voices(audio_folder):
  """Train batches: a 'perturbed' row per crop, zero where the crop is padding; eval batches:
  the same perturbed crops on every pass."""
  config = data_config(f"folder:{audio_folder}", crop_samples=20000, perturb_voice=True)
  batch = next(iter(pipeline.train_dataset(config, seed=0, process_index=0, process_count=1)))
  assert batch["perturbed"].shape == batch["audio"].shape
  assert np.all(batch["perturbed"][batch["mask"] == 0] == 0)
  first, second = (next(pipeline.eval_batches(config, "all", max_examples=2, batch_size=2))
                   for _ in range(2))
  np.testing.assert_array_equal(first["perturbed"], second["perturbed"])
  assert set(pipeline.example_batch(config)) >= {"perturbed"}
