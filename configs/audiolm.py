"""AudioLM's three stages: decoder-only transformers over semantic and acoustic tokens.

Variants (`--config=configs/audiolm.py:STAGE_SIZE[_acoustic_only]`):
  STAGE  semantic | coarse | fine  (token layouts: `audiojax/data/audiolm_tokens.py`)
  SIZE   tiny        unit tests: a few tiny steps.
         quickstart  2 CPU cores: 4 layers of width 256 over the quickstart tokenizers' tokens
                     (semantic: 100 k-means clusters at 50 Hz; acoustic: the
                     `configs/soundstream.py:quickstart` codec, 8 levels x 256 codes at 50 Hz,
                     3 coarse levels); windows of 256 semantic tokens, 2 s (coarse), 1 s (fine).
         paper       Borsos et al. 2022: 12 layers, 16 heads, width 1024, MLP 4096, dropout 0.1,
                     T5 relative bias; 1024 semantic tokens at 25 Hz, SoundStream 12 x 1024 at
                     50 Hz with Q' = 4 coarse levels; 30 s semantic windows (750 tokens), 10 s
                     coarse, 3 s fine windows. Dropout's bits from the rbg generator
                     (`train.rng_impl`), cheap on GPU/TPU.
  _acoustic_only     the paper's ablation: no semantic tokens (the coarse stage sees only
                     acoustic tokens; with the fine stage it models audio alone).

The token datasets come from the tokenizers (`python -m launch.extract_tokens`):
  python -m launch.train --config=configs/audiolm.py:coarse_quickstart --workdir=runs/coarse \
      --config.data.semantic_dir=runs/tokens/semantic \
      --config.data.acoustic_dir=runs/tokens/acoustic
Set `--config.data.semantic_fingerprint` / `acoustic_fingerprint` to pin the tokenizers: tokens
from any other are then refused. Each stage's model vocabulary is its own ids (derived from
the data fields: `audiojax/data/audiolm_tokens.py`).
"""

import ml_collections

from audiojax.train import sharding

SIZES = ("tiny", "quickstart", "paper")


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or "semantic_quickstart"
  stage, _, size = variant.partition("_")
  acoustic_only = size.endswith("_acoustic_only")
  size = size.removesuffix("_acoustic_only")
  if stage not in ("semantic", "coarse", "fine") or size not in SIZES:
    raise ValueError(f"unknown audiolm variant {variant!r}: use STAGE_SIZE with STAGE in "
                     f"semantic, coarse, fine and SIZE in {', '.join(SIZES)}, optionally "
                     "followed by _acoustic_only")
  if acoustic_only and stage == "semantic":
    raise ValueError("the acoustic_only ablation has no semantic stage")

  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = ml_collections.ConfigDict(dict(
      name="audiolm_tokens", stage=stage, semantic_dir="", acoustic_dir="",
      semantic_fingerprint="", acoustic_fingerprint="",
      semantic_vocab=1024, codebook_size=1024, num_levels=12, coarse_levels=4,
      semantic_rate_hz=25.0, acoustic_rate_hz=50.0, deduplicate=True,
      semantic_tokens=750, coarse_seconds=10.0, fine_seconds=3.0, stage_vocab=True,
      batch_size=256, train_split="train", eval_split="validation", test_split="test",
      num_threads=2))
  data = config.data
  # The stage's own ids (audiolm_tokens.Layout.stage_ids): semantic ids + SEP + PAD; semantic
  # ids + the Q' coarse levels' codes + SEP + PAD; every level's codes + PAD.
  vocab_size = {
      "semantic": data.get_ref("semantic_vocab") + 2,
      "coarse": data.get_ref("semantic_vocab")
      + data.get_ref("coarse_levels") * data.get_ref("codebook_size") + 2,
      "fine": data.get_ref("num_levels") * data.get_ref("codebook_size") + 1}[stage]
  config.model = ml_collections.ConfigDict(dict(
      name="transformer",
      vocab_size=vocab_size,
      num_layers=12, embed_dim=1024, num_heads=16, head_dim=0, mlp_dim=4096, norm="rms",
      mlp="gelu", position="t5_bias", num_buckets=32, max_distance=128,
      rope_max_wavelength=10_000.0, tie_embeddings=True, vocab_multiple=128, dropout_rate=0.1,
      attention_dropout_rate=0.0, attention_impl=None, dtype="float32", scan_layers=False,
      remat="none"))
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=3e-4, schedule="cosine", warmup_steps=5000, final_lr_fraction=0.1,
      b1=0.9, b2=0.98, eps=1e-9, weight_decay=0.01, clip_norm=1.0,
      frozen=""))
  config.mesh = sharding.mesh_config()
  config.sharding_rules = sharding.RULES
  config.train = ml_collections.ConfigDict(dict(
      num_steps=1_000_000, microbatches=1, log_every=100, checkpoint_every=5000,
      init_from="", init_exclude="",
      keep_checkpoints=3, async_checkpoints=True, eval_every=20_000, eval_max_examples=256,
      sample_every=0, sample_seconds=0.0, sample_temperature=1.0, num_samples_to_write=0,
      # Dropout's random bits: "rbg" on accelerators (trainer.make_train_step), "" threefry.
      rng_impl="rbg"))

  if size == "quickstart":
    data.update(semantic_vocab=100, codebook_size=256, num_levels=8, coarse_levels=3,
                semantic_rate_hz=50.0, semantic_tokens=256, coarse_seconds=2.0,
                fine_seconds=1.0, batch_size=8)
    config.model.update(num_layers=4, embed_dim=256, num_heads=4, mlp_dim=1024,
                        vocab_multiple=1, dropout_rate=0.0)
    config.optimizer.update(learning_rate=1e-3, warmup_steps=200)
    config.train.update(num_steps=2000, log_every=50, checkpoint_every=500, eval_every=1000,
                        eval_max_examples=32, rng_impl="")
  elif size == "tiny":
    data.update(semantic_vocab=8, codebook_size=16, num_levels=3, coarse_levels=2,
                semantic_rate_hz=50.0, semantic_tokens=16, coarse_seconds=0.1,
                fine_seconds=0.1, batch_size=2)
    config.model.update(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, vocab_multiple=1,
                        dropout_rate=0.0)
    config.optimizer.update(learning_rate=1e-3, warmup_steps=1)
    config.train.update(num_steps=4, log_every=2, checkpoint_every=2, eval_every=4,
                        eval_max_examples=2, async_checkpoints=False, rng_impl="")
  if acoustic_only:
    data.semantic_vocab = 0
  return config
