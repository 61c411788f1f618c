"""Trains a model, or resumes it from WORKDIR's latest checkpoint.

  python -m launch.train --config=configs/wavenet.py:quickstart --workdir=runs/wavenet \
      [--config.train.num_steps=2000 ...]

Several processes (one per host): on a Cloud TPU VM pod or under SLURM they find each other
on their own; elsewhere pass --coordinator_address=HOST:PORT --num_processes=N
--process_id=I to each.
"""

import logging
import os

import jax
from absl import flags
from ml_collections import config_flags

from audiojax.train import checkpoint, multihost, trainer
from launch import common

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs and samples go here.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", ["auto", "on", "off"],
    "jax.distributed: auto = when a coordinator is given or a cluster is detected.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "HOST:PORT of process 0, for clusters JAX cannot detect.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_SET_ASIDE = flags.DEFINE_bool(
    "set_aside_other_run", False, "When WORKDIR holds checkpoints of another model or config, "
    "move it to WORKDIR.1 (.2, ...), kept whole, and start afresh in WORKDIR instead of "
    "refusing (the quick start: a run of an earlier recipe). One process only.")
flags.mark_flags_as_required(["config", "workdir"])


def set_aside_other_run(config, workdir: str) -> str | None:
  """Moves `workdir` to the first free `workdir.N` when its latest checkpoint is of another
  model or config than `config`; returns where it went (None: nothing to move)."""
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    return None
  manager = checkpoint.make_manager(workdir, read_only=True)
  try:
    meta = checkpoint.read_meta(manager)
    if meta is None:
      return None
    checkpoint.check_meta(meta, checkpoint.make_meta(config), workdir)
    return None
  except checkpoint.CheckpointMismatchError as err:
    logging.warning("%s", err)
  finally:
    manager.close()
  n = 1
  while os.path.exists(f"{workdir.rstrip(os.sep)}.{n}"):
    n += 1
  target = f"{workdir.rstrip(os.sep)}.{n}"
  os.rename(workdir, target)
  return target


def main(argv):
  del argv
  multihost.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                       _DISTRIBUTED.value)
  logging.info("devices: %s", jax.devices())
  if _SET_ASIDE.value:
    if jax.process_count() > 1:
      raise ValueError("--set_aside_other_run moves directories: one process only")
    if moved := set_aside_other_run(_CONFIG.value, _WORKDIR.value):
      print(f"{_WORKDIR.value} held a run of another config: moved to {moved} (kept), "
            "starting afresh")
  trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  common.run(main)
