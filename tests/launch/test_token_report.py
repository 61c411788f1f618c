"""launch.token_report on the tiny corpus: the table, its value ranges, codec rows, errors."""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.models import soundstream
from launch import token_report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def table_rows(report: str) -> dict[str, list[str]]:
  """Markdown table rows -> {first cell: the other cells}, header and rule left out."""
  rows = {}
  for line in report.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if line.startswith("|") and cells[0] not in ("tokens", "---"):
      rows[cells[0]] = cells[1:]
  return rows


def check_scores(cells: list[str], chance: float) -> tuple[float, ...]:
  """Purities, PNMI and probe accuracy in [0, 1], the probe's chance as given -> the four."""
  purity, cluster, pnmi = (float(c) for c in cells[2:5])
  accuracy, probe_chance = map(float, re.fullmatch(r"(\S+) \((\S+)\)", cells[5]).groups())
  assert all(0 <= v <= 1 for v in (purity, cluster, pnmi, accuracy)), cells
  assert probe_chance == pytest.approx(chance, abs=1e-3)
  return purity, cluster, pnmi, accuracy


def test_mfcc_report_on_the_tiny_corpus(espeak_tiny_dir, tmp_path):
  output = str(tmp_path / "report.md")
  result = subprocess.run(
      [sys.executable, "-m", "launch.token_report", f"--data_dir={espeak_tiny_dir}",
       "--dataset=espeak_speech/tiny", "--num_clusters=8", "--frame_rate_hz=25",
       f"--output={output}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-4000:]
  with open(output) as f:
    report = f.read()
  assert report == result.stdout
  assert "test (6 utterances, 3 speakers)" in report and "train (12 utterances)" in report
  rows = table_rows(report)
  assert list(rows) == ["MFCC k-means (39-D)"]
  cells = rows["MFCC k-means (39-D)"]
  assert cells[:2] == ["8", "25"]
  purity, _, pnmi, _ = check_scores(cells, chance=1 / 3)  # 3 speakers x 2 test sentences.
  assert pnmi > 0.1 and purity > 0.1  # MFCC clusters do follow the phones.


def test_load_split(espeak_tiny_dir):
  split = token_report.load_split(espeak_tiny_dir, "espeak_speech/tiny", "train", 3)
  assert sorted(split.speakers.tolist()) == [0, 1, 2]
  assert all(a.dtype == np.float32 and np.abs(a).max() <= 1 for a in split.audio)
  last_end = split.phonemes[0][-1][2]
  assert last_end == split.audio[0].shape[0]  # The alignment covers the utterance.
  with pytest.raises(ValueError, match="phoneme alignments"):
    token_report.load_split(espeak_tiny_dir, "music21_audio", "train", 3)


def test_balanced_subsets_keep_every_speaker():
  speakers = np.array([2, 1, 1, 0, 0, 1, 2, 2, 2, 1, 0, 0])
  assert token_report.balanced_subset(speakers, 3).tolist() == [0, 1, 3]
  assert speakers[token_report.balanced_subset(speakers, 7)].tolist() == [2, 1, 1, 0, 0, 2, 0]
  assert token_report.balanced_subset(speakers, 12).tolist() == list(range(12))


@pytest.fixture(scope="module")
def tiny_codec():
  """An untrained tiny SoundStream (hop 20 samples, 3 levels of 8 codes) with random weights
  and codebooks (no init compile): enough to exercise the codec rows without a workdir."""
  model = soundstream.Model(channels=2, strides=(4, 5), embedding_dim=4, num_quantizers=3,
                            codebook_size=8)
  shapes = jax.eval_shape(lambda: model.init(
      {"params": jax.random.key(0), "quantizer": jax.random.key(1)}, jnp.zeros((1, 200)),
      method=model.encode))
  rng = np.random.default_rng(0)
  return model, jax.tree.map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(s.dtype), shapes)


def test_codec_encoding_in_buckets_equals_one_by_one(tiny_codec):
  model, variables = tiny_codec
  rng = np.random.default_rng(3)
  # 6 (the last frame partial), 6, 6 and 15 frames: buckets of 8 (two batches of 2) and 16.
  audio = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (101, 120, 115, 300)]
  from audiojax.sample import codec

  codes = codec.encode_utterances(model, variables, audio, batch_size=2)
  encode = jax.jit(lambda v, a: model.apply(v, a, method=model.encode))
  for a, c in zip(audio, codes, strict=True):
    frames = -(-a.shape[0] // 20)
    padded = np.zeros((1, frames * 20), np.float32)
    padded[0, :a.shape[0]] = a
    expected = np.asarray(encode(variables, padded))[0]
    assert c.shape == (frames, 3) and c.dtype == np.int32
    np.testing.assert_array_equal(c, expected)
  assert np.unique(np.concatenate(codes)).size > 1  # Not a trivial (constant) encoder.


def test_codec_rows(espeak_tiny_dir, tiny_codec, monkeypatch):
  from audiojax.sample import codec

  monkeypatch.setattr(codec, "load", lambda workdir: (None, *tiny_codec))
  fit = token_report.load_split(espeak_tiny_dir, "espeak_speech/tiny", "train", 3)
  eval_ = token_report.load_split(espeak_tiny_dir, "espeak_speech/tiny", "test", 3)
  sources = token_report.token_sources(4, 50.0, 0, codec_workdir="fake", steps=5)
  assert list(sources) == ["MFCC k-means (39-D)", "codec level 1", "codec levels 1-3"]
  del sources["MFCC k-means (39-D)"]  # Run by test_mfcc_report_on_the_tiny_corpus.
  rows = {name: token_report.score(source(fit, eval_), fit, eval_)
          for name, source in sources.items()}
  assert rows["codec levels 1-3"]["levels"] == 3 and rows["codec level 1"]["levels"] == 1
  assert rows["codec level 1"]["frame_rate_hz"] == 800
  # The frames of 3 utterances at 800 Hz.
  assert rows["codec level 1"]["frames"] == sum(-(-a.shape[0] // 20) for a in eval_.audio)
  table = table_rows(token_report.markdown(rows, fit, eval_, "espeak_speech/tiny"))
  assert table["codec levels 1-3"][:2] == ["3 x 8", "800"]
  for cells in table.values():
    check_scores(cells, chance=1 / 3)
