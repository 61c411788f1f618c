"""compress / decompress on a tiny trained codec: round trip, odd inputs, bad token files."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audiojax.data import token_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=600)


@pytest.fixture
def codec_workdir(untrained_codec_workdir):
  """The CLI's behaviour does not depend on training: an untrained tiny codec's checkpoint."""
  return untrained_codec_workdir


@pytest.mark.slow
def test_train_cli_trains_the_tiny_codec(tmp_path, espeak_tiny_dir):
  workdir = str(tmp_path / "run")
  result = run("launch.train", "--config=configs/soundstream.py:tiny", f"--workdir={workdir}",
               f"--config.data.data_dir={espeak_tiny_dir}", "--config.train.num_steps=2")
  assert result.returncode == 0, result.stderr[-3000:]
  assert os.listdir(os.path.join(workdir, "checkpoints"))


def test_round_trip_at_a_bitrate(codec_workdir, tmp_path):
  wav, ajt, out = (str(tmp_path / n) for n in ("in.flac", "x.ajt", "out.wav"))
  t = np.arange(22050) / 22050  # 1 s at 22.05 kHz, flac: resampled to 16 kHz.
  sf.write(wav, 0.3 * np.sin(2 * np.pi * 220 * t), 22050)
  # tiny: hop 8 samples -> 2000 frames/s, 16 codes (4 bits) per level -> 8 kbps per level.
  result = run("launch.compress", f"--workdir={codec_workdir}", f"--input={wav}",
               f"--output={ajt}", "--bitrate_kbps=16")
  assert result.returncode == 0, result.stderr[-3000:]
  tokens = token_file.read(ajt)
  assert tokens.codes.shape == (2000, 2) and tokens.num_samples == 16000
  assert os.path.getsize(ajt) < 16000 / 8 * 1.0 + 300  # 16 kbps for 1 s, plus the header.
  result = run("launch.decompress", f"--input={ajt}", f"--output={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  audio, rate = sf.read(out)
  assert rate == 16000 and audio.shape == (16000,)
  # The same tokens decoded in bfloat16: the same audio to bfloat16's precision.
  half = str(tmp_path / "half.wav")
  result = run("launch.decompress", f"--input={ajt}", f"--output={half}", "--codec_dtype=bfloat16")
  assert result.returncode == 0, result.stderr[-3000:]
  audio_half, _ = sf.read(half)
  assert np.linalg.norm(audio_half - audio) <= 0.05 * np.linalg.norm(audio) + 1e-3
  result = run("launch.decompress", f"--input={ajt}", f"--output={half}", "--codec_dtype=int4")
  assert result.returncode != 0 and "codec_dtype" in result.stderr


@pytest.mark.parametrize("samples", [3, 16000])
def test_short_and_silent_inputs(codec_workdir, tmp_path, samples):
  wav, ajt, out = (str(tmp_path / n) for n in ("in.wav", "x.ajt", "out.wav"))
  sf.write(wav, np.zeros(samples), 16000)
  assert run("launch.compress", f"--workdir={codec_workdir}", f"--input={wav}",
             f"--output={ajt}").returncode == 0
  assert run("launch.decompress", f"--input={ajt}", f"--output={out}").returncode == 0
  assert sf.read(out)[0].shape == (samples,)


def test_bad_token_files_write_nothing(codec_workdir, tmp_path):
  wav, ajt, out = (str(tmp_path / n) for n in ("in.wav", "x.ajt", "out.wav"))
  sf.write(wav, np.zeros(800), 16000)
  assert run("launch.compress", f"--workdir={codec_workdir}", f"--input={wav}",
             f"--output={ajt}").returncode == 0
  data = open(ajt, "rb").read()
  bad = str(tmp_path / "bad.ajt")
  for damaged, message in [(data[:len(data) // 2], "truncated|corrupted"),
                           (b"JUNK" + data[4:], "not an audiojax token file")]:
    with open(bad, "wb") as f:
      f.write(damaged)
    result = run("launch.decompress", f"--input={bad}", f"--output={out}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert any(m in result.stderr for m in message.split("|")), result.stderr
    assert not os.path.exists(out)
  # A token file of another model: same format, other fingerprint.
  tokens = token_file.read(ajt)
  other = token_file.TokenFile(tokens.codes, "ffffffffffffffff", tokens.workdir,
                               tokens.sample_rate_hz, tokens.hop_samples,
                               tokens.codebook_size, tokens.num_samples)
  token_file.write(bad, other)
  result = run("launch.decompress", f"--input={bad}", f"--output={out}")
  assert result.returncode == 1 and "another codec" in result.stderr
  assert not os.path.exists(out)


def test_bitrate_out_of_range(codec_workdir, tmp_path):
  wav = str(tmp_path / "in.wav")
  sf.write(wav, np.zeros(800), 16000)
  result = run("launch.compress", f"--workdir={codec_workdir}", f"--input={wav}",
               f"--output={tmp_path / 'x.ajt'}", "--bitrate_kbps=1000")
  assert result.returncode == 1 and "this codec offers 8 to 24 kbps" in result.stderr
  assert not os.path.exists(tmp_path / "x.ajt")
