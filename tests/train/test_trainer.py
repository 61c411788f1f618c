"""The shared trainer: exact resume after SIGKILL, SIGTERM, NaN stop, checkpoint checks."""

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.train import checkpoint, tasks, trainer
from configs import wavenet as wavenet_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(data_dir: str, **train):
  config = wavenet_config.get_config("tiny")
  config.data.data_dir = data_dir
  config.train.update(train)
  return config


def train_cli(workdir, data_dir, *overrides) -> list[str]:
  return [sys.executable, "-m", "launch.train", "--config=configs/wavenet.py:tiny",
          f"--workdir={workdir}", f"--config.data.data_dir={data_dir}", *overrides]


def latest_step(workdir) -> int | None:
  ckpt = os.path.join(workdir, "checkpoints")
  steps = [int(d) for d in os.listdir(ckpt) if d.isdigit()] if os.path.isdir(ckpt) else []
  return max(steps, default=None)


def run_until_checkpoint(cmd, workdir, min_step, sig):
  """Starts `cmd`, sends `sig` once a checkpoint >= min_step exists; returns the process."""
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.time() + 300
  while (latest_step(workdir) or 0) < min_step:
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
    assert time.time() < deadline
    time.sleep(0.02)
  proc.send_signal(sig)
  proc.wait(timeout=120)
  return proc


def params_of(workdir):
  config = trainer.load_config(workdir)
  variables, step = trainer.restore_variables(config, workdir)[2:]
  return variables["params"], step


# Steps are slowed by a longer crop so a signal lands mid-run.
SLOW = ["--config.train.num_steps=400", "--config.train.checkpoint_every=5",
        "--config.data.crop_samples=4000", "--config.train.log_every=5"]


def test_sigkill_then_resume_equals_uninterrupted_bitwise(tmp_path, espeak_tiny_dir):
  straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
  short = [*SLOW[1:], "--config.train.num_steps=60"]
  subprocess.run(train_cli(straight, espeak_tiny_dir, *short), cwd=REPO, check=True,
                 capture_output=True)
  proc = run_until_checkpoint(train_cli(killed, espeak_tiny_dir, *short), killed, 10,
                              signal.SIGKILL)
  assert proc.returncode == -signal.SIGKILL
  assert latest_step(killed) < 60, "the run finished before it was killed"
  subprocess.run(train_cli(killed, espeak_tiny_dir, *short), cwd=REPO, check=True,
                 capture_output=True)
  (params_a, step_a), (params_b, step_b) = params_of(straight), params_of(killed)
  assert step_a == step_b == 60
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sigterm_saves_a_checkpoint_and_exits_zero(tmp_path, espeak_tiny_dir):
  workdir = str(tmp_path / "run")
  proc = run_until_checkpoint(train_cli(workdir, espeak_tiny_dir, *SLOW), workdir, 5,
                              signal.SIGTERM)
  output = proc.stdout.read().decode()
  assert proc.returncode == 0, output[-3000:]
  assert 5 <= latest_step(workdir) < 400
  assert "stopped by signal" in output


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(
    tmp_path, espeak_tiny_dir, monkeypatch):
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(tiny_config(espeak_tiny_dir, num_steps=4), workdir)
  good = params_of(workdir)

  def nan_loss(model, variables, batch, rng, train):
    loss, (metrics, state) = tasks.wavenet_loss(model, variables, batch, rng, train)
    return loss * jnp.nan, ({**metrics, "loss": loss * jnp.nan}, state)

  task = tasks.TASKS["wavenet"]
  monkeypatch.setitem(tasks.TASKS, "wavenet",
                      tasks.Task(task.init_fn, nan_loss, task.generate))
  with pytest.raises(FloatingPointError, match=r"at step 5\b.*step 4"):
    trainer.train_and_evaluate(tiny_config(espeak_tiny_dir, num_steps=8), workdir)
  assert latest_step(workdir) == 4
  after = params_of(workdir)
  for a, b in zip(jax.tree.leaves(good[0]), jax.tree.leaves(after[0]), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_checkpoint_of_another_config_is_refused(tmp_path, espeak_tiny_dir):
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(tiny_config(espeak_tiny_dir, num_steps=2), workdir)
  other = tiny_config(espeak_tiny_dir, num_steps=4)
  other.model.residual_channels = 16
  with pytest.raises(checkpoint.CheckpointMismatchError, match="residual_channels"):
    trainer.train_and_evaluate(other, workdir)
  meta = checkpoint.make_meta(other)
  meta["model_name"] = "soundstream"
  manager = checkpoint.make_manager(workdir, read_only=True)
  with pytest.raises(checkpoint.CheckpointMismatchError, match="model 'wavenet'"):
    checkpoint.check_meta(checkpoint.read_meta(manager), meta, workdir)


def test_checkpoint_without_a_newer_field_matches_it_left_off():
  """A model field added after a checkpoint was written matches when the config leaves it off
  (False / 0 / None), and still refuses when the config turns it on."""
  config = wavenet_config.get_config("tiny")
  written = checkpoint.make_meta(config)
  del written["config"]["model"]["lpc_order"]  # A checkpoint from before the field existed.
  written["fingerprint"] = "older"
  checkpoint.check_meta(written, checkpoint.make_meta(config), "run")
  config.model.lpc_order = 4
  with pytest.raises(checkpoint.CheckpointMismatchError, match="lpc_order: checkpoint None"):
    checkpoint.check_meta(written, checkpoint.make_meta(config), "run")


def test_tiny_training_lowers_the_loss(tmp_path, espeak_tiny_dir):
  config = tiny_config(espeak_tiny_dir, num_steps=80, checkpoint_every=80)
  config.model.update(residual_channels=16, gate_channels=16, skip_channels=16,
                      head_channels=32)
  config.data.update(crop_samples=2000, batch_size=4)
  config.optimizer.update(learning_rate=1e-2, warmup_steps=5)
  workdir = str(tmp_path / "run")
  model, task, tx, _, mesh, rules = trainer.build(config)
  state0, _ = trainer.init_state(config, model, task, tx, mesh, rules)
  eval_step = jax.jit(trainer.make_eval_step(model, task))
  before = trainer.run_eval(eval_step, state0.variables, config.data, "validation", mesh, 4)
  state = trainer.train_and_evaluate(config, workdir)
  after = trainer.run_eval(eval_step, state.variables, config.data, "validation", mesh, 4)
  assert after["bits_per_sample"] < before["bits_per_sample"] - 1.0


def test_two_process_run_checkpoints_and_resumes(tmp_path, espeak_tiny_dir):
  """launch.train as 2 jax.distributed processes on 127.0.0.1: trains, evaluates, saves each
  host's data state, and a second launch resumes from the shared workdir."""
  import json
  import socket

  workdir = str(tmp_path / "run")

  def launch(num_steps: int) -> None:
    with socket.socket() as s:
      s.bind(("127.0.0.1", 0))
      port = s.getsockname()[1]
    procs = [subprocess.Popen(
        train_cli(workdir, espeak_tiny_dir, f"--config.train.num_steps={num_steps}",
                  "--config.train.eval_every=4", f"--coordinator_address=127.0.0.1:{port}",
                  "--num_processes=2", f"--process_id={i}"),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    for proc in procs:
      output = proc.communicate(timeout=600)[0]
      assert proc.returncode == 0, output[-3000:]

  launch(4)
  assert latest_step(workdir) == 4
  with open(os.path.join(workdir, "checkpoints", "4", "data", "metadata")) as f:
    states = json.load(f)["process_states"]
  assert len(states) == 2 and all(s["next_index"] == 4 for s in states), states
  launch(6)
  assert latest_step(workdir) == 6


def test_checkpoint_without_model_state_still_restores(tmp_path, espeak_tiny_dir):
  """Checkpoints written before TrainState had `model_state` resume as they are."""
  import dataclasses

  config = tiny_config(espeak_tiny_dir)
  model, task, tx, _, mesh, rules = trainer.build(config)
  state, _ = trainer.init_state(config, model, task, tx, mesh, rules)
  old_layout = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
                if f.name != "model_state"}
  manager = checkpoint.make_manager(str(tmp_path), async_save=False)
  meta = checkpoint.make_meta(config)
  checkpoint.save(manager, 3, old_layout, {"next_index": 5}, meta)
  manager.wait_until_finished()
  restored, data_state, step = checkpoint.restore(manager, checkpoint.abstract(state), meta)
  assert step == 3 and data_state == {"next_index": 5} and restored.model_state == {}
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.params),
               jax.device_get(state.params))
