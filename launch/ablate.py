"""Runs a sweep of the papers' ablations (`configs/ablations.py`) and writes its table.

  python -m launch.ablate --sweep=wavenet --workdir=runs/ablate [--num_steps=800]
      [--eval_examples=32] [--rows="dilated x1,dilated x2"]

Each row trains (or resumes) WORKDIR/<row> with the shared trainer, then evaluates the test
split; the table (test NLL in mu-law bits per sample, comparable across outputs; receptive
field; parameters; steps) is printed and written to WORKDIR/results.md. Re-running reuses
finished rows. --num_steps overrides every row's steps (the sweep's default: the base
config's), keeping rows comparable.
"""

import os
import re

import jax
from absl import flags

from audiojax.train import trainer
from configs import ablations
from launch import common

_SWEEP = flags.DEFINE_string("sweep", "wavenet", "Which sweep (configs/ablations.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where each row's run and the table go.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Training steps of every row.")
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", 32, "Test utterances per row.")
_ROWS = flags.DEFINE_list("rows", None, "Only these rows (names as in the table).")
_BASE = flags.DEFINE_string("base", "quickstart", "The config variant the rows start from "
                            "(configs/wavenet.py; tiny for a smoke test).")
_DATASET = flags.DEFINE_string("dataset", None, "Every row's config.data.name (default: the "
                               "sweep's).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Every row's config.data.data_dir.")
flags.mark_flag_as_required("workdir")


def row_dir(workdir: str, name: str) -> str:
  return os.path.join(workdir, re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))


def run_row(config, workdir: str, eval_examples: int) -> dict:
  state = trainer.train_and_evaluate(config, workdir)
  result = trainer.evaluate(workdir, "test", eval_examples)
  model, *_ = trainer.build(config, mesh_config={})
  return {"bits": result.get("mu_law_bits_per_sample", result.get("bits_per_sample")),
          "receptive_field": getattr(model, "receptive_field", None),
          "params": sum(x.size for x in jax.tree.leaves(state.params)),
          "steps": int(state.step)}


def markdown(sweep: str, rows: dict[str, dict]) -> str:
  lines = [f"Sweep `{sweep}`: test split, mu-law bits per sample (lower is better).", "",
           "| row | test bits/sample | receptive field (samples) | params | steps |",
           "|---|---|---|---|---|"]
  for name, r in rows.items():
    lines.append(f"| {name} | {r['bits']:.4f} | {r['receptive_field']} | "
                 f"{r['params'] / 1e6:.2f}M | {r['steps']} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  sweep = ablations.get_sweep(_SWEEP.value, _BASE.value)
  if _ROWS.value:
    unknown = set(_ROWS.value) - set(sweep)
    if unknown:
      raise ValueError(f"unknown rows {sorted(unknown)}; the sweep has {list(sweep)}")
    sweep = {k: v for k, v in sweep.items() if k in _ROWS.value}
  results = {}
  for name, config in sweep.items():
    if _NUM_STEPS.value:
      config.train.num_steps = _NUM_STEPS.value
      config.train.checkpoint_every = min(config.train.checkpoint_every, _NUM_STEPS.value)
      config.train.eval_every = 0
    if _DATASET.value:
      config.data.name = _DATASET.value
    if _DATA_DIR.value:
      config.data.data_dir = _DATA_DIR.value
    print(f"== {name}", flush=True)
    results[name] = run_row(config, row_dir(_WORKDIR.value, name), _EVAL_EXAMPLES.value)
  table = markdown(_SWEEP.value, results)
  print(table, end="")
  with open(os.path.join(_WORKDIR.value, "results.md"), "w") as f:
    f.write(table)


if __name__ == "__main__":
  common.run(main)
