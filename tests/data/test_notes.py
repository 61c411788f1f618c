"""Score features (audiojax/data/notes.py): frame alignment, the harmonic source, packing."""

import numpy as np
import pytest

from audiojax.data import notes

RATE = 16000


def _events(pitch, start, end, velocity=None):
  pitch = np.atleast_1d(pitch)
  return {"pitch_midi": pitch, "start": np.atleast_1d(start), "end": np.atleast_1d(end),
          "velocity": np.full(pitch.shape, 127) if velocity is None else np.atleast_1d(velocity)}


def test_frame_features_hold_each_pitch_over_its_frames():
  """A frame is judged at its centre: a note over samples [300, 700) at hop 100 holds frames
  3..6 (centres 350..650); the onset decay starts near 1 and falls; velocity scales the hold."""
  features = notes.frame_features(_events(60, 300, 700, 64), 1000, 100, RATE)
  assert features.shape == (10, 2 * notes.NUM_PITCHES)
  held, decay = features[:, :notes.NUM_PITCHES], features[:, notes.NUM_PITCHES:]
  column = 60 - notes.LOWEST
  np.testing.assert_allclose(held[:, column], [0, 0, 0] + [64 / 127] * 4 + [0, 0, 0])
  expected = np.exp(-(np.arange(350, 700, 100) - 300) / RATE / notes.ONSET_DECAY_S)
  np.testing.assert_allclose(decay[3:7, column], expected, rtol=1e-6)
  assert not np.delete(features, [column, notes.NUM_PITCHES + column], axis=1).any()


def test_pitches_outside_the_range_move_by_octaves():
  events = _events([notes.HIGHEST + 5, notes.LOWEST - 1], [0, 0], [200, 200])
  features = notes.frame_features(events, 200, 100, RATE)
  held = np.flatnonzero(features[0, :notes.NUM_PITCHES])
  assert held.tolist() == [notes.LOWEST + 11 - notes.LOWEST, notes.HIGHEST + 5 - 12 - notes.LOWEST]


def test_source_is_the_notes_harmonics_over_their_span():
  """A4 from sample 1000 to 9000 at 16 kHz: channel 0 flags the held samples; channel h is a
  sine at h x 440 Hz from the onset, ringing SOURCE_RELEASE_S past the end; partials above
  0.45 x the rate are left out."""
  source = notes.source(_events(69, 1000, 9000), 16000, RATE, harmonics=3)
  assert source.shape == (16000, 4)
  assert source[1000:9000, 0].all() and not source[:1000, 0].any() and not source[9000:, 0].any()
  release = int(notes.SOURCE_RELEASE_S * RATE)
  assert not source[:1000, 1:].any() and not source[9000 + release:, 1:].any()
  for h in (1, 2, 3):
    spectrum = np.abs(np.fft.rfft(source[1000:9000, h]))
    assert np.argmax(spectrum) * RATE / 8000 == pytest.approx(440 * h, abs=2)
  np.testing.assert_allclose(source[1000:1004, 1], notes.SOURCE_GAIN * np.sin(
      2 * np.pi * 440 / RATE * np.arange(4)), atol=1e-6)
  high = notes.source(_events(96, 0, 100), 100, 8000, harmonics=2)  # C7 = 2093 Hz, at 8 kHz.
  assert np.abs(high[:, 1]).max() > 0.1 and not high[:, 2].any()


def test_packed_is_frames_then_the_source_sample_major():
  events = _events([60, 64], [0, 50], [150, 230])
  packed = notes.packed(events, 230, 16, RATE, harmonics=2)
  frames = -(-230 // 16)
  assert packed.shape == (frames, notes.num_features() + 16 * 3)
  np.testing.assert_array_equal(packed[:, :notes.num_features()],
                                notes.frame_features(events, 230, 16, RATE))
  np.testing.assert_array_equal(packed[:, notes.num_features():].reshape(-1, 3),
                                notes.source(events, frames * 16, RATE, 2))


def test_bad_note_events_are_clear_errors():
  with pytest.raises(ValueError, match="missing"):
    notes.frame_features({"pitch_midi": np.array([60])}, 100, 10, RATE)
  with pytest.raises(ValueError, match="ends before it starts"):
    notes.source(_events(60, 50, 10), 100, RATE, 2)
  with pytest.raises(ValueError, match="one entry per note"):
    notes.frame_features(_events([60, 62], [0], [10, 20]), 100, 10, RATE)
  with pytest.raises(ValueError, match="harmonics"):
    notes.source(_events(60, 0, 10), 100, RATE, -1)


def test_random_phases_are_seeded_per_note_and_keep_the_frequency():
  events = _events([69, 69], [0, 8000], [4000, 12000])
  onset = notes.source(events, 12000, RATE, harmonics=2)
  drawn = notes.source(events, 12000, RATE, harmonics=2, random_phase=True)
  np.testing.assert_array_equal(drawn, notes.source(events, 12000, RATE, 2, random_phase=True))
  np.testing.assert_array_equal(drawn[:, 0], onset[:, 0])
  assert abs(drawn[0, 1]) > 1e-3 and drawn[0, 1] != drawn[8000, 1]  # Not 0 at the onsets.
  for h in (1, 2):
    spectrum = np.abs(np.fft.rfft(drawn[:4000, h]))
    assert np.argmax(spectrum) * RATE / 4000 == pytest.approx(440 * h, abs=4)
