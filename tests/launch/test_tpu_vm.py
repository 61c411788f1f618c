"""The Cloud TPU VM script's dry runs print the gcloud commands it would run."""

import os
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCOPE = ["--name=wn", "--zone=us-central2-b", "--dry_run"]


def dry_run(*args: str) -> list[list[str]]:
  result = subprocess.run([sys.executable, "-m", "launch.tpu.vm", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  return [shlex.split(line) for line in result.stdout.splitlines() if not line.startswith("#")]


def test_train_runs_on_every_worker_with_the_shared_workdir():
  [command] = dry_run("train", *SCOPE, "--workdir=gs://bucket/runs/wn",
                      "--override=--config.train.num_steps=500")
  assert command[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "wn"]
  assert "--worker=all" in command and "--zone=us-central2-b" in command
  remote = next(a for a in command if a.startswith("--command="))
  assert "python -m launch.train --config=configs/wavenet.py:paper" in remote
  assert "--workdir=gs://bucket/runs/wn" in remote and "--config.train.num_steps=500" in remote
  assert "nohup" in remote  # Outlives ssh; launch.train resumes from the workdir itself.


def test_create_queued_spot_and_install():
  [create] = dry_run("create", *SCOPE, "--accelerator=v5litepod-16", "--spot")
  assert create[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
  assert "--accelerator-type=v5litepod-16" in create and "--spot" in create
  assert "--node-id=wn" in create
  [create_vm] = dry_run("create", *SCOPE, "--noqueued")
  assert create_vm[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"]
  scp, pip = dry_run("install", *SCOPE)
  assert "scp" in scp and "--worker=all" in scp
  assert "pip install -q -e '.[tpu]'" in next(a for a in pip if a.startswith("--command="))


def test_watch_recreates_and_resumes_after_preemption():
  commands = dry_run("watch", *SCOPE, "--workdir=gs://bucket/run")
  verbs = [" ".join(c[3:5]) for c in commands]
  assert verbs == ["queued-resources delete", "queued-resources create", "tpu-vm scp",
                   "tpu-vm ssh", "tpu-vm ssh"]
  assert "--workdir=gs://bucket/run" in commands[-1][-1]


@pytest.mark.parametrize("args,message", [
    (["train", *SCOPE, "--workdir=/tmp/local"], "gs://"),
    (["train", "--zone=z", "--dry_run"], "--name and --zone are required"),
    (["launch", *SCOPE], "usage"),
])
def test_bad_invocations_are_clear(args, message):
  result = subprocess.run([sys.executable, "-m", "launch.tpu.vm", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode != 0 and message in result.stderr + result.stdout
