"""Shared fixtures: small audio folders written on the fly (no downloads)."""

import os

import numpy as np
import pytest
import soundfile as sf


def write_tone(path: str, seconds: float, sample_rate_hz: int, level: float) -> None:
  """A constant-level signal whose amplitude identifies the file in a batch."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  n = int(seconds * sample_rate_hz)
  sf.write(path, np.full(n, level, np.float32), sample_rate_hz, subtype="PCM_16")


@pytest.fixture
def audio_folder(tmp_path):
  """12 one-second files in 3 speaker folders; file k has constant level (k + 1) / 64."""
  root = tmp_path / "folder"
  for k in range(12):
    write_tone(str(root / f"spk{k % 3}" / f"utt{k:02d}.wav"), 1.0, 16000, (k + 1) / 64)
  return str(root)


@pytest.fixture(scope="session")
def espeak_tiny_dir(tmp_path_factory):
  """A data_dir holding the `tiny` built-in corpus (built once per test session/worker)."""
  from audiojax.data import espeak_speech

  data_dir = str(tmp_path_factory.mktemp("espeak_data"))
  espeak_speech.prepare(data_dir, config="tiny")
  return data_dir
