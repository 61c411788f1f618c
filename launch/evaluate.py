"""Test-split NLL of a trained workdir, printed and written to WORKDIR/eval_<split>.json.

  python -m launch.evaluate --workdir=runs/wavenet [--split=test] [--max_examples=N]
"""

import json

from absl import flags

from audiojax.train import trainer
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by launch.train.")
_SPLIT = flags.DEFINE_string("split", "test", "Dataset split to evaluate.")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Evaluate the first N utterances.")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  result = trainer.evaluate(_WORKDIR.value, _SPLIT.value, _MAX_EXAMPLES.value)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  common.run(main)
