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
from audiojax.train import sharding


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or "quickstart"
  if variant not in ("tiny", "quickstart"):
    raise ValueError(f"unknown composer variant {variant!r}: use tiny or quickstart")
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = ml_collections.ConfigDict(dict(
      name="chorale_notes", sequence_length=256, transpose=5, max_pieces=0, batch_size=8,
      train_split="train", eval_split="validation", test_split="test"))
  config.model = ml_collections.ConfigDict(dict(
      name="transformer", vocab_size=chorale_notes.VOCAB_SIZE,
      num_layers=4, embed_dim=256, num_heads=4, head_dim=0, mlp_dim=1024, norm="rms",
      mlp="gelu", position="t5_bias", num_buckets=32, max_distance=128,
      rope_max_wavelength=10_000.0, tie_embeddings=True, vocab_multiple=1, dropout_rate=0.1,
      attention_dropout_rate=0.0, attention_impl=None, dtype="float32", scan_layers=False,
      remat="none"))
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-3, schedule="cosine", warmup_steps=200, final_lr_fraction=0.1,
      b1=0.9, b2=0.98, eps=1e-9, weight_decay=0.01, clip_norm=1.0))
  config.mesh = sharding.mesh_config()
  config.sharding_rules = sharding.RULES
  config.train = ml_collections.ConfigDict(dict(
      num_steps=2000, microbatches=1, log_every=50, checkpoint_every=500, keep_checkpoints=3,
      async_checkpoints=True, eval_every=1000, eval_max_examples=64,
      sample_every=0, sample_seconds=0.0, sample_temperature=1.0, num_samples_to_write=0,
      rng_impl=""))
  if variant == "tiny":
    config.data.update(sequence_length=32, max_pieces=4, batch_size=2)
    config.model.update(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, dropout_rate=0.0)
    config.optimizer.update(warmup_steps=1)
    config.train.update(num_steps=4, log_every=2, checkpoint_every=2, eval_every=4,
                        eval_max_examples=2, async_checkpoints=False)
  return config
