"""Score statistics of the composer's evaluation."""

import numpy as np

from audiojax.eval import score_stats


def _notes(pitches, starts, ends):
  return {"pitch_midi": np.asarray(pitches, np.int32), "start_q": np.asarray(starts, float),
          "end_q": np.asarray(ends, float)}


def test_a_scale_is_in_one_key_and_chromatic_notes_are_not():
  c_major = _notes([60, 62, 64, 65, 67, 69, 71, 72], range(8), range(1, 9))
  assert score_stats.scale_share(c_major) == 1.0
  a_minor_harmonic = _notes([57, 59, 60, 62, 64, 65, 68], range(7), range(1, 8))
  assert score_stats.scale_share(a_minor_harmonic) == 1.0
  chromatic = _notes(range(60, 72), range(12), range(1, 13))
  assert score_stats.scale_share(chromatic) == 7 / 12
  rng = np.random.default_rng(0)
  random = score_stats.random_like(_notes([40] * 2 + [80] * 2, range(4), range(1, 5)), rng)
  assert random["pitch_midi"].min() >= 40 and random["pitch_midi"].max() <= 80
  assert np.isnan(score_stats.scale_share(_notes([], [], [])))


def test_voices_and_density():
  chords = _notes([60, 64, 67, 72, 62, 65, 69, 74], [0] * 4 + [1] * 4, [1] * 4 + [2] * 4)
  assert score_stats.voices(chords) == 4.0
  assert score_stats.quarters_per_note(chords) == 2 / 8
  held = _notes([48, 60, 62], [0, 0, 1], [2, 1, 2])  # the bass holds under two notes
  assert score_stats.voices(held) == 2.0
