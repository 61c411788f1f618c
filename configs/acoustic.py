"""Text-to-speech acoustic model: espeak's phoneme frames -> a vocoder's log-mel frames.

The first stage of the two-stage text-to-speech (audiojax/models/acoustic.py); the second is a
log-mel WaveNet vocoder of configs/wavenet.py with the same frames (hop, bands, excitation),
by default the quick start's:

  python -m launch.train --config=configs/wavenet.py:quickstart --workdir=runs/wavenet_quickstart
  python -m launch.train --config=configs/acoustic.py:quickstart --workdir=runs/acoustic
  python -m launch.synthesize --workdir=runs/acoustic --vocoder=runs/wavenet_quickstart \
      --text="The cat sat on the mat." --speaker=3 --output=cat.wav

Variants (`--config=configs/acoustic.py:VARIANT`):
  quickstart  the quick start vocoder's frames (hop 128 = 8 ms, 40 log-mel bands, Praat's
              excitation with the period channel) from espeak's linguistic features
              (previous/current/next phoneme, stress, position in and duration of the
              phoneme; audiojax/data/phonemes.py), the excitation's F0 and the speaker:
              6 residual convs of width 256 (kernel 5, dilations 1, 2, 4, 8, 1, 2: 73 frames
              = 0.58 s of context), 2-s crops, batch 8, 3000 steps on 2 CPU cores.
              Measured (2026-12-06, 16 min on 2 cores, 11 of them shared with another run):
              validation loss 0.038; 16 held-out test sentences through the quick start's
              vocoder at T 0.85: phone error rate 34.5-38.3% (espeak's own readings 2.6%,
              the vocoder given espeak's own log-mel 36.0-37.9%; README, WaveNet
              applications).
  tiny        unit tests: the frames of configs/wavenet.py:quickstart_tiny (hop 16, 8 bands).
  cloning     voice cloning: quickstart conditioned not on the speaker id but on a vector a
              jointly trained speaker encoder computes from 2 s of another utterance of the
              speaker (configs/wavenet.py:tts_cloning's); speaks through a vocoder without
              speaker ids (configs/wavenet.py:quickstart --config.model.num_speakers=0):
              python -m launch.synthesize --workdir=DIR --vocoder=VOCODER --text="..." \
                  --reference=voice.wav --output=a.wav
  cloning_tiny  unit tests.
"""

import ml_collections

from audiojax.data import phonemes, pitch
from audiojax.train import sharding


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or "quickstart"
  if variant not in ("quickstart", "tiny", "cloning", "cloning_tiny"):
    raise ValueError(f"unknown acoustic variant {variant!r}: use quickstart, tiny, cloning or "
                     "cloning_tiny")
  tiny = variant.endswith("tiny")
  config = ml_collections.ConfigDict()
  config.seed = 0
  num_phonemes = 128
  config.model = ml_collections.ConfigDict(dict(
      name="acoustic",
      num_mels=8 if tiny else 40,
      linguistic_channels=phonemes.num_features(num_phonemes),
      hop=16 if tiny else 128,
      excitation_channels=pitch.EXCITATION_CHANNELS,
      sample_rate_hz=16000,
      num_speakers=16,  # >= the dataset's speaker count; 0 = unconditional.
      speaker_embedding_dim=0,  # > 0: a speaker vector from reference audio (cloning).
      width=16 if tiny else 256,
      num_layers=2 if tiny else 6,
      kernel_size=5,
      dilations=(1, 2, 4, 8),
      dropout_rate=0.1,
      dtype="float32",
  ))
  # Data: random crops of the built-in corpus with their phoneme frames and excitation.
  config.data = ml_collections.ConfigDict(dict(
      name="espeak_speech/tiny" if tiny else "espeak_speech",
      data_dir="",  # Default: $AUDIOJAX_DATA_DIR or ~/.cache/audiojax/data.
      sample_rate_hz=config.model.get_ref("sample_rate_hz"),
      crop_samples=256 if tiny else 32000,
      batch_size=2 if tiny else 8,
      train_split="train",
      eval_split="validation",
      test_split="test",
      skip_bad_files=False,
      num_threads=2,
      condition="phonemes",
      condition_hop=config.model.get_ref("hop"),
      num_phonemes=num_phonemes,
      phonemes="",  # "": the trainer fills in the train split's inventory.
      excitation_channels=config.model.get_ref("excitation_channels"),
  ))
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-3, schedule="cosine", warmup_steps=2 if tiny else 200,
      final_lr_fraction=0.05, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, clip_norm=1.0,
      frozen=""))
  config.mesh = sharding.mesh_config()
  config.sharding_rules = sharding.RULES
  config.train = ml_collections.ConfigDict(dict(
      num_steps=6 if tiny else 3000,
      microbatches=1,
      log_every=2 if tiny else 100,
      checkpoint_every=2 if tiny else 1000,
      keep_checkpoints=3,
      init_from="", init_exclude="",
      async_checkpoints=not tiny,
      eval_every=0 if tiny else 1000,
      eval_max_examples=2 if tiny else 64,
      sample_every=0,  # The acoustic model writes no audio itself (launch.synthesize does).
  ))
  if variant.startswith("cloning"):
    config.model.update(num_speakers=0, speaker_embedding_dim=4 if tiny else 64,
                        reference_mels=8 if tiny else 40, reference_hop=160)
    config.data.reference_samples = 640 if tiny else 32000
  return config
