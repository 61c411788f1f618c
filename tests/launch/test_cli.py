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


def test_sample_continues_a_prompt(trained_workdir, tmp_path):
  """--prompt_audio: each clip starts with the recording's first --prompt_seconds (through
  mu-law: within one class step) and goes on to the requested length."""
  recording = str(tmp_path / "speech.wav")
  tone = (0.5 * np.sin(np.arange(800) / 4.0)).astype(np.float32)
  sf.write(recording, tone, 16000, subtype="FLOAT")
  out = str(tmp_path / "continued")
  proc = run("launch.sample", f"--workdir={trained_workdir}", f"--output_dir={out}",
             "--num_samples=2", "--seconds=0.1", f"--prompt_audio={recording}",
             "--prompt_seconds=0.01")
  assert "continuation: " in proc.stdout
  for i in range(2):
    clip, rate = sf.read(os.path.join(out, f"sample_{i}.wav"), dtype="float32")
    assert rate == 16000 and clip.shape == (1600,)
    np.testing.assert_allclose(clip[:160], tone[:160], atol=0.02)
  proc = run("launch.sample", f"--workdir={trained_workdir}", f"--output_dir={out}",
             "--seconds=0.005", f"--prompt_audio={recording}", "--prompt_seconds=0.01",
             check=False)
  assert proc.returncode != 0 and "the clips need more" in proc.stderr


def test_sample_rejects_an_unknown_speaker(trained_workdir, tmp_path):
  proc = run("launch.sample", f"--workdir={trained_workdir}", f"--output_dir={tmp_path}",
             "--speaker=999", check=False)
  assert proc.returncode != 0 and "--speaker=999" in proc.stderr


def test_compose_refuses_a_wavenet_run(trained_workdir, tmp_path):
  proc = run("launch.compose", f"--workdir={trained_workdir}", f"--output_dir={tmp_path}",
             check=False)
  assert proc.returncode != 0 and "holds a wavenet model, not a composer" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_evaluate_prints_and_writes_bits_per_sample(trained_workdir):
  proc = run("launch.evaluate", f"--workdir={trained_workdir}", "--max_examples=2")
  result = json.loads(proc.stdout[proc.stdout.index("{"):])
  assert result["split"] == "test" and 0 < result["bits_per_sample"] <= 8.5
  with open(os.path.join(trained_workdir, "eval_test.json")) as f:
    assert json.load(f)["bits_per_sample"] == result["bits_per_sample"]
  # On given positions: windows of 301 samples, each scored on its last 100 predictions.
  proc = run("launch.evaluate", f"--workdir={trained_workdir}", "--max_examples=2",
             "--crop_samples=301", "--scored_samples=100")
  windows = json.loads(proc.stdout[proc.stdout.index("{"):])
  assert 0 < windows["bits_per_sample"] <= 8.5
  assert windows["num_predictions"] < result["num_predictions"] / 2
  assert os.path.exists(os.path.join(trained_workdir, "eval_test_crop301_last100.json"))


def test_sample_without_a_checkpoint_is_a_clear_error(tmp_path):
  proc = run("launch.sample", f"--workdir={tmp_path}", f"--output_dir={tmp_path}/o",
             check=False)
  assert proc.returncode != 0 and "holds no checkpoint" in proc.stderr


def test_sample_refuses_condition_audio_without_local_conditioning(trained_workdir, tmp_path):
  recording = str(tmp_path / "in.wav")
  sf.write(recording, np.zeros(800, np.float32), 16000)
  proc = run("launch.sample", f"--workdir={trained_workdir}", f"--output_dir={tmp_path}",
             f"--condition_audio={recording}", check=False)
  assert proc.returncode != 0 and "need a locally conditioned model" in proc.stderr


def test_a_run_of_another_config_is_refused_or_set_aside(tmp_path, espeak_tiny_dir):
  """Training into a workdir that holds another config's checkpoints is a clear error; with
  --set_aside_other_run the old run moves to WORKDIR.1, whole, and a new one starts."""
  workdir = str(tmp_path / "run")
  common = ["launch.train", "--config=configs/wavenet.py:tiny", f"--workdir={workdir}",
            f"--config.data.data_dir={espeak_tiny_dir}", "--config.train.num_steps=2"]
  run(*common)
  old_files = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  other = [*common, "--config.model.residual_channels=4"]
  refused = run(*other, check=False)
  assert refused.returncode != 0 and "use another --workdir" in refused.stderr
  moved = run(*other, "--set_aside_other_run")
  assert f"moved to {workdir}.1" in moved.stdout
  assert sorted(os.listdir(os.path.join(f"{workdir}.1", "checkpoints"))) == old_files
  again = run(*other, "--set_aside_other_run")  # Its own run now: resumed, nothing moved.
  assert "moved to" not in again.stdout and not os.path.exists(f"{workdir}.2")
