"""WaveNet on the built-in espeak speech corpus (mu-law 256-way softmax, speaker-conditioned).

Variants (`--config=configs/wavenet.py:VARIANT`):
  tiny        unit tests: a few tiny steps.
  quickstart  what ./launch/quickstart.sh trains on 2 CPU cores in about 7 minutes:
              python -m launch.train --config=configs/wavenet.py:quickstart --workdir=runs/wavenet
              a vocoder, the last of the chain below (vocoder -> vocoder_pitch -> vocoder_period
              -> vocoder_lpc -> quickstart, each the one before plus one thing): vocoder_lpc
              with LPCNet's softmax over the excitation (model.lpc_excitation: the sample minus
              its prediction from the log-mel envelope), a frame network (3 convs over the
              log-mel frames, 128 features appended to each: model.condition_layers) and
              LPCNet's pre-emphasis (model.pre_emphasis=0.85: it models x[n] - 0.85 x[n - 1]
              and its draws are de-emphasised, so their noise falls with frequency). Its
              resyntheses of held-out clips are written by the trainer and by
              launch.sample --resynthesize=test. Measured (2 cores, 1600 steps, 20 two-second
              resyntheses of the test split at T 0.85, phone error rate by the noisy recognizer
              against what it hears in the originals): PER 34.2-34.6% against vocoder_period's
              72.9-73.3%, mel distance 0.76 vs 1.110, STOI 0.744-0.751 vs 0.646, HNR 6.6 vs
              5.6-6.0 dB, pYIN voiced 57-59% vs 67% of loud frames (without pre-emphasis: PER
              35.5-36.0%, mel distance 0.86, STOI 0.70-0.71, voiced 46%; README, quick start).
              Its bits per sample are the (pre-emphasised) excitation's (5.4-5.5), not
              comparable with the other variants'.
  quickstart_tiny  unit tests.
  unconditional  the quick start's size and recipe with the speaker as the only conditioning:
              18 layers (receptive field 1023 samples, 64 ms), 1600 steps of 4 x 2000 samples.
              Measured (2 cores): test 4.37 bits/sample after these 1600 steps (9.5 min);
              4.26 (validation) after 2500 steps. Samples at temperature 0.85 have speech's
              rhythm (bursts and pauses) but a noise-like spectrum: voicing (harmonics) needs
              much longer training than a CPU quick start. The base of the ablations
              (configs/ablations.py).
  mol         unconditional-size with a discretized mixture of 10 logistics over 16-bit audio
              instead of the 256-way mu-law softmax (inputs: amplitudes). Compare runs by
              mu_law_bits_per_sample (bits_per_sample is per 16-bit level here; see
              audiojax/models/wavenet.py).
  vocoder     unconditional-size, locally conditioned on 40 log-mel bands at 8 ms frames (hop 128
              samples; the task computes them from the batch audio), upsampled by transposed
              convs (strides 4, 4, 8), plus the speaker. The trainer's samples are
              resyntheses of held-out clips of the eval split (next to the originals).
  vocoder_tiny  unit tests: the tiny model with 8 log-mel bands at hop 16 (strides 4, 4).
  vocoder_pitch  vocoder plus a pitch-synchronous excitation at the sample rate (Praat's
              glottal pulses of the audio: audiojax/data/pitch.py), packed at the end of each
              frame (model.excitation_channels); crops of 2048 samples (whole frames).
              Measured (2 cores, 1600 steps, the excitation's first 4 channels, without the
              period): validation 4.34 bits/sample (vocoder: 4.32), resyntheses unvoiced.
  vocoder_pitch_tiny  unit tests.
  vocoder_period  vocoder_pitch plus the samples about one pitch period back as inputs
              (model.period_input, 3 taps), with each log-mel frame repeated over its samples
              instead of the transposed-conv upsampler: it continues its own last period, so
              its resyntheses are voiced (the quick start until 2026-12-05). Measured (2 cores,
              1600 steps): validation 4.317 bits/sample; 20 two-second resyntheses at T 0.85:
              voiced 67%, HNR 5.6-6.0 dB, but phone error rate 72.9-73.3% (README). Repeating
              the frames rather than upsampling them (0.32M parameters instead of 0.37M) made
              them louder throughout (loud frames 0.97-0.98 against 0.93, with dropouts),
              more voiced (0.67 vs 0.54-0.56) and less unintelligible (PER 72-73% vs 80-82%).
  vocoder_period_tiny  unit tests.
  vocoder_lpc  vocoder_period plus LPCNet's linear prediction: a 16th-order predictor fitted
              to each frame's log-mel envelope (model.lpc_order), its prediction of the next
              sample embedded, and per period tap the prediction plus the excitation one period
              back (model.lpc_period). Measured (2 cores, 1600 steps): validation 3.944
              bits/sample, PER 37.0-40.1%, but whispered: voiced 33-36%, HNR 3.9-4.1 dB.
  vocoder_lpc_tiny  unit tests.
  tts         text-to-speech: unconditional-size, conditioned on linguistic features from
              espeak's phoneme alignment of the corpus (previous/current/next phoneme, stress,
              position in and duration of the phoneme; audiojax/data/phonemes.py) at 5 ms frames
              (hop 80, repeated to the sample rate), plus the speaker, and like the quick start
              on the pitch-synchronous excitation with the samples one period back as inputs
              (the F0 is espeak's: launch.synthesize takes it from espeak's reading of the
              text). Speak new text with
              python -m launch.synthesize --workdir=DIR --text="..." --speaker=K --output=a.wav
              Unintelligible (phone error rate 79%, README); the two-stage text-to-speech,
              configs/acoustic.py's log-mel spoken by the quick start, scores 34-38%.
  tts_tiny    unit tests: the tiny model with phoneme features at hop 16.
  tts_cloning tts with voice cloning: conditioned on a speaker vector that a jointly trained
              speaker encoder computes from 2 s of another utterance of the same speaker
              (audiojax/models/wavenet.py), not on the speaker id; speak in a new voice with
              python -m launch.synthesize ... --reference=voice.wav
  tts_cloning_tiny  unit tests.
  music       unconditional-size on the built-in music corpus (Bach chorales rendered by 3
              synthesized instruments, audiojax/data/music21_audio.py), conditioned on the
              instrument: python -m launch.sample --workdir=DIR --output_dir=OUT --speaker=K
              plays instrument K (0 plucked string, 1 organ, 2 piano).
  music_unconditional  the same without the instrument.
  music_tiny  unit tests.
  music_score  music from a score: music conditioned also on the notes (per 8-ms frame each
              MIDI pitch's velocity while held and its decay since the onset; at the sample
              rate 8 harmonic oscillators per sounding note: audiojax/data/notes.py), trained
              on the built-in chorales' note events. Play a held-out piece, or any score:
              python -m launch.sample --workdir=DIR --output_dir=OUT --resynthesize=test
              python -m launch.sample --workdir=DIR --output_dir=OUT --score=bach/bwv66.6 \
                  --speaker=1 --seconds=10
              data.note_phase="random" starts the oscillators at random phases, not in phase
              with the corpus' organ and piano partials (README).
  music_score_tiny  unit tests: hop 16, 2 harmonics.
  music_context  music with a context stack (the paper's section 2.6; audiojax/models/
              wavenet.py): a small dilated stack over the last 2 s of audio (16-ms frames,
              each the log spectrum of its last 64 ms) conditions every layer, whose own
              receptive field is 64 ms; trained on the last 2048 samples of 2.2-s windows.
              Samples as music's.
  music_context_tiny  unit tests: hop 16, 4 frames of context.
  super_resolution  unconditional-size, conditioned on the audio's low band at 8 kHz (the task
              low-passes and decimates the batch audio; 32 low-rate samples per 64-sample
              frame, transposed-conv upsampling): 8 kHz -> 16 kHz with
              python -m launch.super_resolve --workdir=DIR --input=low.wav --output=hi.wav
  super_resolution_tiny  unit tests: hop 16, 8 low-rate samples per frame.
  paper       the paper's stack: dilations 1..512 x 3 (30 layers), kernel 2, residual 64,
              gate 128, skip 256, 256-way mu-law at 16 kHz (receptive field 3070 samples,
              192 ms). Needs a GPU/TPU: python -m launch.train \
              --config=configs/wavenet.py:paper --workdir=runs/wavenet_paper

Any field can be overridden: --config.train.num_steps=500 --config.data.batch_size=8.
"""

import ml_collections

from audiojax.data import notes, phonemes, pitch
from audiojax.train import sharding

# The vocoder variants (and their "_tiny" versions), each the one before plus one thing.
VOCODERS = ("vocoder", "vocoder_pitch", "vocoder_period", "vocoder_lpc", "quickstart")


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or "quickstart"
  config = ml_collections.ConfigDict()
  config.seed = 0

  # Model: the paper's WaveNet (see audiojax/models/wavenet.py).
  config.model = ml_collections.ConfigDict(dict(
      name="wavenet",
      num_classes=256,
      residual_channels=64,
      gate_channels=128,
      skip_channels=256,
      head_channels=256,
      kernel_size=2,
      dilation_cycles=3,
      max_dilation=512,
      num_speakers=16,  # >= the dataset's speaker count; 0 = unconditional.
      dtype="float32",  # Compute dtype ("bfloat16" on GPU/TPU); params stay float32.
      remat="none",  # Recompute layer activations in the backward pass: none | full | dots.
      input_noise=0.0,  # Training: noise (mu-law classes) on the inputs, not the targets.
      amplitude_input=False,  # Softmax: class embeddings + a 1x1 of the class's amplitude.
      lpc_order=0,  # > 0: embed a linear prediction from the log-mel envelope (LPCNet).
      lpc_period=False,  # With lpc_order and period_input: + the last period's excitation.
      lpc_excitation=False,  # With lpc_order: model the excitation s - p, not the sample.
      excitation_input=False,  # With lpc_order: embed the input's excitation s - p too.
      pre_emphasis=0.0,  # > 0: model x[n] - a x[n - 1], de-emphasise what is drawn (LPCNet).
      # Local conditioning: K > 0 convs over frames (width, kernel 3) before upsampling, their
      # features appended to the frame's (WaveRNN's / LPCNet's conditioning network).
      condition_layers=0,
      condition_width=128,
      # Context stack (the paper's section 2.6): samples per frame of past audio (0 = none;
      # context_layers, context_width: the model's defaults unless the variant sets them);
      # the loss counts the last context_crop positions of each window only (0 = all).
      context_hop=0,
      context_crop=0,
  ))

  # Data: random crops of the built-in corpus (see audiojax/data/pipeline.py).
  config.data = ml_collections.ConfigDict(dict(
      name="espeak_speech",
      data_dir="",  # Default: $AUDIOJAX_DATA_DIR or ~/.cache/audiojax/data.
      sample_rate_hz=16000,
      crop_samples=16000,
      batch_size=8,
      train_split="train",
      eval_split="validation",
      test_split="test",
      skip_bad_files=False,
      num_threads=2,
  ))

  # Optimizer: AdamW, warmup + cosine decay, global-norm clipping.
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-3,
      schedule="cosine",
      warmup_steps=500,
      final_lr_fraction=0.05,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      weight_decay=0.0,
      clip_norm=1.0,
      frozen="",  # Regexes of top-level modules left untrained.
  ))

  # Devices: data x fsdp x tensor (-1 = the rest) and the logical axis rules of the params.
  config.mesh = sharding.mesh_config()
  config.sharding_rules = sharding.RULES

  # Loop: logging, checkpoints, evals and audio samples (steps).
  config.train = ml_collections.ConfigDict(dict(
      num_steps=200_000,
      microbatches=1,  # Gradient accumulation: the batch in this many sequential pieces.
      log_every=100,
      checkpoint_every=1000,
      keep_checkpoints=3,
      init_from="",  # Fine-tuning: start from that run's parameters,
      init_exclude="",  # except these modules.
      async_checkpoints=True,
      eval_every=5000,
      eval_max_examples=64,
      sample_every=10_000,
      sample_seconds=2.0,
      sample_temperature=1.0,
      num_samples_to_write=2,
  ))

  if variant == "paper":
    pass
  elif variant == "unconditional":
    config.model.update(residual_channels=32, gate_channels=64, skip_channels=128,
                        head_channels=128, dilation_cycles=2, max_dilation=256)
    config.data.update(crop_samples=2000, batch_size=4)
    config.optimizer.update(learning_rate=3e-3, warmup_steps=100)
    config.train.update(num_steps=1600, log_every=50, checkpoint_every=400, eval_every=800,
                        eval_max_examples=16, sample_every=1600, sample_seconds=2.0,
                        sample_temperature=0.85)
  elif variant == "tiny":
    config.model.update(residual_channels=8, gate_channels=8, skip_channels=8,
                        head_channels=8, dilation_cycles=1, max_dilation=4)
    config.data.update(name="espeak_speech/tiny", crop_samples=256, batch_size=2)
    config.optimizer.update(warmup_steps=2)
    config.train.update(num_steps=6, log_every=2, checkpoint_every=2, eval_every=0,
                        eval_max_examples=2, sample_every=0, sample_seconds=0.01,
                        async_checkpoints=False)
  elif variant == "mol":
    config = get_config("unconditional")
    config.model.update(output="mol", num_mixtures=10, log_scale_min=-12.0)
  elif variant.removesuffix("_tiny") in VOCODERS:
    # Vocoders: log-mel conditioned, plus the speaker; each of VOCODERS is the one before plus
    # one thing (the pitch-synchronous excitation, the period taps, LPC, the excitation target
    # and a frame network).
    tiny = variant.endswith("tiny")
    level = VOCODERS.index(variant.removesuffix("_tiny"))
    config = get_config("tiny" if tiny else "unconditional")
    hop, mels, strides = (16, 8, (4, 4)) if tiny else (128, 40, (4, 4, 8))
    config.model.update(condition_channels=mels, condition_hop=hop,
                        condition_upsample="transposed", condition_strides=strides,
                        sample_rate_hz=config.data.get_ref("sample_rate_hz"))
    config.train.num_samples_to_write = 4  # Resyntheses of held-out clips (trainer).
    if level >= VOCODERS.index("vocoder_pitch"):
      config.model.excitation_channels = pitch.EXCITATION_CHANNELS
      config.data.update(condition="excitation", condition_hop=hop,
                         excitation_channels=config.model.get_ref("excitation_channels"),
                         crop_samples=-(-config.data.crop_samples // hop) * hop)
    if level >= VOCODERS.index("vocoder_period"):
      config.model.update(period_input=True, period_taps=3, period_dropout=0.0,
                          condition_upsample="repeat")
    if level >= VOCODERS.index("vocoder_lpc"):
      config.model.update(lpc_order=4 if tiny else 16, lpc_period=True)
    if level >= VOCODERS.index("quickstart"):
      config.model.update(lpc_excitation=True, condition_layers=1 if tiny else 3,
                          condition_width=8 if tiny else 128, pre_emphasis=0.85)
  elif variant in ("tts", "tts_tiny"):
    # Text-to-speech: conditioned on espeak's phonemes and durations (audiojax/data/phonemes.py)
    # at one frame per 5 ms, repeated to the sample rate, and on the speaker.
    config = get_config("unconditional" if variant == "tts" else "tiny")
    num_phonemes = 128
    config.model.update(condition_channels=phonemes.num_features(num_phonemes),
                        condition_hop=80 if variant == "tts" else 16, condition_upsample="repeat",
                        condition_source="phonemes")
    config.data.update(condition="phonemes", num_phonemes=num_phonemes,
                       phonemes="")  # "": the trainer fills in the train split's inventory.
    config.data.condition_hop = config.model.get_ref("condition_hop")
    config.train.sample_every = 0
    # And, as the quick start, the pitch-synchronous excitation of the audio (launch.synthesize:
    # of espeak's reading) with the samples one period back as inputs.
    config.model.update(excitation_channels=pitch.EXCITATION_CHANNELS, period_input=True,
                        period_taps=3, period_dropout=0.0,
                        sample_rate_hz=config.data.get_ref("sample_rate_hz"))
    config.data.excitation_channels = config.model.get_ref("excitation_channels")
  elif variant in ("tts_cloning", "tts_cloning_tiny"):
    # Voice cloning: tts conditioned on a speaker vector from 2 s of another utterance of the
    # speaker (a jointly trained speaker encoder) instead of the speaker id.
    tiny = variant == "tts_cloning_tiny"
    config = get_config("tts_tiny" if tiny else "tts")
    config.model.update(num_speakers=0, speaker_embedding_dim=4 if tiny else 64,
                        reference_mels=8 if tiny else 40, reference_hop=160,
                        speaker_classes=0,  # > 0: the encoder also names the speaker (README:
                        speaker_loss_weight=0.0)  # the conditioning ablation).
    config.data.reference_samples = 640 if tiny else 32000
  elif variant in ("music", "music_unconditional", "music_tiny"):
    # Music synthesis on the built-in Bach chorales, conditioned on the instrument (the
    # dataset's label takes the speaker's place) or on nothing.
    config = get_config("tiny" if variant == "music_tiny" else "unconditional")
    config.data.name = "music21_audio/tiny" if variant == "music_tiny" else "music21_audio"
    config.model.num_speakers = 0 if variant == "music_unconditional" else 3
  elif variant in ("music_score", "music_score_tiny"):
    # Music synthesis from a score: the music model conditioned on the notes (piano roll and
    # onsets per 8-ms frame, and harmonic oscillators at the sample rate: audiojax/data/
    # notes.py) and on the instrument.
    tiny = variant == "music_score_tiny"
    config = get_config("music_tiny" if tiny else "music")
    harmonics = 2 if tiny else 8
    config.model.update(condition_channels=notes.num_features(),
                        condition_hop=16 if tiny else 128, condition_upsample="repeat",
                        condition_source="notes", excitation_channels=1 + harmonics,
                        condition_layers=1 if tiny else 2, condition_width=8 if tiny else 128)
    # note_phase "random": the oscillators start at random phases, not in phase with the
    # corpus' organ and piano partials (README, music from a score).
    config.data.update(condition="notes", crop_samples=256 if tiny else 2048, note_phase="onset")
    config.data.condition_hop = config.model.get_ref("condition_hop")
    config.data.excitation_channels = config.model.get_ref("excitation_channels")
  elif variant in ("music_context", "music_context_tiny"):
    # The music model with a context stack: the last 2 s of audio as 16-ms frames (each the
    # spectrum of its last 64 ms) through 7 dilated layers into every layer's gates. Windows
    # hold all the stack reads and the crop the WaveNet trains on after it; some start before
    # the audio (silence there), as sampling does.
    tiny = variant == "music_context_tiny"
    config = get_config("music_tiny" if tiny else "music")
    hop, window, layers, crop = (16, 32, 2, 64) if tiny else (256, 1024, 7, 2048)
    config.model.update(context_hop=hop, context_window=window, context_layers=layers,
                        context_width=8 if tiny else 64, context_crop=crop)
    span = hop * (2**layers - 1) + window  # What the stack reads (`wavenet.context_span`).
    config.data.update(crop_samples=span + crop + 1, lead_in_samples=span)
  elif variant in ("super_resolution", "super_resolution_tiny"):
    # Conditioned on the audio's low band at 8 kHz: 32 low-rate samples per 64-sample frame.
    config = get_config("unconditional" if variant == "super_resolution" else "tiny")
    hop, strides = (64, (4, 4, 4)) if variant == "super_resolution" else (16, (4, 4))
    config.model.update(condition_channels=hop // 2, condition_hop=hop,
                        condition_upsample="transposed", condition_strides=strides,
                        condition_source="lowband", lowband_factor=2,
                        sample_rate_hz=config.data.get_ref("sample_rate_hz"))
  else:
    raise ValueError(f"unknown wavenet variant {variant!r}: use quickstart, quickstart_tiny, "
                     "unconditional, tiny, mol, vocoder, vocoder_pitch, vocoder_period, "
                     "vocoder_lpc (each also _tiny), tts, tts_tiny, tts_cloning, "
                     "tts_cloning_tiny, music, music_unconditional, music_tiny, music_score, "
                     "music_score_tiny, music_context, music_context_tiny, "
                     "super_resolution, super_resolution_tiny or paper")
  return config
