"""Trains a model, or resumes it from WORKDIR's latest checkpoint.

  python -m launch.train --config=configs/wavenet.py:quickstart --workdir=runs/wavenet \
      [--config.train.num_steps=2000 ...]
"""

import logging

import jax
from absl import flags
from ml_collections import config_flags

from audiojax.train import trainer
from launch import common

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs and samples go here.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.info("devices: %s", jax.devices())
  trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  common.run(main)
