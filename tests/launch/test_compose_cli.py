"""launch.compose end to end on a tiny composer run: scores written, readable, scored."""

import os

import numpy as np
import pytest

from audiojax.data import chorale_notes, music21_audio
from tests.launch.test_cli import run


@pytest.fixture(scope="module")
def composer_workdir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("composer"))
  run("launch.train", "--config=configs/composer.py:tiny", f"--workdir={workdir}")
  return workdir


def test_compose_writes_scores_that_read_back(tmp_path, composer_workdir):
  out = str(tmp_path / "composed")
  proc = run("launch.compose", f"--workdir={composer_workdir}", f"--output_dir={out}",
             "--num_pieces=2", "--num_tokens=48", "--format=musicxml")
  assert "| held-out chorales (" in proc.stdout and "| composed (" in proc.stdout
  assert os.path.exists(os.path.join(out, "score_stats.md"))
  written = sorted(f for f in os.listdir(out) if f.endswith(".musicxml"))
  assert written, proc.stdout
  for name in written:
    notes = music21_audio.read_notes(os.path.join(out, name))
    assert len(notes["pitch_midi"]) > 0
    assert notes["pitch_midi"].min() >= chorale_notes.LOWEST
    assert notes["pitch_midi"].max() <= chorale_notes.HIGHEST


def test_compose_continues_a_prompt(tmp_path, composer_workdir):
  out = str(tmp_path / "continued")
  run("launch.compose", f"--workdir={composer_workdir}", f"--output_dir={out}",
      "--num_pieces=1", "--num_tokens=8", "--prompt=bach/bwv66.6", "--prompt_quarters=2",
      "--bpm=60")
  notes = music21_audio.read_notes(os.path.join(out, "piece_0.mid"))
  prompt = music21_audio.read_notes("bach/bwv66.6")
  first = prompt["start_q"] < 2
  composed = set(zip(notes["start_q"].round(3), notes["pitch_midi"].tolist(), strict=True))
  assert set(zip(prompt["start_q"][first], prompt["pitch_midi"][first].tolist(),
                 strict=True)) <= composed
  np.testing.assert_allclose(notes["start_s"], notes["start_q"])  # 60 bpm


def test_compose_refuses_a_workdir_without_a_composer(tmp_path):
  proc = run("launch.compose", f"--workdir={tmp_path}", f"--output_dir={tmp_path}/out",
             check=False)
  assert proc.returncode != 0 and "holds no checkpoint" in proc.stderr
  assert "Traceback" not in proc.stderr
