"""A speaker encoder trained alone (audiojax/models/speaker_encoder.py), for voice cloning.

It learns to name the speaker of 2-s crops of the built-in speech corpus (AM-softmax over the
training speakers); a voice-cloning WaveNet or acoustic model then takes its weights and keeps
them fixed, instead of training its own encoder jointly:

  python -m launch.train --config=configs/speaker_encoder.py:quickstart --workdir=runs/spk
  python -m launch.train --config=configs/wavenet.py:tts_cloning --workdir=runs/tts_spk \
      --config.train.init_from=runs/spk --config.optimizer.frozen=speaker_encoder

(the encoder's size and input, embedding_dim / reference_mels / reference_hop, must be the
cloning model's: speaker_embedding_dim / reference_mels / reference_hop; they are here).

Variants (`--config=configs/speaker_encoder.py:VARIANT`):
  tiny        unit tests: a few tiny steps on the tiny corpus.
  quickstart  2 CPU cores: the voice-cloning WaveNet's encoder (3 convs of 128, E = 64, 40
              log-mel bands every 10 ms), 1000 steps of 16 crops of 2 s.
"""

import ml_collections

from audiojax.train import sharding


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or "quickstart"
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict(dict(
      name="speaker_encoder",
      num_speakers=16,  # >= the corpus's speaker labels (the default corpus: 13).
      embedding_dim=64,
      sample_rate_hz=16000,
      reference_mels=40,
      reference_hop=160,
      scale=10.0,
      margin=0.2,
      dtype="float32",
  ))
  config.data = ml_collections.ConfigDict(dict(
      name="espeak_speech",
      data_dir="",  # Default: $AUDIOJAX_DATA_DIR or ~/.cache/audiojax/data.
      sample_rate_hz=16000,
      crop_samples=32000,
      batch_size=16,
      train_split="train",
      eval_split="validation",
      test_split="test",
      skip_bad_files=False,
      num_threads=2,
  ))
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-3, schedule="cosine", warmup_steps=100, final_lr_fraction=0.0,
      b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, clip_norm=1.0,
      frozen=""))
  config.mesh = sharding.mesh_config()
  config.sharding_rules = sharding.RULES
  config.train = ml_collections.ConfigDict(dict(
      num_steps=1000, microbatches=1, log_every=50, checkpoint_every=500, keep_checkpoints=2,
      init_from="", init_exclude="",
      async_checkpoints=True, eval_every=500, eval_max_examples=80, sample_every=0,
      sample_seconds=0.0, sample_temperature=1.0, num_samples_to_write=0))

  if variant == "quickstart":
    pass
  elif variant == "tiny":
    config.model.update(num_speakers=4, embedding_dim=4, reference_mels=8)
    config.data.update(name="espeak_speech/tiny", crop_samples=640, batch_size=2)
    config.optimizer.update(learning_rate=3e-3, warmup_steps=1)
    config.train.update(num_steps=4, log_every=2, checkpoint_every=2, eval_every=4,
                        eval_max_examples=2, async_checkpoints=False)
  else:
    raise ValueError(f"unknown speaker_encoder variant {variant!r}: use tiny or quickstart")
  return config
