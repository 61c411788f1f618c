"""The composer's note-event tokens: encoding, decoding, score files, batches."""

import numpy as np
import pytest

from audiojax.data import chorale_notes as cn
from audiojax.data import music21_audio
from configs import composer


def _notes(rows):
  pitch, start, end = (np.asarray(c, np.float64) for c in zip(*rows, strict=True))
  return {"pitch_midi": pitch.astype(np.int32), "start_q": start, "end_q": end}


def _key(notes):
  return sorted(zip(np.round(notes["start_q"], 3), notes["pitch_midi"].tolist(),
                    np.round(notes["end_q"], 3), strict=True))


def test_layout_of_a_toy_score():
  """Onsets in order, highest pitch first, gaps over a bar split into SHIFTs, long notes
  clipped to MAX_DURATION, onsets and ends rounded to sixteenths."""
  notes = _notes([(60, 0.0, 1.0), (67, 0.0, 0.5), (62, 5.0, 20.0), (64, 5.1, 5.35)])
  tokens = cn.encode(notes)
  assert tokens.tolist() == [
      cn.BOS,
      cn.PITCH0 + 67 - cn.LOWEST, cn.DURATION0 + 2 - 1,  # 0.5 quarters = 2 sixteenths
      cn.PITCH0 + 60 - cn.LOWEST, cn.DURATION0 + 4 - 1,
      cn.SHIFT0 + 16 - 1, cn.SHIFT0 + 4 - 1,  # 5 quarters = 20 sixteenths = 16 + 4
      cn.PITCH0 + 64 - cn.LOWEST, cn.DURATION0 + 1 - 1,  # 5.1 -> 5.0, 5.35 -> 5.25
      cn.PITCH0 + 62 - cn.LOWEST, cn.DURATION0 + cn.MAX_DURATION - 1,  # 60 clipped to 32
      cn.EOS]
  decoded, skipped = cn.decode(tokens)
  assert skipped == 0
  assert _key(decoded) == [(0.0, 60, 1.0), (0.0, 67, 0.5), (5.0, 62, 13.0), (5.0, 64, 5.25)]
  assert cn.VOCAB_SIZE == cn.PAD + 1 and len({cn.BOS, cn.EOS, cn.PAD}) == 3


def test_a_chorale_round_trips_on_the_sixteenth_grid():
  notes = music21_audio.read_notes("bach/bwv66.6")
  decoded, skipped = cn.decode(cn.encode(notes))
  assert skipped == 0 and len(decoded["pitch_midi"]) == len(notes["pitch_midi"])
  grid = lambda q: np.round(q / cn.GRID_QUARTERS) * cn.GRID_QUARTERS
  assert _key(decoded) == _key({"pitch_midi": notes["pitch_midi"], "start_q": grid(
      notes["start_q"]), "end_q": grid(notes["end_q"])})


def test_decode_skips_tokens_out_of_order_and_stops_at_eos():
  p, d = cn.PITCH0 + 60 - cn.LOWEST, cn.DURATION0 + 3
  tokens = [cn.BOS, d, p, p, d, cn.SHIFT0, cn.BOS, p, cn.EOS, p, d]
  decoded, skipped = cn.decode(np.asarray(tokens))
  assert _key(decoded) == [(0.0, 60, 1.0)]
  assert skipped == 4  # the stray DURATION, the PITCH with none, the late BOS, the last PITCH


def test_range_checks_and_transposition():
  with pytest.raises(ValueError, match="outside MIDI"):
    cn.encode(_notes([(cn.HIGHEST, 0.0, 1.0)]), transpose=1)
  tokens = cn.encode(_notes([(cn.HIGHEST - 2, 0.0, 1.0), (cn.LOWEST + 10, 0.0, 1.0)]))
  up = cn.decode(cn._transposed(tokens, 5))[0]["pitch_midi"]  # only 2 semitones fit above
  assert sorted(up.tolist()) == [cn.LOWEST + 12, cn.HIGHEST]
  down = cn.decode(cn._transposed(tokens, -3))[0]["pitch_midi"]
  assert sorted(down.tolist()) == [cn.LOWEST + 7, cn.HIGHEST - 5]


@pytest.mark.parametrize("suffix", ["mid", "musicxml"])
def test_scores_written_read_back_as_written(tmp_path, suffix):
  """Overlapping notes of different lengths (what a composer draws) survive the file format:
  write_score spreads them over parts that never overlap."""
  notes = _notes([(60, 0.0, 3.0), (64, 0.0, 1.0), (67, 0.5, 1.5), (72, 1.0, 2.25),
                  (48, 2.0, 4.0)])
  path = str(tmp_path / f"score.{suffix}")
  cn.write_score(notes, path, bpm=120.0)
  back = music21_audio.read_notes(path)
  assert _key(back) == _key(notes)
  np.testing.assert_allclose(back["start_s"], back["start_q"] * 0.5)  # 120 bpm


def test_batches_cover_every_target_once():
  config = composer.get_config("tiny").data
  pieces = cn.split_pieces("validation", config.max_pieces)
  batches = list(cn.eval_batches(config, "validation", max_examples=None, batch_size=3,
                                 process_index=0, process_count=1))
  assert all(b["tokens"].shape == (3, config.sequence_length) for b in batches)
  targets = sum(b["loss_mask"][:, 1:].sum() for b in batches)
  assert targets == sum(p.size - 1 for p in pieces)
  train = iter(cn.train_dataset(config, seed=0, process_index=0, process_count=1))
  batch = next(train)
  assert batch["tokens"].shape == (config.batch_size, config.sequence_length)
  assert batch["tokens"].max() < cn.VOCAB_SIZE and batch["loss_mask"].sum() > 0
  example = cn.example_batch(config, 2)
  assert (example["tokens"] == cn.PAD).all() and example["loss_mask"].sum() == 0


def test_splits_are_the_music_corpus_splits():
  assert len(cn.split_pieces("test", 2)) == 2
  with pytest.raises(ValueError, match="no chorales in split"):
    cn.split_pieces("nope")
