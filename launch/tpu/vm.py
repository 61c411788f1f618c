r"""Cloud TPU VM lifecycle for audiojax: create, install, train on every worker, logs, resume.

  python -m launch.tpu.vm create  --name=wn --zone=us-central2-b --accelerator=v4-32 [--spot]
  python -m launch.tpu.vm install --name=wn --zone=us-central2-b
  python -m launch.tpu.vm train   --name=wn --zone=us-central2-b \
      --config=configs/wavenet.py:paper --workdir=gs://BUCKET/runs/wavenet_paper
  python -m launch.tpu.vm logs    --name=wn --zone=us-central2-b
  python -m launch.tpu.vm watch   --name=wn ... (re-creates a preempted VM and resumes)
  python -m launch.tpu.vm delete  --name=wn --zone=us-central2-b

Every command takes --dry_run, which prints the exact `gcloud` commands instead of running them.
`train` starts `launch.train` on all workers at once (`--worker=all`); the processes find each
other through the TPU metadata (`jax.distributed` auto-detection) and the run resumes from the
workdir's latest checkpoint, so after a preemption `watch` only has to re-create the VM, install
and run `train` again. The workdir must be a `gs://` path that all workers share.
"""

import shlex
import subprocess
import sys
import time

from absl import app, flags

COMMANDS = ("create", "install", "train", "logs", "watch", "delete")

_NAME = flags.DEFINE_string("name", None, "TPU VM (and queued resource) name.")
_ZONE = flags.DEFINE_string("zone", None, "Zone, e.g. us-central2-b.")
_PROJECT = flags.DEFINE_string("project", None, "GCP project (default: gcloud's).")
_ACCELERATOR = flags.DEFINE_string("accelerator", "v4-8", "Accelerator type, e.g. v5litepod-16.")
_VERSION = flags.DEFINE_string("version", "tpu-ubuntu2204-base", "TPU VM software version.")
_SPOT = flags.DEFINE_bool("spot", False, "Spot capacity (cheaper, preemptible).")
_QUEUED = flags.DEFINE_bool("queued", True, "Create through a queued resource (waits for "
                            "capacity) rather than `tpu-vm create`.")
_REPO = flags.DEFINE_string("repo", ".", "Local checkout copied to every worker.")
_REMOTE_DIR = flags.DEFINE_string("remote_dir", "audiojax", "Checkout directory on the workers.")
_CONFIG = flags.DEFINE_string("config", "configs/wavenet.py:paper", "Config for launch.train.")
_WORKDIR = flags.DEFINE_string("workdir", None, "gs:// workdir shared by all workers.")
_OVERRIDES = flags.DEFINE_multi_string("override", [], "Extra launch.train flags, e.g. "
                                       "--override=--config.train.num_steps=1000.")
_LOG = flags.DEFINE_string("log", "train.log", "Log file on each worker (in remote_dir).")
_POLL_SECONDS = flags.DEFINE_integer("poll_seconds", 300, "watch: seconds between checks.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the gcloud commands, run nothing.")


def _scope() -> list[str]:
  args = [f"--zone={_ZONE.value}"]
  return args + ([f"--project={_PROJECT.value}"] if _PROJECT.value else [])


def _ssh(command: str, worker: str = "all") -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", _NAME.value, *_scope(),
          f"--worker={worker}", f"--command={command}"]


def create_commands() -> list[list[str]]:
  if _QUEUED.value:
    return [["gcloud", "compute", "tpus", "queued-resources", "create", _NAME.value,
             f"--node-id={_NAME.value}", *_scope(), f"--accelerator-type={_ACCELERATOR.value}",
             f"--runtime-version={_VERSION.value}", *(["--spot"] if _SPOT.value else [])]]
  return [["gcloud", "compute", "tpus", "tpu-vm", "create", _NAME.value, *_scope(),
           f"--accelerator-type={_ACCELERATOR.value}", f"--version={_VERSION.value}",
           *(["--spot"] if _SPOT.value else [])]]


def install_commands() -> list[list[str]]:
  remote = _REMOTE_DIR.value
  return [
      ["gcloud", "compute", "tpus", "tpu-vm", "scp", "--recurse", _REPO.value,
       f"{_NAME.value}:~/{remote}", *_scope(), "--worker=all"],
      _ssh(f"cd ~/{remote} && rm -rf .venv data runs && python3 -m venv .venv && "
           ". .venv/bin/activate && pip install -q -U pip && pip install -q -e '.[tpu]'"),
  ]


def train_commands() -> list[list[str]]:
  if not (_WORKDIR.value or "").startswith("gs://"):
    raise ValueError("train needs --workdir=gs://...: every worker reads and writes it")
  train = ["python", "-m", "launch.train", f"--config={_CONFIG.value}",
           f"--workdir={_WORKDIR.value}", *_OVERRIDES.value]
  # nohup: the run outlives the ssh session; launch.train resumes from the workdir.
  command = (f"cd ~/{_REMOTE_DIR.value} && . .venv/bin/activate && "
             f"nohup {shlex.join(train)} > {_LOG.value} 2>&1 &")
  return [_ssh(command)]


def logs_commands() -> list[list[str]]:
  return [_ssh(f"tail -n 100 -f ~/{_REMOTE_DIR.value}/{_LOG.value}", worker="0")]


def delete_commands() -> list[list[str]]:
  if _QUEUED.value:
    return [["gcloud", "compute", "tpus", "queued-resources", "delete", _NAME.value, *_scope(),
             "--force", "--quiet"]]
  return [["gcloud", "compute", "tpus", "tpu-vm", "delete", _NAME.value, *_scope(), "--quiet"]]


def state_command() -> list[str]:
  if _QUEUED.value:
    return ["gcloud", "compute", "tpus", "queued-resources", "describe", _NAME.value, *_scope(),
            "--format=value(state.state)"]
  return ["gcloud", "compute", "tpus", "tpu-vm", "describe", _NAME.value, *_scope(),
          "--format=value(state)"]


def run(commands: list[list[str]]) -> None:
  for command in commands:
    print(shlex.join(command), flush=True)
    if not _DRY_RUN.value:
      subprocess.run(command, check=True)


def watch() -> None:
  """Keeps the run going: when the VM is preempted (or gone), re-create, install, train."""
  cycle = delete_commands() + create_commands() + install_commands() + train_commands()
  if _DRY_RUN.value:
    print(f"# every {_POLL_SECONDS.value} s: {shlex.join(state_command())}")
    print("# when it reports PREEMPTED, SUSPENDED, FAILED or nothing:")
    run(cycle)
    return
  while True:
    state = subprocess.run(state_command(), capture_output=True, text=True).stdout.strip()
    print(f"{time.strftime('%H:%M:%S')} {_NAME.value}: {state or 'not found'}", flush=True)
    if state in ("", "PREEMPTED", "SUSPENDED", "FAILED", "TERMINATED"):
      run(cycle)
    time.sleep(_POLL_SECONDS.value)


def main(argv: list[str]) -> None:
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"usage: python -m launch.tpu.vm {{{'|'.join(COMMANDS)}}} --name=... "
                         "--zone=... [--dry_run]")
  if not (_NAME.value and _ZONE.value):
    raise app.UsageError("--name and --zone are required")
  command = argv[1]
  try:
    if command == "watch":
      watch()
    else:
      run({"create": create_commands, "install": install_commands, "train": train_commands,
           "logs": logs_commands, "delete": delete_commands}[command]())
  except ValueError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
