"""SoundStream codec on the built-in speech corpus (RVQ with EMA codebooks, GAN training).

Variants (`--config=configs/soundstream.py:VARIANT`):
  tiny        unit tests: a few tiny steps.
  quickstart  a small codec on 2 CPU cores:
              python -m launch.train --config=configs/soundstream.py:quickstart --workdir=runs/ss
  paper16k    AudioLM's acoustic tokenizer: 16 kHz, strides (2, 4, 5, 8) = 320 samples per
              frame (50 Hz), 12 quantizers x 1024 codes = 6 kbps at 12 levels.
  paper24k    SoundStream's codec: 24 kHz, strides (2, 4, 5, 8) (75 Hz), 24 x 1024
              (3 kbps with 4 levels ... 18 kbps with 24) through quantizer dropout.
  Ablations of the paper, all at 24 kHz and 6 kbps unless said:
  nq8x1024, nq16x32, nq80x2   quantizers x codebook size at a fixed 6 kbps;
  no_dropout_6kbps            no quantizer dropout (one model per bitrate);
  latency_7_5ms, latency_15ms, latency_30ms   strides for 7.5 / 15 / 30 ms frames;
  small_encoder               half the encoder channels (the paper: the decoder matters more).

Every variant but `tiny` trains on speech and music: the built-in corpora mixed 60/40
(`data.name="espeak_speech+music21_audio"`, `data.mix_weights`); evaluate each on its own with
`python -m launch.evaluate --workdir=DIR --dataset=espeak_speech` (or `music21_audio`).

The codec has no training samples to write; evaluation reports the multi-scale mel distance
and SI-SNR.
"""

import ml_collections

from audiojax.train import sharding


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or "quickstart"
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict(dict(
      name="soundstream",
      sample_rate_hz=16000,
      channels=32,
      strides=(2, 4, 5, 8),
      embedding_dim=128,
      num_quantizers=12,
      codebook_size=1024,
      quantizer_dropout=True,
      full_levels_share=0.0,  # The paper: every example draws its levels (DAC: 0.5).
      codebook_decay=0.99,
      # Restart codes used under a tenth as often as the mean (the absolute threshold of 2
      # vectors per batch used before 2026-12-07 restarted nearly every code at every step:
      # the quick start's batch holds 80 frames for 256 codes; paper16k's 480 for 1024).
      dead_code_fraction=0.1,
      wave_discriminator_channels=16,
      wave_discriminator_downsamples=4,
      stft_discriminator_channels=32,
      stft_window=1024,
      stft_hop=256,
      reconstruction_weight=1.0,
      adversarial_weight=1.0,
      feature_weight=100.0,
      commitment_weight=1.0,
      dtype="float32",
  ))
  config.data = ml_collections.ConfigDict(dict(
      name="espeak_speech+music21_audio", mix_weights=(0.6, 0.4), data_dir="",
      sample_rate_hz=16000, crop_samples=9600,
      batch_size=16, train_split="train", eval_split="validation", test_split="test",
      skip_bad_files=False, num_threads=2))
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-4, schedule="constant", warmup_steps=100, final_lr_fraction=1.0,
      b1=0.5, b2=0.9, eps=1e-8, weight_decay=0.0, clip_norm=0.0,
      frozen=""))
  config.mesh = sharding.mesh_config()
  config.sharding_rules = sharding.RULES
  config.train = ml_collections.ConfigDict(dict(
      num_steps=500_000, microbatches=1, log_every=100, checkpoint_every=2000,
      init_from="", init_exclude="",
      keep_checkpoints=3, async_checkpoints=True, eval_every=10_000, eval_max_examples=64,
      sample_every=0, sample_seconds=0.0, sample_temperature=1.0, num_samples_to_write=0))

  at_24k = dict(sample_rate_hz=24000, num_quantizers=24)
  six_kbps_24k = dict(sample_rate_hz=24000, num_quantizers=8, quantizer_dropout=True)
  if variant == "paper16k":
    pass
  elif variant == "paper24k":
    config.model.update(at_24k)
  elif variant == "nq8x1024":
    config.model.update(six_kbps_24k, codebook_size=1024)
  elif variant == "nq16x32":
    config.model.update(six_kbps_24k, num_quantizers=16, codebook_size=32)
  elif variant == "nq80x2":
    config.model.update(six_kbps_24k, num_quantizers=80, codebook_size=2)
  elif variant == "no_dropout_6kbps":
    config.model.update(six_kbps_24k, quantizer_dropout=False)
  elif variant in ("latency_7_5ms", "latency_15ms", "latency_30ms"):
    # 24 kHz: 180, 360, 720 samples per frame; codes per frame keep 6 kbps.
    strides, nq = {"latency_7_5ms": ((2, 2, 5, 9), 4), "latency_15ms": ((2, 4, 5, 9), 8),
                   "latency_30ms": ((4, 4, 5, 9), 16)}[variant]
    config.model.update(sample_rate_hz=24000, strides=strides, num_quantizers=nq,
                        quantizer_dropout=False)
  elif variant == "small_encoder":
    config.model.update(six_kbps_24k, channels=16)
  elif variant == "quickstart":
    # 16 channels, not 8: on a quiet 2-core CPU, 300 steps took 2:15 instead of 1:54 and
    # reached validation mel distance 259.7 instead of 299.7 (2026-11-27).
    config.model.update(channels=16, embedding_dim=32, num_quantizers=8, codebook_size=256,
                        wave_discriminator_channels=8, wave_discriminator_downsamples=3,
                        stft_discriminator_channels=8)
    config.data.update(crop_samples=6400, batch_size=4)
    config.optimizer.update(learning_rate=3e-4, warmup_steps=50)
    config.train.update(num_steps=3000, log_every=50, checkpoint_every=500, eval_every=1000,
                        eval_max_examples=16)
  elif variant == "tiny":
    config.model.update(channels=2, strides=(2, 4), embedding_dim=8, num_quantizers=3,
                        codebook_size=16, wave_discriminator_channels=2,
                        wave_discriminator_downsamples=1, stft_discriminator_channels=2,
                        stft_window=256, stft_hop=64)
    config.data.update(name="espeak_speech/tiny", mix_weights=(), crop_samples=1024,
                       batch_size=2)
    config.optimizer.update(learning_rate=1e-3, warmup_steps=1)
    config.train.update(num_steps=4, log_every=2, checkpoint_every=2, eval_every=0,
                        eval_max_examples=2, async_checkpoints=False)
  else:
    raise ValueError(f"unknown soundstream variant {variant!r}")
  if variant not in ("tiny", "quickstart", "paper16k"):
    config.data.sample_rate_hz = config.model.sample_rate_hz
  return config
