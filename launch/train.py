"""Trains a model, or resumes it from WORKDIR's latest checkpoint.

  python -m launch.train --config=configs/wavenet.py:quickstart --workdir=runs/wavenet \
      [--config.train.num_steps=2000 ...]

Several processes (one per host): on a Cloud TPU VM pod or under SLURM they find each other
on their own; elsewhere pass --coordinator_address=HOST:PORT --num_processes=N
--process_id=I to each.
"""

import logging

import jax
from absl import flags
from ml_collections import config_flags

from audiojax.train import multihost, trainer
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
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  multihost.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                       _DISTRIBUTED.value)
  logging.info("devices: %s", jax.devices())
  trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  common.run(main)
