"""score_energy: a rendering of the score's notes scores high, other notes and noise low."""

import numpy as np

from audiojax.data import music21_audio, notes
from audiojax.eval import music_metrics

RATE, HOP = 16000, 128


def _chord(pitches, seconds=1.0):
  events = {"pitch_midi": np.array(pitches), "start": np.zeros(len(pitches), np.int64),
            "end": np.full(len(pitches), int(seconds * RATE)),
            "velocity": np.full(len(pitches), 100)}
  return notes.frame_features(events, int(seconds * RATE), HOP, RATE)[:, :notes.NUM_PITCHES]


def test_the_score_s_own_notes_score_high_others_and_noise_low():
  audio = sum(music21_audio.render_note("organ", p, 1.0, RATE)[:RATE] for p in (60, 64, 67))
  own, shifted = _chord([60, 64, 67]), _chord([61, 65, 68])
  assert music_metrics.score_energy(audio, own, HOP, RATE) > 0.9
  assert music_metrics.score_energy(audio, shifted, HOP, RATE) < 0.2
  noise = np.random.default_rng(0).standard_normal(RATE).astype(np.float32)
  chance = music_metrics.score_coverage(own, HOP, RATE, RATE)
  assert 0.05 < chance < 0.5
  assert abs(music_metrics.score_energy(noise, own, HOP, RATE) - chance) < 0.05


def test_no_held_note_or_silence_is_nan():
  rest = np.zeros((RATE // HOP, notes.NUM_PITCHES))
  tone = np.sin(np.arange(RATE) / 10).astype(np.float32)
  assert np.isnan(music_metrics.score_energy(tone, rest, HOP, RATE))
  assert np.isnan(music_metrics.score_energy(np.zeros(RATE, np.float32), _chord([60]), HOP, RATE))
