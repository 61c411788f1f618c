"""A CTC phone recognizer on the built-in espeak speech corpus (to score generated speech).

The speech encoder of configs/semantic.py (audiojax/models/hubert.py) and a linear head over the
training split's phonemes + CTC's blank (audiojax/models/phone_recognizer.py), trained from
scratch with CTC on espeak's phoneme sequences (stress dropped, pauses left out:
audiojax/data/pipeline.py, `recognizer_phones`). The inventory is filled in by the trainer
(`data.phonemes`, `model.num_phonemes`) and saved with the run; audiojax/eval/phone_recognizer.py
loads a run and transcribes audio.

  python -m launch.train --config=configs/phone_recognizer.py:quickstart \
      --workdir=runs/phone_recognizer

Variants (`--config=configs/phone_recognizer.py:VARIANT`):
  tiny        unit tests: a few tiny steps.
  quickstart  2 CPU cores: the mel front end, 4 layers of width 256 (semantic.py's
              quickstart encoder, 3.5M parameters), 50 Hz frames, 2-s crops, 1600 steps of 8,
              light span masking. Measured (2026-11-26; 2 cores shared with another training
              run: 17 min 54 s, ~1.5 steps/s): greedy phone error rate 1.3% on validation
              (80 utterances), 2.1% on test (80), 21% on test_unseen_speakers (24, 3 voices
              never heard); trainer eval at step 1600 (40 validation utterances in 2-s crops)
              2.6%.
  noisy       quickstart with white noise on half the training crops (SNR 0-30 dB,
              model.noise_prob / noise_snr_db): still hears the phones of noisy speech, so
              it can grade generated speech (launch.synthesize / launch.sample --recognizer),
              which the clean quickstart cannot. Measured (2026-12-05, 2 cores, mostly shared
              with a training run: 11 min 20 s): trainer eval at step 1600 3.9% (quickstart:
              2.1%); on 20 two-second test clips with white noise at 20 / 10 / 5 / 0 dB SNR,
              2.5% / 15.7% / 30.3% / 53.8% against what it hears in the clean clips (the
              quickstart recognizer: 43.9% / 83.2% / 91.7% / 96.4%).
"""

import ml_collections

from audiojax.train import sharding


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or "quickstart"
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict(dict(
      name="phone_recognizer",
      num_phonemes=0,  # 0: the trainer sets the training split's inventory size.
      sample_rate_hz=16000,
      frontend="mel",
      conv_channels=256,
      num_mels=80,
      mel_subsampling=2,
      hop_samples=320,
      num_layers=4,
      embed_dim=256,
      num_heads=4,
      mlp_dim=1024,
      num_buckets=32,
      max_distance=128,
      dropout_rate=0.1,
      mask_prob=0.02,  # Training: spans of 5 masked frames, ~10% of the frames.
      mask_length=5,
      noise_prob=0.0,  # Training: share of crops with white noise at an SNR in noise_snr_db.
      noise_snr_db=(0.0, 30.0),
      dtype="float32",
      remat="none",
  ))
  config.data = ml_collections.ConfigDict(dict(
      name="espeak_speech",
      data_dir="",  # Default: $AUDIOJAX_DATA_DIR or ~/.cache/audiojax/data.
      sample_rate_hz=16000,
      crop_samples=32000,
      batch_size=8,
      train_split="train",
      eval_split="validation",
      test_split="test",
      skip_bad_files=False,
      num_threads=2,
      targets="phonemes",
      phonemes="",  # "": the trainer fills in the train split's inventory.
      max_phonemes=64,  # Phones per crop (espeak's fastest corpus speaker: ~16 per second).
  ))
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-3, schedule="cosine", warmup_steps=200, final_lr_fraction=0.0,
      b1=0.9, b2=0.98, eps=1e-6, weight_decay=0.01, clip_norm=5.0,
      frozen=""))
  config.mesh = sharding.mesh_config()
  config.sharding_rules = sharding.RULES
  config.train = ml_collections.ConfigDict(dict(
      num_steps=1600, microbatches=1, log_every=50, checkpoint_every=400, keep_checkpoints=3,
      init_from="", init_exclude="",
      async_checkpoints=True, eval_every=800, eval_max_examples=40, sample_every=0,
      sample_seconds=0.0, sample_temperature=1.0, num_samples_to_write=0))

  if variant == "quickstart":
    pass
  elif variant == "noisy":
    config.model.noise_prob = 0.5
  elif variant == "tiny":
    config.model.update(num_mels=16, conv_channels=16, num_layers=2, embed_dim=16, num_heads=2,
                        mlp_dim=32, dropout_rate=0.0, mask_prob=0.0)
    config.data.update(name="espeak_speech/tiny", crop_samples=6400, batch_size=2,
                       max_phonemes=16)
    config.optimizer.update(learning_rate=3e-3, warmup_steps=1)
    config.train.update(num_steps=4, log_every=2, checkpoint_every=2, eval_every=4,
                        eval_max_examples=2, async_checkpoints=False)
  else:
    raise ValueError(f"unknown phone_recognizer variant {variant!r}: use tiny, quickstart or noisy")
  return config
