"""The WaveNet application entry points end to end on tiny runs: vocoder resynthesis,
text-to-speech, super-resolution and the ablation sweep."""

import glob
import os
import re

import jax
import numpy as np
import pytest
import soundfile as sf
from tensorboard.backend.event_processing import event_accumulator

from audiojax.train import trainer
from tests.launch.test_cli import run


@pytest.fixture(scope="module")
def recognizer_workdir(tmp_path_factory, espeak_tiny_dir):
  """A tiny CTC phone recognizer run (configs/phone_recognizer.py:tiny): the --recognizer."""
  workdir = str(tmp_path_factory.mktemp("recognizer"))
  run("launch.train", "--config=configs/phone_recognizer.py:tiny", f"--workdir={workdir}",
      f"--config.data.data_dir={espeak_tiny_dir}", "--config.train.eval_every=0")
  return workdir


@pytest.mark.parametrize("variant", ["vocoder_tiny", "vocoder_pitch_tiny", "vocoder_lpc_tiny"])
def test_vocoder_resynthesises_a_recording(tmp_path, espeak_tiny_dir, variant):
  """A locally conditioned WaveNet (log-mel; log-mel and the pitch pulses; those with the
  period input and linear prediction from the log-mel): --condition_audio
  gives clips of the recording's length (test_cli: an unconditioned model refuses the flag)."""
  workdir = str(tmp_path / "vocoder")
  run("launch.train", f"--config=configs/wavenet.py:{variant}", f"--workdir={workdir}",
      f"--config.data.data_dir={espeak_tiny_dir}", "--config.train.num_steps=2",
      "--config.train.eval_every=0")
  recording = str(tmp_path / "in.wav")
  sf.write(recording, 0.1 * np.sin(np.arange(700) / 5.0).astype(np.float32), 8000)
  out = str(tmp_path / "resynth")
  missing = run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}",
                f"--condition_audio={recording}", check=False)
  assert missing.returncode != 0 and "--speaker=K" in missing.stderr
  run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}", "--num_samples=2",
      f"--condition_audio={recording}", "--speaker=1")
  for i in range(2):  # 700 samples at 8 kHz = 1400 at the model's 16 kHz.
    assert sf.info(os.path.join(out, f"sample_{i}.wav")).frames == 1400


def test_quickstart_vocoder_resynthesises_held_out_clips(tmp_path, espeak_tiny_dir,
                                                         recognizer_workdir):
  """The quick start's model (log-mel, excitation, period input, LPC, the softmax over the
  excitation, a frame network): the trainer writes
  resyntheses of held-out clips next to their originals, and so does --resynthesize=SPLIT,
  with --recognizer scoring them against the originals."""
  workdir = str(tmp_path / "quickstart")
  run("launch.train", "--config=configs/wavenet.py:quickstart_tiny", f"--workdir={workdir}",
      f"--config.data.data_dir={espeak_tiny_dir}", "--config.train.num_steps=2",
      "--config.train.eval_every=0", "--config.train.sample_every=2",
      "--config.train.sample_seconds=0.07", "--config.train.num_samples_to_write=2")
  for name in ("sample_0", "sample_1", "original_0", "original_1"):
    assert sf.info(os.path.join(workdir, "samples", "step_2", f"{name}.wav")).frames == 1120
  events = event_accumulator.EventAccumulator(
      glob.glob(os.path.join(workdir, "tensorboard", "events.*"))[0])
  events.Reload()
  for name in ("loud_fraction", "voiced_fraction"):  # How voiced the samples are.
    assert 0 <= events.Scalars(f"samples/{name}")[0].value <= 1
  out = str(tmp_path / "resynth")
  both = run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}",
             "--resynthesize=test", f"--condition_audio={out}.wav", check=False)
  assert both.returncode != 0 and "only one of" in both.stderr
  proc = run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}",
             "--resynthesize=test", "--num_samples=3", "--seconds=0.02",
             f"--recognizer={recognizer_workdir}")
  assert "the originals (speakers" in proc.stdout
  assert re.search(r"the resyntheses against their originals: mel distance \d+\.\d{3}",
                   proc.stdout), proc.stdout
  assert re.search(r"phone error rate (of the resyntheses .*: \d+\.\d%|: .* hears no phone)",
                   proc.stdout), proc.stdout
  for i in range(3):
    for name in ("sample", "original"):
      assert sf.info(os.path.join(out, f"{name}_{i}.wav")).frames == 320
  # Without either flag, the plain sampling command resynthesises the test split.
  plain = run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}_plain",
              "--num_samples=2", "--seconds=0.03")
  assert "resynthesising held-out clips of the test split" in plain.stdout
  assert sf.info(os.path.join(f"{out}_plain", "sample_1.wav")).frames == 480


def test_synthesize_speaks_text_and_rejects_bad_text(tmp_path, espeak_tiny_dir,
                                                     recognizer_workdir):
  """Text-to-speech: the clip spans espeak's reading of the text (whole frames), and with
  --recognizer its phone error rates are printed; empty text, phonemes the model never saw,
  unknown speakers and a recognizer run of another model are clear errors."""
  from audiojax.data import espeak_speech

  workdir = str(tmp_path / "tts")
  run("launch.train", "--config=configs/wavenet.py:tts_tiny", f"--workdir={workdir}",
      f"--config.data.data_dir={espeak_tiny_dir}", "--config.train.num_steps=2",
      "--config.train.eval_every=0")
  record = espeak_speech.prepare(espeak_tiny_dir, "tiny").as_data_source("train")[0]
  text, speaker = record["text"], int(record["speaker"])
  text = text.decode() if isinstance(text, bytes) else text
  out = str(tmp_path / "speech.wav")
  proc = run("launch.synthesize", f"--workdir={workdir}", f"--text={text}",
             f"--speaker={speaker}", f"--output={out}")
  info = sf.info(out)
  spoken = espeak_speech.speak(espeak_speech.corpus_speakers("tiny")[speaker], text)
  assert info.samplerate == 16000
  assert info.frames == -(-spoken["audio"].shape[0] // 16) * 16  # tts_tiny: hop 16.
  assert f"{len(spoken['phonemes'].split())} phonemes" in proc.stdout
  proc = run("launch.synthesize", f"--workdir={workdir}", f"--text={text}",
             f"--speaker={speaker}", f"--output={out}", f"--recognizer={recognizer_workdir}")
  heard = re.search(r"phones\): synthesis (\d+\.\d)%, espeak's own reading (\d+\.\d)%",
                    proc.stdout)
  assert heard, proc.stdout
  for flags, message in ((["--text=  "], "the text is empty"),
                         ([f"--text={text}", f"--recognizer={workdir}"],
                          "holds a wavenet model, not a phone recognizer"),
                         (["--text=yes", "--speaker=0"], "not in the model's inventory"),
                         (["--text=hello", "--speaker=99"], "the corpus has speakers 0..3"),
                         ([f"--text={text}", f"--reference={out}"],
                          "--reference needs a voice-cloning model")):
    proc = run("launch.synthesize", f"--workdir={workdir}", f"--output={out}", *flags,
               check=False)
    assert proc.returncode != 0 and message in proc.stderr + proc.stdout, flags


def test_synthesize_in_two_stages_through_a_vocoder(tmp_path, espeak_tiny_dir,
                                                   recognizer_workdir):
  """An acoustic model (configs/acoustic.py) speaks through the quick start's vocoder: the clip
  spans espeak's reading in whole frames; no --vocoder, a vocoder of other frames or another
  model as the vocoder, and a vocoder as the text-to-speech model are clear errors."""
  from audiojax.data import espeak_speech

  runs = {}
  for name, config in (("acoustic", "acoustic.py:tiny"), ("vocoder", "wavenet.py:quickstart_tiny"),
                       ("plain", "wavenet.py:vocoder_tiny")):
    runs[name] = str(tmp_path / name)
    run("launch.train", f"--config=configs/{config}", f"--workdir={runs[name]}",
        f"--config.data.data_dir={espeak_tiny_dir}", "--config.train.num_steps=2",
        "--config.train.eval_every=0", "--config.train.sample_every=0")
  text, out = "The cat sat on the mat.", str(tmp_path / "cat.wav")
  proc = run("launch.synthesize", f"--workdir={runs['acoustic']}", f"--vocoder={runs['vocoder']}",
             f"--text={text}", "--speaker=1", f"--output={out}", "--voiced_temperature=0.6",
             f"--recognizer={recognizer_workdir}")
  spoken = espeak_speech.speak(espeak_speech.corpus_speakers("tiny")[1], text)
  assert sf.info(out).frames == -(-spoken["audio"].shape[0] // 16) * 16
  assert f"acoustic model step 2, vocoder {runs['vocoder']} step 2" in proc.stdout
  assert re.search(r"phones\): synthesis \d+\.\d%", proc.stdout), proc.stdout
  # Held-out sentences of the test split, in one batch, scored together.
  out_dir = str(tmp_path / "held_out")
  proc = run("launch.synthesize", f"--workdir={runs['acoustic']}", f"--vocoder={runs['vocoder']}",
             "--held_out=2", f"--output_dir={out_dir}", f"--recognizer={recognizer_workdir}")
  assert sorted(os.listdir(out_dir)) == ["synthesis_0.wav", "synthesis_1.wav"]
  assert re.search(r"phone error rate over the 2 sentences \(\d+ phones\): synthesis \d+\.\d%",
                   proc.stdout), proc.stdout
  # Copy synthesis: the vocoder speaks the log-mel of espeak's own reading.
  proc = run("launch.synthesize", f"--workdir={runs['acoustic']}", f"--vocoder={runs['vocoder']}",
             f"--text={text}", "--speaker=1", f"--output={out}", "--espeak_mel")
  assert "espeak's log-mel, vocoder" in proc.stdout
  assert sf.info(out).frames == -(-spoken["audio"].shape[0] // 16) * 16
  for workdir, flags, message in (
      (runs["acoustic"], ["--held_out=2", f"--vocoder={runs['vocoder']}"], "--output_dir"),
      (runs["acoustic"], [], "pass --vocoder=RUN"),
      (runs["acoustic"], [f"--vocoder={runs['plain']}"], "excitation_channels=5 vs the vocoder's"),
      (runs["acoustic"], [f"--vocoder={recognizer_workdir}"], "not a WaveNet vocoder"),
      (runs["vocoder"], [f"--vocoder={runs['vocoder']}"], "not a text-to-speech model")):
    proc = run("launch.synthesize", f"--workdir={workdir}", f"--text={text}", "--speaker=1",
               f"--output={out}", *flags, check=False)
    assert proc.returncode != 0 and message in proc.stderr + proc.stdout, flags
  proc = run("launch.sample", f"--workdir={runs['acoustic']}", f"--output_dir={out_dir}",
             check=False)
  assert proc.returncode != 0 and "speaks through a vocoder" in proc.stderr


@pytest.mark.parametrize("two_stage", [False, True])
def test_synthesize_clones_the_voice_of_a_reference(tmp_path, espeak_tiny_dir, two_stage):
  """A voice-cloning TTS model (one WaveNet, or an acoustic model with a speaker encoder and a
  vocoder without speaker ids) speaks in the voice of a recording of a speaker it never heard
  (the tiny corpus' unseen speaker); it needs a usable reference, and the two-stage one a
  vocoder that takes no speaker ids."""
  from audiojax.data import espeak_speech

  workdir = str(tmp_path / "cloning")
  config = "acoustic.py:cloning_tiny" if two_stage else "wavenet.py:tts_cloning_tiny"
  train_flags = [f"--config.data.data_dir={espeak_tiny_dir}", "--config.train.num_steps=2",
                 "--config.train.eval_every=0"]
  run("launch.train", f"--config=configs/{config}", f"--workdir={workdir}", *train_flags)
  vocoder = []
  if two_stage:
    vocoder = [f"--vocoder={tmp_path / 'vocoder'}"]
    run("launch.train", "--config=configs/wavenet.py:quickstart_tiny",
        f"--workdir={tmp_path / 'vocoder'}", "--config.model.num_speakers=0",
        "--config.train.sample_every=0", *train_flags)
  builder = espeak_speech.prepare(espeak_tiny_dir, "tiny")
  unseen = builder.as_data_source("test_unseen_speakers")[0]
  voice = str(tmp_path / "voice.wav")
  sf.write(voice, unseen["audio"], 16000)
  train = builder.as_data_source("train")[0]
  text = train["text"].decode() if isinstance(train["text"], bytes) else train["text"]
  out = str(tmp_path / "cloned.wav")
  proc = run("launch.synthesize", f"--workdir={workdir}", f"--text={text}",
             f"--speaker={int(train['speaker'])}", f"--reference={voice}", f"--output={out}",
             *vocoder)
  assert f"the voice of {voice}" in proc.stdout and sf.info(out).frames > 0
  # The model takes the pitch: espeak's F0 contour moves to the reference's register.
  assert "F0 moved from espeak's" in proc.stdout and "to the reference's" in proc.stdout
  kept = run("launch.synthesize", f"--workdir={workdir}", f"--text={text}",
             f"--speaker={int(train['speaker'])}", f"--reference={voice}", f"--output={out}",
             "--noreference_pitch", *vocoder)
  assert "F0 moved" not in kept.stdout
  short = str(tmp_path / "short.wav")
  sf.write(short, unseen["audio"][:4000], 16000)
  cases = [([], "pass --reference"),
           ([f"--reference={short}"], "give at least 0.5 s of the voice")]
  if two_stage:  # A vocoder conditioned on speaker ids cannot take an unseen voice.
    ids = str(tmp_path / "ids")
    run("launch.train", "--config=configs/wavenet.py:quickstart_tiny", f"--workdir={ids}",
        "--config.train.sample_every=0", *train_flags)
    cases.append(([f"--reference={voice}", f"--vocoder={ids}"], "is conditioned on speakers"))
  for flags, message in cases:
    flags = flags if any(f.startswith("--vocoder") for f in flags) else flags + vocoder
    proc = run("launch.synthesize", f"--workdir={workdir}", f"--text={text}",
               f"--output={out}", *flags, check=False)
    assert proc.returncode != 0 and message in proc.stderr + proc.stdout, flags


@pytest.mark.slow  # ~40 s on 2 cores; the lowband conditioning itself is tested in models/.
def test_super_resolve_writes_the_full_rate_and_scores_it(tmp_path, espeak_tiny_dir):
  workdir = str(tmp_path / "superres")
  run("launch.train", "--config=configs/wavenet.py:super_resolution_tiny",
      f"--workdir={workdir}", f"--config.data.data_dir={espeak_tiny_dir}",
      "--config.train.num_steps=2", "--config.train.eval_every=0")
  original = str(tmp_path / "original.wav")
  sf.write(original, 0.3 * np.sin(np.arange(1600) / 3.0).astype(np.float32), 16000)
  low = str(tmp_path / "low.wav")
  sf.write(low, 0.3 * np.sin(np.arange(800) / 1.5).astype(np.float32), 8000)
  out = str(tmp_path / "hi.wav")
  proc = run("launch.super_resolve", f"--workdir={workdir}", f"--input={low}",
             f"--output={out}", f"--reference={original}")
  info = sf.info(out)
  assert info.samplerate == 16000 and info.frames == 1600
  assert "super-resolution: LSD" in proc.stdout and "resampling: LSD" in proc.stdout


@pytest.mark.slow  # ~40 s on 2 cores (two runs trained and evaluated in one process).
def test_ablate_runs_rows_and_writes_the_table(tmp_path, espeak_tiny_dir):
  workdir = str(tmp_path / "ablate")
  proc = run("launch.ablate", "--sweep=wavenet", "--base=tiny", f"--workdir={workdir}",
             "--num_steps=2", "--eval_examples=2",
             "--rows=dilated x1,non-dilated (3 layers),speaker embedding", "--probe_clips=3",
             "--probe_seconds=0.05", "--probe_temperature=0.7", "--probe_examples=12",
             f"--data_dir={espeak_tiny_dir}")
  with open(os.path.join(workdir, "results.md")) as f:
    table = f.read()
  assert table in proc.stdout and "real test utterances: " in table
  assert "3 samples of 0.05 s per row, temperature 0.7" in table
  rows = [line for line in table.splitlines() if line.startswith("| dilated x1")
          or line.startswith("| non-dilated") or line.startswith("| speaker embedding")]
  assert len(rows) == 3
  # Receptive fields: dilations 1, 2, 4 (8 samples) vs 3 layers of dilation 1 (4).
  assert "| 8 |" in rows[0] and "| 4 |" in rows[1]
  for row in rows:  # Speaker-probe accuracy of 3 samples (both ways): 0, 1/3, 2/3 or 1; too
    # short for pYIN's voicing.
    for probe in row.split("|")[-4:-2]:
      assert probe.strip() in ("0.00", "0.33", "0.67", "1.00"), row
    assert row.split("|")[-2].strip() == "-", row


def test_every_sweep_row_can_be_named_by_rows_and_has_its_own_workdir():
  from configs import ablations

  for sweep in ablations.SWEEPS:
    names = list(ablations.get_sweep(sweep, "tiny"))
    assert not [name for name in names if "," in name], names  # --rows splits at commas.
    assert len({ablations.row_key(name) for name in names}) == len(names), names


@pytest.mark.slow  # ~1 min on 2 cores: a tiny speaker encoder and five text-to-speech runs.
def test_ablate_conditioning_sweep_probes_resyntheses(tmp_path, espeak_tiny_dir):
  workdir = str(tmp_path / "ablate_conditioning")
  proc = run("launch.ablate", "--sweep=conditioning", "--base=tiny", f"--workdir={workdir}",
             "--num_steps=2", "--eval_examples=2", "--probe_clips=2", "--probe_seconds=0.07",
             "--probe_examples=12", f"--data_dir={espeak_tiny_dir}",
             "--probe_split=train")  # The tiny corpus' test phonemes are not all in train's.
  rows = [line for line in proc.stdout.splitlines() if line.startswith("| tts: ")]
  assert [row.split("|")[1].strip() for row in rows] == [
      "tts: no speaker conditioning", "tts: speaker id", "tts: speaker embedding (tts_cloning)",
      "tts: speaker embedding + speaker loss", "tts: speaker embedding from the frozen encoder"]
  for row in rows:  # Probe of 2 resyntheses (from phonemes; the last given speaker vectors).
    for probe in row.split("|")[-4:-2]:
      assert probe.strip() in ("0.00", "0.50", "1.00"), row
  # The speaker encoder's row (no bits, no probe) and its accuracy below the table; the last
  # row's encoder is that run's, untouched by its own training.
  encoder = [line for line in proc.stdout.splitlines()
             if line.startswith("| speaker encoder (trained alone) |")]
  assert len(encoder) == 1 and encoder[0].split("|")[2].strip() == "-", encoder
  assert "speaker encoder (trained alone): names the speaker of test crops with accuracy" in (
      proc.stdout)

  def encoder_params(row):
    config = trainer.load_config(os.path.join(workdir, row))
    *_, variables, _ = trainer.restore_variables(config, os.path.join(workdir, row))
    return variables["params"]["speaker_encoder"]

  alone = encoder_params("speaker_encoder_trained_alone")
  frozen = encoder_params("tts_speaker_embedding_from_the_frozen_encoder")
  for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(frozen), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # ~3 min on 2 cores: 10 tiny vocoders trained, evaluated and resynthesising.
def test_ablate_vocoder_sweep_scores_resyntheses(tmp_path, espeak_tiny_dir):
  workdir = str(tmp_path / "ablate_vocoder")
  proc = run("launch.ablate", "--sweep=vocoder", "--base=tiny", f"--workdir={workdir}",
             "--num_steps=2", "--eval_examples=2", "--probe_clips=2", "--probe_seconds=0.07",
             "--probe_examples=12", f"--data_dir={espeak_tiny_dir}")
  rows = [line for line in proc.stdout.splitlines()
          if line.startswith(("| log-mel", "| vocoder_period", "| +"))]
  assert len(rows) == 10, proc.stdout
  for row in rows:  # Probe of 2 resyntheses (both ways); their voiced share, a fraction.
    for probe in row.split("|")[-4:-2]:
      assert probe.strip() in ("0.00", "0.50", "1.00"), row
    assert 0 <= float(row.split("|")[-2]) <= 1, row
