r"""Write new scores with the composer (`configs/composer.py`), for a score WaveNet to play.

  python -m launch.compose --workdir=runs/composer --output_dir=composed --num_pieces=3
  python -m launch.compose --workdir=runs/composer --output_dir=composed \
      --prompt=bach/bwv66.6 --prompt_quarters=8   # continue a chorale's first two bars
  python -m launch.sample --workdir=runs/music_score --output_dir=played \
      --score=composed/piece_0.mid --speaker=1 --seconds=8

Writes piece_0.mid, ... (or .musicxml) at --bpm, and prints how chorale-like they are
(`audiojax/eval/score_stats.py`: the share of notes in one key, voices per onset, quarter
notes per note) next to the held-out (test) chorales and to the composed rhythms with random
pitches; the same table goes to OUTPUT_DIR/score_stats.md.
"""

import os

import numpy as np
from absl import flags

from audiojax.data import chorale_notes
from audiojax.eval import score_stats
from audiojax.sample import composer
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "The composer's run.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the scores go.")
_NUM_PIECES = flags.DEFINE_integer("num_pieces", 3, "Scores to write.")
_NUM_TOKENS = flags.DEFINE_integer("num_tokens", 512, "Tokens to draw per score (a chorale: "
                                   "~500, i.e. ~2 per note); a score ends earlier at EOS.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature.")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus sampling's probability mass.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_BPM = flags.DEFINE_float("bpm", 100.0, "Tempo written into the scores (quarter notes/minute).")
_PROMPT = flags.DEFINE_string("prompt", None, "Continue this piece (a music21 corpus work, "
                              "e.g. bach/bwv66.6, or a MusicXML / MIDI file).")
_PROMPT_QUARTERS = flags.DEFINE_float("prompt_quarters", 8.0, "Quarter notes of --prompt kept.")
_FORMAT = flags.DEFINE_enum("format", "mid", ["mid", "musicxml"], "Score file format.")
flags.mark_flags_as_required(["workdir", "output_dir"])


def _row(name: str, pieces: list[dict]) -> str:
  columns = [np.nanmean([f(p) for p in pieces]) for f in
             (score_stats.scale_share, score_stats.voices, score_stats.quarters_per_note)]
  notes = np.mean([len(p["pitch_midi"]) for p in pieces])
  return f"| {name} ({len(pieces)}) | " + " | ".join(f"{c:.3f}" for c in columns) + \
      f" | {notes:.0f} |"


def main(argv):
  del argv
  if _NUM_TOKENS.value < 1 or _NUM_PIECES.value < 1:
    raise ValueError("--num_tokens and --num_pieces must be positive")
  model, params = composer.load(_WORKDIR.value)
  prompt = composer.prompt_tokens(_PROMPT.value, _PROMPT_QUARTERS.value)
  scores = composer.compose(model, params, prompt, _NUM_PIECES.value, _NUM_TOKENS.value,
                            _SEED.value, _TEMPERATURE.value, _TOP_P.value)
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  composed = []
  for i, (notes, skipped) in enumerate(scores):
    if not len(notes["pitch_midi"]):
      print(f"piece {i}: no notes drawn ({skipped} tokens out of order); not written")
      continue
    path = os.path.join(_OUTPUT_DIR.value, f"piece_{i}.{_FORMAT.value}")
    chorale_notes.write_score(notes, path, _BPM.value)
    seconds = notes["end_q"].max() * 60.0 / _BPM.value
    print(f"wrote {path}: {len(notes['pitch_midi'])} notes, {seconds:.1f} s at "
          f"{_BPM.value:g} bpm ({skipped} tokens out of order skipped)")
    composed.append(notes)
  if not composed:
    raise ValueError("no score had any notes: train the composer longer")
  real = [chorale_notes.decode(t)[0] for t in chorale_notes.split_pieces("test")]
  rng = np.random.default_rng(_SEED.value)
  table = "\n".join([
      "| scores | in one key (share of notes) | voices per onset | quarters per note | notes |",
      "| --- | ---: | ---: | ---: | ---: |",
      _row("held-out chorales", real), _row("composed", composed),
      _row("composed rhythm, random pitches",
           [score_stats.random_like(p, rng) for p in composed])])
  print(table)
  with open(os.path.join(_OUTPUT_DIR.value, "score_stats.md"), "w") as f:
    f.write(table + "\n")


if __name__ == "__main__":
  common.run(main)
