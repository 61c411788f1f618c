"""The entry points end to end on tiny checkpoints, and their errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, check=True):
  proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                        text=True)
  if check:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  return proc


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory, espeak_tiny_dir):
  workdir = str(tmp_path_factory.mktemp("wavenet_tiny"))
  run("launch.train", "--config=configs/wavenet.py:tiny", f"--workdir={workdir}",
      f"--config.data.data_dir={espeak_tiny_dir}")
  return workdir


def test_unknown_override_key_is_a_clear_error(tmp_path):
  proc = run("launch.train", "--config=configs/wavenet.py:tiny", f"--workdir={tmp_path}",
             "--config.train.num_stepz=3", check=False)
  assert proc.returncode == 2
  assert "unknown config key 'train.num_stepz'" in proc.stderr
  assert "did you mean 'train.num_steps'" in proc.stderr
  assert "model.residual_channels" in proc.stderr  # lists the valid keys
  assert "Traceback" not in proc.stderr


def test_unknown_variant_is_a_clear_error(tmp_path):
  proc = run("launch.train", "--config=configs/wavenet.py:huge", f"--workdir={tmp_path}",
             check=False)
  assert proc.returncode != 0
  assert "unknown wavenet variant 'huge'" in proc.stderr


def test_sample_writes_wavs_of_the_requested_length(trained_workdir, tmp_path):
  out = str(tmp_path / "samples")
  run("launch.sample", f"--workdir={trained_workdir}", f"--output_dir={out}",
      "--num_samples=2", "--seconds=0.05", "--speaker=1", "--seed=3")
  files = sorted(os.listdir(out))
  assert files == ["sample_0.wav", "sample_1.wav"]
  info = sf.info(os.path.join(out, files[0]))
  assert info.samplerate == 16000 and info.frames == 800


def test_sample_rejects_an_unknown_speaker(trained_workdir, tmp_path):
  proc = run("launch.sample", f"--workdir={trained_workdir}", f"--output_dir={tmp_path}",
             "--speaker=999", check=False)
  assert proc.returncode != 0 and "--speaker=999" in proc.stderr


def test_evaluate_prints_and_writes_bits_per_sample(trained_workdir):
  proc = run("launch.evaluate", f"--workdir={trained_workdir}", "--max_examples=2")
  result = json.loads(proc.stdout[proc.stdout.index("{"):])
  assert result["split"] == "test" and 0 < result["bits_per_sample"] <= 8.5
  with open(os.path.join(trained_workdir, "eval_test.json")) as f:
    assert json.load(f)["bits_per_sample"] == result["bits_per_sample"]


def test_sample_without_a_checkpoint_is_a_clear_error(tmp_path):
  proc = run("launch.sample", f"--workdir={tmp_path}", f"--output_dir={tmp_path}/o",
             check=False)
  assert proc.returncode != 0 and "holds no checkpoint" in proc.stderr


def test_vocoder_resynthesises_a_recording(tmp_path, espeak_tiny_dir, trained_workdir):
  """A locally conditioned WaveNet: --condition_audio gives clips of the recording's length; an
  unconditioned model refuses the flag, and a vocoder needs it."""
  workdir = str(tmp_path / "vocoder")
  run("launch.train", "--config=configs/wavenet.py:vocoder_tiny", f"--workdir={workdir}",
      f"--config.data.data_dir={espeak_tiny_dir}", "--config.train.num_steps=2",
      "--config.train.eval_every=0")
  recording = str(tmp_path / "in.wav")
  sf.write(recording, 0.1 * np.sin(np.arange(700) / 5.0).astype(np.float32), 8000)
  out = str(tmp_path / "resynth")
  run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}", "--num_samples=2",
      f"--condition_audio={recording}")
  for i in range(2):  # 700 samples at 8 kHz = 1400 at the model's 16 kHz.
    assert sf.info(os.path.join(out, f"sample_{i}.wav")).frames == 1400
  proc = run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}", check=False)
  assert proc.returncode != 0 and "pass --condition_audio" in proc.stderr
  proc = run("launch.sample", f"--workdir={trained_workdir}", f"--output_dir={out}",
             f"--condition_audio={recording}", check=False)
  assert proc.returncode != 0 and "needs a locally conditioned model" in proc.stderr


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


def test_ablate_runs_rows_and_writes_the_table(tmp_path, espeak_tiny_dir):
  workdir = str(tmp_path / "ablate")
  proc = run("launch.ablate", "--sweep=wavenet", f"--workdir={workdir}", "--num_steps=2",
             "--eval_examples=1", "--rows=dilated x1,non-dilated (18 layers)",
             "--dataset=espeak_speech/tiny", f"--data_dir={espeak_tiny_dir}")
  with open(os.path.join(workdir, "results.md")) as f:
    table = f.read()
  assert table in proc.stdout
  rows = [line for line in table.splitlines() if line.startswith("| dilated x1")
          or line.startswith("| non-dilated")]
  assert len(rows) == 2
  # Receptive fields: 9 layers of dilations 1..256 (512 samples) vs 18 of dilation 1 (19).
  assert "| 512 |" in rows[0] and "| 19 |" in rows[1]
