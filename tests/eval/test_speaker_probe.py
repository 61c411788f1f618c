"""The speaker probe: fitted on labelled clips, it names the speaker of new ones."""

import numpy as np
import pytest

from audiojax.eval import speaker_probe


def voice(speaker: int, seed: int, seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
  """A "speaker" = a harmonic tone at its own pitch and brightness, with noise."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * rate)) / rate
  f0 = (110, 180, 260)[speaker] * rng.uniform(0.97, 1.03)
  tone = sum(np.sin(2 * np.pi * f0 * h * t) / h ** (1 + speaker) for h in range(1, 8))
  return (0.3 * tone + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def test_probe_names_the_speaker_of_new_clips():
  clips = [voice(s, seed) for seed in range(4) for s in range(3)]
  probe = speaker_probe.fit(clips, [s for _ in range(4) for s in range(3)], 16000)
  assert probe.speakers == (0, 1, 2)
  new = [voice(s, 100 + s) for s in range(3)]
  assert probe.accuracy(new, [0, 1, 2]) == 1.0
  assert probe.accuracy(new, [1, 2, 0]) == 0.0


def test_bad_inputs_are_clear_errors():
  with pytest.raises(ValueError, match="at least two speakers"):
    speaker_probe.fit([voice(0, 0), voice(0, 1)], [0, 0], 16000)
  with pytest.raises(ValueError, match="shorter than one 25 ms frame"):
    speaker_probe.clip_features(np.zeros(100, np.float32), 16000)
  assert np.isfinite(speaker_probe.clip_features(np.zeros(1000, np.float32), 16000)).all()


def test_standardising_over_the_clips_discounts_a_shift_they_all_share():
  """Samples that differ from real recordings in the same way (quieter, over a noise floor, as
  generated audio does) can all land on one speaker; standardised by their own statistics,
  what separates them from each other names them."""
  clips = [voice(s, seed) for seed in range(4) for s in range(3)]
  probe = speaker_probe.fit(clips, [s for _ in range(4) for s in range(3)], 16000)
  rng = np.random.default_rng(0)
  speakers = [s for _ in range(2) for s in range(3)]
  samples = [0.2 * voice(s, 200 + i) + 0.1 * rng.normal(size=8000).astype(np.float32)
             for i, s in enumerate(speakers)]
  assert len(set(probe.predict(samples).tolist())) == 1  # All named the same speaker: 1/3.
  assert probe.accuracy(samples, speakers, standardise_over_clips=True) >= 2 / 3
  with pytest.raises(ValueError, match="at least two clips"):
    probe.predict(samples[:1], standardise_over_clips=True)
