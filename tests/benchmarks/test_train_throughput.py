"""benchmarks.train_throughput end to end on a tiny transformer: config overrides, the gate."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
  proc = subprocess.run([sys.executable, "-m", "benchmarks.train_throughput",
                         "--config=configs/audiolm.py:semantic_tiny", "--per_device_batch=2",
                         "--steps=1", *args], cwd=REPO, capture_output=True, text=True,
                        timeout=600)
  if check:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  return proc


def test_config_overrides_reach_the_model():
  out = run("--config.model.vocab_size=61", "--config.model.vocab_multiple=16").stdout
  assert "overrides ['--config.model.vocab_size=61', '--config.model.vocab_multiple=16']" in out
  row = next(line for line in out.splitlines() if line.split()[:2] == ["-", "1"])
  assert float(row.split()[4].replace(",", "")) > 0  # tokens/s
  bad = run("--config.model.position=bogus", check=False)
  assert bad.returncode != 0 and "position='bogus'" in bad.stderr
  unknown = run("--config.model.vocab_sise=61", check=False)
  assert unknown.returncode == 2 and "unknown config key 'model.vocab_sise'" in unknown.stderr
  assert "Traceback" not in unknown.stderr


def test_gate_times_after_go(tmp_path):
  """With --gate_dir the run marks itself compiled and times once GATE/go exists."""
  (tmp_path / "go").touch()
  out = run(f"--gate_dir={tmp_path}").stdout
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith("ready.")]
  assert (tmp_path / "lock").exists() and "tokens/s" in out
