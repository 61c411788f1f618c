"""Is a score chorale-like? Statistics of note events, for the composer's samples.

Each takes notes {pitch_midi [n], start_q, end_q (quarter notes) [n]} (`chorale_notes.decode`,
`music21_audio.read_notes`) and is compared across held-out chorales, the composer's scores
and random scores of the same length (`launch.compose` prints the three):
- `scale_share`: the share of notes (duration-weighted) whose pitch class lies in the best-
  fitting major or harmonic-minor scale of the 24: a tonal piece keeps to one key (Bach's
  chorales 0.94), uniformly random pitches ~0.65 (the best of 24 scales of 7 pitch classes).
- `voices`: the mean number of notes sounding at each onset (a four-part chorale: ~4).
- `quarters_per_note`: the piece's length over its notes (the chorales' rhythmic density).
"""

import numpy as np

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)


def scale_share(notes: dict[str, np.ndarray]) -> float:
  """Duration-weighted share of notes in the best-fitting of the 24 major / harmonic-minor
  scales; nan for no notes."""
  if not len(notes["pitch_midi"]):
    return float("nan")
  weight = np.bincount(notes["pitch_midi"] % 12, notes["end_q"] - notes["start_q"], 12)
  best = max(weight[[(tonic + step) % 12 for step in scale]].sum()
             for tonic in range(12) for scale in (_MAJOR, _HARMONIC_MINOR))
  return float(best / weight.sum())


def voices(notes: dict[str, np.ndarray]) -> float:
  """Mean number of notes sounding at each distinct onset; nan for no notes."""
  onsets = np.unique(notes["start_q"])
  if not onsets.size:
    return float("nan")
  start, end = notes["start_q"][None, :], notes["end_q"][None, :]
  return float(((start <= onsets[:, None]) & (end > onsets[:, None])).sum(1).mean())


def quarters_per_note(notes: dict[str, np.ndarray]) -> float:
  """The piece's span (first onset to last end, quarter notes) per note; nan for no notes."""
  if not len(notes["pitch_midi"]):
    return float("nan")
  return float((notes["end_q"].max() - notes["start_q"].min()) / len(notes["pitch_midi"]))


def random_like(notes: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
  """The same rhythm with pitches drawn uniformly over the notes' pitch range: the baseline."""
  pitch = notes["pitch_midi"]
  return {**notes, "pitch_midi": rng.integers(pitch.min(), pitch.max() + 1, pitch.size)}
