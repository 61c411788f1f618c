"""The composer: a decoder-only transformer over the chorales' note-event tokens.

It writes scores that the score-conditioned WaveNet (`configs/wavenet.py:music_score`) plays,
so the pair makes music with no score given (`audiojax/data/chorale_notes.py`):
  python -m launch.train --config=configs/composer.py:quickstart --workdir=runs/composer
  python -m launch.compose --workdir=runs/composer --output_dir=composed --num_pieces=3
  python -m launch.sample --workdir=runs/music_score --output_dir=played \
      --score=composed/piece_0.mid --speaker=1 --seconds=8

Variants (`--config=configs/composer.py:VARIANT`):
  tiny        unit tests: a few steps on 4 pieces.
  quickstart  2 CPU cores: 4 layers of width 256 (the AudioLM quick-start stages' size), windows
              of 256 tokens, every training chorale (258), transposed by up to 5 semitones.
"""

import ml_collections

from audiojax.data import chorale_notes
from configs import audiolm


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  """The AudioLM semantic stage's model and recipe at the same size (`configs/audiolm.py`),
  with dropout 0.1 (258 pieces overfit), over note tokens instead of semantic tokens."""
  variant = variant or "quickstart"
  if variant not in ("tiny", "quickstart"):
    raise ValueError(f"unknown composer variant {variant!r}: use tiny or quickstart")
  config = audiolm.get_config(f"semantic_{variant}")
  config.data = ml_collections.ConfigDict(dict(
      name="chorale_notes", sequence_length=256, transpose=5, max_pieces=0, batch_size=8,
      train_split="train", eval_split="validation", test_split="test"))
  config.model.vocab_size = chorale_notes.VOCAB_SIZE
  config.train.eval_max_examples = 64
  if variant == "quickstart":
    config.model.dropout_rate = 0.1
  else:
    config.data.update(sequence_length=32, max_pieces=4, batch_size=2)
  return config
