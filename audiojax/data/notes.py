"""Score features for music synthesis: note events -> frame features and a harmonic source.

A WaveNet that plays a score (`configs/wavenet.py:music_score`) conditions, like the
text-to-speech model on its phonemes, on features of the note events the built-in music corpus
stores (`music21_audio`: pitch_midi, start, end, velocity; samples), the same events
`music21_audio.read_notes` gives for any MusicXML / MIDI file. Two parts, both deterministic:

- Frame features [frames, 2 x NUM_PITCHES] for the frame `[k * hop, (k + 1) * hop)` judged at
  its centre: per MIDI pitch LOWEST..HIGHEST (others are moved by octaves into the range) the
  velocity / 127 while the note is held, and exp(-(time since its onset) / ONSET_DECAY_S) while
  held (when it began: plucked and struck notes decay from there).
- A source at the sample rate (neural source-filter models, Wang et al. 2019; DDSP's harmonic
  oscillators, Engel et al. 2020), `1 + harmonics` channels per sample: whether any note is
  held, then for h = 1..harmonics the sum over sounding notes of sin(2 pi h f0 (n - start) /
  rate), below 0.45 x the rate, from each note's onset until SOURCE_RELEASE_S after its end.
  The network shapes these into the instrument's tone (which partials, how loud, how they
  decay): the score says which pitches sound, the model how they sound.
"""

from collections.abc import Mapping

import numpy as np

LOWEST, HIGHEST = 24, 96  # MIDI C1..C7.
NUM_PITCHES = HIGHEST - LOWEST + 1
ONSET_DECAY_S = 0.5
SOURCE_RELEASE_S = 0.1  # The source rings on this long after a note's end (its release).
SOURCE_GAIN = 0.5  # Per note: four voices of a chorale stay within about [-2, 2].


def num_features() -> int:
  """Frame feature channels."""
  return 2 * NUM_PITCHES


def midi_to_hz(pitch_midi: float) -> float:
  """Equal temperament, A4 (69) = 440 Hz; numpy arrays too."""
  return 440.0 * 2.0 ** ((pitch_midi - 69) / 12)


def _in_range(pitch_midi: np.ndarray) -> np.ndarray:
  """Pitches moved by whole octaves into LOWEST..HIGHEST."""
  pitch = np.asarray(pitch_midi, np.int64)
  below = np.ceil(np.maximum(LOWEST - pitch, 0) / 12).astype(np.int64)
  above = np.ceil(np.maximum(pitch - HIGHEST, 0) / 12).astype(np.int64)
  return pitch + 12 * below - 12 * above


def _check(notes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
  missing = {"pitch_midi", "start", "end"} - set(notes)
  if missing:
    raise ValueError(f"note events need pitch_midi, start and end; missing {sorted(missing)}")
  pitch = np.asarray(notes["pitch_midi"], np.int64)
  start, end = np.asarray(notes["start"], np.int64), np.asarray(notes["end"], np.int64)
  velocity = np.asarray(notes.get("velocity", np.full(pitch.shape, 100)), np.float64)
  if not pitch.shape == start.shape == end.shape == velocity.shape or pitch.ndim != 1:
    raise ValueError("note events: pitch_midi, start, end and velocity must be 1-D, one entry "
                     f"per note; got shapes {pitch.shape}, {start.shape}, {end.shape}, "
                     f"{velocity.shape}")
  if np.any(end < start):
    raise ValueError("note events: a note ends before it starts")
  return pitch, start, end, velocity


def frame_features(notes: Mapping[str, np.ndarray], num_samples: int, hop: int,
                   sample_rate_hz: int) -> np.ndarray:
  """Note events (samples) -> float32 [ceil(num_samples / hop), 2 x NUM_PITCHES] (module
  docstring): held velocity, then onset decay, per pitch from LOWEST."""
  pitch, start, end, velocity = _check(notes)
  frames = -(-num_samples // hop)
  centres = np.arange(frames) * hop + hop // 2  # [frames]
  out = np.zeros((frames, 2, NUM_PITCHES), np.float32)
  held = (centres[:, None] >= start) & (centres[:, None] < end)  # [frames, notes]
  since = (centres[:, None] - start) / sample_rate_hz
  decay = np.where(held, np.exp(-np.maximum(since, 0) / ONSET_DECAY_S), 0.0)
  column = _in_range(pitch) - LOWEST
  for i in range(pitch.shape[0]):  # Notes of one pitch may overlap: keep the larger value.
    rows = held[:, i]
    out[rows, 0, column[i]] = np.maximum(out[rows, 0, column[i]], velocity[i] / 127)
    out[rows, 1, column[i]] = np.maximum(out[rows, 1, column[i]], decay[rows, i])
  return out.reshape(frames, 2 * NUM_PITCHES)


def source(notes: Mapping[str, np.ndarray], num_samples: int, sample_rate_hz: int,
           harmonics: int, random_phase: bool = False) -> np.ndarray:
  """Note events (samples) -> float32 [num_samples, 1 + harmonics]: held flag, then the
  harmonic oscillators (module docstring). `random_phase`: each note's partials start at
  phases drawn uniformly (seeded by its pitch and onset, so the same score gives the same
  source), not at 0 at the onset: as a recording's partials, whose phases come from how the
  note was struck."""
  pitch, start, end, _ = _check(notes)
  if harmonics < 0:
    raise ValueError(f"harmonics={harmonics}: need 0 (the held flag alone) or more")
  out = np.zeros((num_samples, 1 + harmonics), np.float32)
  release = int(round(SOURCE_RELEASE_S * sample_rate_hz))
  for p, s, e in zip(pitch, start, end, strict=True):
    s, held_end, ring_end = min(s, num_samples), min(e, num_samples), min(e + release, num_samples)
    out[s:held_end, 0] = 1.0
    if ring_end <= s:
      continue
    f0 = midi_to_hz(float(p))
    h = np.arange(1, harmonics + 1)
    h = h[h * f0 < 0.45 * sample_rate_hz]
    phase = (2 * np.pi * f0 / sample_rate_hz) * np.arange(ring_end - s, dtype=np.float64)
    offset = (np.random.default_rng([int(p), int(s)]).uniform(0, 2 * np.pi, harmonics)[h - 1]
              if random_phase else 0.0)
    out[s:ring_end, h] += SOURCE_GAIN * np.sin(phase[:, None] * h + offset).astype(np.float32)
  return out


def packed(notes: Mapping[str, np.ndarray], num_samples: int, hop: int, sample_rate_hz: int,
           harmonics: int, random_phase: bool = False) -> np.ndarray:
  """The condition a score-conditioned WaveNet takes: frame features followed by the source
  packed hop x (1 + harmonics) per frame, sample-major: float32 [frames, 2 NUM_PITCHES +
  hop (1 + harmonics)] (as `pitch.excitation_frames` packs the speech excitation)."""
  frames = -(-num_samples // hop)
  per_sample = source(notes, frames * hop, sample_rate_hz, harmonics, random_phase)
  return np.concatenate([frame_features(notes, num_samples, hop, sample_rate_hz),
                         per_sample.reshape(frames, hop * (1 + harmonics))], axis=1)
