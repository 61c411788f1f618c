"""`chorale_notes`: the music21 corpus' Bach chorales as note-event tokens, for a composer.

The score-conditioned WaveNet (`configs/wavenet.py:music_score`) plays a given score; a
transformer over these tokens (`configs/composer.py`) writes new ones, so the two together make
music with no score given: a note-level model on top of a sample-level one, as Wave2Midi2Wave
(Hawthorne et al. 2019) pairs Music Transformer with WaveNet.

Tokens, on a grid of sixteenth notes (GRID_QUARTERS quarter notes; durations and gaps rounded
to it): a piece is BOS, then per onset time in order, SHIFT_k (k = 1..MAX_SHIFT grid steps;
several for longer gaps) from the previous onset, then each note starting there from the
highest pitch down as PITCH_p (MIDI LOWEST..HIGHEST) DURATION_d (d = 1..MAX_DURATION grid
steps, longer notes clipped), and EOS. Voices are not told apart (the synthesizer mixes them).

Splits are `music21_audio.piece_split`'s (by piece: its test chorales are unseen here too).
Training windows transpose each visit by a random number of semitones in
[-data.transpose, data.transpose] (pieces keep within the pitch range).
"""

import functools

import numpy as np

from audiojax.data import music21_audio

GRID_QUARTERS = 0.25
MAX_SHIFT = 16  # grid steps: a whole 4/4 bar
MAX_DURATION = 32  # grid steps: two 4/4 bars
LOWEST, HIGHEST = 33, 88  # MIDI A1..E6: the chorales' voices with room to transpose.
NUM_PITCHES = HIGHEST - LOWEST + 1

SHIFT0 = 0  # SHIFT_k = SHIFT0 + k - 1
PITCH0 = SHIFT0 + MAX_SHIFT  # PITCH_p = PITCH0 + p - LOWEST
DURATION0 = PITCH0 + NUM_PITCHES  # DURATION_d = DURATION0 + d - 1
BOS = DURATION0 + MAX_DURATION
EOS = BOS + 1
PAD = BOS + 2
VOCAB_SIZE = PAD + 1


def encode(notes: dict[str, np.ndarray], transpose: int = 0) -> np.ndarray:
  """Note events {pitch_midi [n], start_q, end_q (quarter notes) [n]} -> int32 tokens
  [BOS ... EOS]. Pitches move by `transpose` semitones; ValueError if one leaves the range."""
  pitch = notes["pitch_midi"].astype(np.int64) + transpose
  if pitch.size and (pitch.min() < LOWEST or pitch.max() > HIGHEST):
    raise ValueError(f"pitches {pitch.min()}..{pitch.max()} outside MIDI {LOWEST}..{HIGHEST}")
  start = np.round(np.asarray(notes["start_q"]) / GRID_QUARTERS).astype(np.int64)
  duration = np.round(np.asarray(notes["end_q"]) / GRID_QUARTERS).astype(np.int64) - start
  duration = np.clip(duration, 1, MAX_DURATION)
  tokens, now = [BOS], 0
  for k in np.lexsort((-pitch, start)):  # by onset, then highest pitch first
    gap = start[k] - now
    while gap > 0:
      step = min(gap, MAX_SHIFT)
      tokens.append(SHIFT0 + step - 1)
      gap -= step
    now = start[k]
    tokens += [PITCH0 + pitch[k] - LOWEST, DURATION0 + duration[k] - 1]
  tokens.append(EOS)
  return np.asarray(tokens, np.int32)


def decode(tokens: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
  """Tokens (BOS optional; stops at EOS or PAD) -> ({pitch_midi, start_q, end_q} [n], number
  of tokens skipped as out of order: a PITCH not followed by a DURATION, a stray DURATION, a
  BOS after the start)."""
  pitches, starts, ends, skipped, now = [], [], [], 0, 0
  tokens = [int(t) for t in tokens]
  i = 1 if tokens and tokens[0] == BOS else 0
  while i < len(tokens) and tokens[i] not in (EOS, PAD):
    t = tokens[i]
    if SHIFT0 <= t < PITCH0:
      now += t - SHIFT0 + 1
    elif PITCH0 <= t < DURATION0 and i + 1 < len(tokens) and DURATION0 <= tokens[i + 1] < BOS:
      duration = tokens[i + 1] - DURATION0 + 1
      pitches.append(t - PITCH0 + LOWEST)
      starts.append(now * GRID_QUARTERS)
      ends.append((now + duration) * GRID_QUARTERS)
      i += 1
    else:
      skipped += 1
    i += 1
  return {"pitch_midi": np.asarray(pitches, np.int32),
          "start_q": np.asarray(starts, np.float64),
          "end_q": np.asarray(ends, np.float64)}, skipped


def write_score(notes: dict[str, np.ndarray], path: str, bpm: float) -> None:
  """Writes notes {pitch_midi, start_q, end_q} as a MIDI (.mid) or MusicXML (.musicxml / .xml)
  file at `bpm` quarter notes per minute: what `launch.sample --score` plays."""
  from music21 import note, stream, tempo

  parts, part_ends = [], []  # Notes split into parts that never overlap, as score formats want.
  for k in np.lexsort((-notes["pitch_midi"], notes["start_q"])):
    start, end = float(notes["start_q"][k]), float(notes["end_q"][k])
    free = [i for i, last in enumerate(part_ends) if last <= start]
    if not free:
      parts.append(stream.Part())
      part_ends.append(0.0)
      free = [len(parts) - 1]
    parts[free[0]].insert(start, note.Note(int(notes["pitch_midi"][k]),
                                           quarterLength=end - start))
    part_ends[free[0]] = end
  parts = parts or [stream.Part()]
  parts[0].insert(0, tempo.MetronomeMark(number=bpm))
  fmt = "midi" if path.endswith((".mid", ".midi")) else "musicxml"
  stream.Score(parts).write(fmt, fp=path)


@functools.cache
def split_pieces(split: str, max_pieces: int = 0) -> tuple[np.ndarray, ...]:
  """The split's chorales (sorted corpus paths, the first `max_pieces` if > 0) as tokens."""
  pieces = [p for p in music21_audio.list_chorales() if music21_audio.piece_split(p) == split]
  if not pieces:
    raise ValueError(f"no chorales in split {split!r}: use train, validation or test")
  return tuple(encode(music21_audio.read_notes(p)) for p in pieces[:max_pieces or None])


def _transposed(tokens: np.ndarray, semitones: int) -> np.ndarray:
  """Tokens with every PITCH moved by `semitones`, less if that would leave the range."""
  is_pitch = (tokens >= PITCH0) & (tokens < DURATION0)
  if not is_pitch.any():
    return tokens
  low, high = tokens[is_pitch].min() - PITCH0, tokens[is_pitch].max() - PITCH0
  semitones = int(np.clip(semitones, -low, NUM_PITCHES - 1 - high))
  return np.where(is_pitch, tokens + semitones, tokens).astype(np.int32)


def window(tokens: np.ndarray, start: int, length: int) -> dict[str, np.ndarray]:
  """{tokens int32 [length], loss_mask float32 [length]}: tokens[start:start + length],
  PAD-filled past the piece's end (loss_mask 0 there)."""
  part = tokens[start:start + length]
  out = np.full(length, PAD, np.int32)
  out[:part.size] = part
  mask = np.zeros(length, np.float32)
  mask[:part.size] = 1.0
  return {"tokens": out, "loss_mask": mask}


def train_dataset(data_config, *, seed: int, process_index: int, process_count: int):
  """Infinite shuffled batches {tokens int32 [b, L], loss_mask float32 [b, L]}: one random
  window of data.sequence_length tokens per piece visit, randomly transposed."""
  import grain

  pieces = split_pieces(data_config.train_split, data_config.max_pieces)
  if len(pieces) < process_count:
    raise ValueError(f"{len(pieces)} pieces, fewer than the {process_count} processes")
  length, transpose = data_config.sequence_length, data_config.transpose

  def example(index, rng: np.random.Generator):
    tokens = _transposed(pieces[index], int(rng.integers(-transpose, transpose + 1)))
    start = int(rng.integers(0, max(1, tokens.size - length + 1)))
    return window(tokens, start, length)

  ds = grain.MapDataset.range(len(pieces))[process_index::process_count]
  ds = ds.seed(seed).shuffle().repeat().random_map(example)
  return ds.to_iter_dataset().batch(data_config.batch_size // process_count,
                                    drop_remainder=True)


def eval_batches(data_config, split: str, *, max_examples: int | None, batch_size: int,
                 process_index: int, process_count: int):
  """Consecutive windows of the split's first `max_examples` pieces, untransposed; the last
  batch padded with all-PAD rows (loss_mask 0)."""
  pieces = split_pieces(split, data_config.max_pieces)
  length = data_config.sequence_length
  rows = []
  for tokens in pieces[process_index:max_examples:process_count]:
    for start in range(0, max(1, tokens.size - 1), length - 1):  # windows overlap by 1 token
      rows.append(window(tokens, start, length))
      if len(rows) == batch_size:
        yield {key: np.stack([r[key] for r in rows]) for key in rows[0]}
        rows = []
  if rows:
    rows += [window(np.zeros(0, np.int32), 0, length)] * (batch_size - len(rows))
    yield {key: np.stack([r[key] for r in rows]) for key in rows[0]}


def example_batch(data_config, rows: int) -> dict[str, np.ndarray]:
  """All-PAD rows (loss_mask 0) of the training shape [rows, L]."""
  shape = (rows, data_config.sequence_length)
  return {"tokens": np.full(shape, PAD, np.int32), "loss_mask": np.zeros(shape, np.float32)}
