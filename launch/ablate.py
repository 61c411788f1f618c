"""Runs a sweep of the papers' ablations (`configs/ablations.py`) and writes its table.

  python -m launch.ablate --sweep=wavenet --workdir=runs/ablate [--num_steps=800]
      [--eval_examples=32] [--rows="dilated x1,dilated x2"]
  python -m launch.ablate --sweep=conditioning --workdir=runs/ablate_conditioning
  python -m launch.ablate --sweep=vocoder --workdir=runs/ablate_vocoder

Each row trains (or resumes) WORKDIR/<row> with the shared trainer (a row may start from an
earlier row's run: `ablations.ROW_PREFIX`), then evaluates the test split; the table (test
NLL in mu-law bits per sample, comparable across outputs; receptive field; parameters; steps;
speaker-probe accuracy and pYIN's voiced share of samples; a speaker encoder's row: its test
accuracy, below the table) is printed and written to WORKDIR/results.md. Re-running reuses
finished rows. --num_steps overrides every row's steps (the sweep's default: the base
config's), keeping rows comparable.

Speaker probe (`audiojax.eval.speaker_probe`): a classifier fitted on the training split's real
utterances names the speaker of --probe_clips samples per row (--probe_seconds each), drawn for
the training speakers in turn: by speaker id, by the speaker vector of the speaker's first
validation utterance (speaker-embedding rows), or unconditioned (a row without speakers, whose
score shows chance); a locally conditioned model (a vocoder, text-to-speech) resynthesises
held-out test clips instead (--probe_split), each given its own speaker's id or vector. Each
row is scored twice: with the samples' features standardised as the real utterances' were,
and standardised over the row's own samples (`speaker_probe`: generated audio can otherwise
all land on one speaker). Also reported: the probe's accuracy and the voiced share on real
test utterances.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from audiojax.data import pipeline
from audiojax.eval import speaker_probe, voicing
from audiojax.train import tasks, trainer
from configs import ablations
from launch import common

_SWEEP = flags.DEFINE_string("sweep", "wavenet", "Which sweep (configs/ablations.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where each row's run and the table go.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Training steps of every row.")
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", 32, "Test utterances per row.")
_ROWS = flags.DEFINE_list("rows", None, "Only these rows (names as in the table).")
_BASE = flags.DEFINE_string("base", "unconditional", "The config variant the rows start from "
                            "(configs/wavenet.py; tiny for a smoke test).")
_DATASET = flags.DEFINE_string("dataset", None, "Every row's config.data.name (default: the "
                               "sweep's).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Every row's config.data.data_dir.")
_PROBE_CLIPS = flags.DEFINE_integer("probe_clips", 8, "Samples per row for the speaker probe "
                                    "(0: no probe).", lower_bound=0)
_PROBE_SECONDS = flags.DEFINE_float("probe_seconds", 1.0, "Length of each probe sample.")
_PROBE_TEMPERATURE = flags.DEFINE_float("probe_temperature", None, "Sampling temperature of "
                                        "the probe's samples (default: each row's "
                                        "config.train.sample_temperature).")
_PROBE_SPLIT = flags.DEFINE_string("probe_split", None, "The split whose clips locally "
                                   "conditioned rows resynthesise for the probe (default: the "
                                   "dataset's test split).")
_PROBE_EXAMPLES = flags.DEFINE_integer("probe_examples", 400, "Real training utterances the "
                                       "probe is fitted on.")
flags.mark_flag_as_required("workdir")


def row_dir(workdir: str, name: str) -> str:
  return os.path.join(workdir, ablations.row_key(name))


def run_row(config, workdir: str, eval_examples: int) -> dict:
  state = trainer.train_and_evaluate(config, workdir)
  result = trainer.evaluate(workdir, "test", eval_examples)
  model, *_ = trainer.build(config, mesh_config={})
  return {"bits": result.get("mu_law_bits_per_sample", result.get("bits_per_sample")),
          "accuracy": result.get("accuracy"),  # A speaker encoder's row.
          "receptive_field": getattr(model, "receptive_field", None),
          "params": sum(x.size for x in jax.tree.leaves(state.params)),
          "steps": int(state.step)}


def probe_samples(workdir: str, probe: speaker_probe.SpeakerProbe, num_clips: int,
                  seconds: float, temperature: float | None = None,
                  split: str | None = None) -> dict[str, float]:
  """Speaker-probe accuracy and voiced share (pYIN, `voicing.mean_voicing`) of `num_clips`
  samples of the row trained in `workdir`: drawn for the probe's speakers in turn (module
  docstring), or for a locally conditioned model, its resyntheses of held-out clips of `split`
  (default: the test split; speakers in turn) from their features; given each speaker's id, or
  the speaker vector of the speaker's first validation utterance, or nothing, as the row is
  conditioned; at `temperature` (default: the run's sample_temperature)."""
  config = trainer.load_config(workdir)  # As trained (e.g. with its phoneme inventory).
  model, task, variables, _ = trainer.restore_variables(config, workdir)
  length = int(seconds * config.data.sample_rate_hz)
  speakers = np.array(probe.speakers)[np.arange(num_clips) % len(probe.speakers)]
  speaker, kwargs = None, {}
  if config.model.get("condition_channels", 0):
    _, speakers, kwargs["condition"] = tasks.resynthesis_inputs(
        model, config.data, split or config.data.test_split, num_clips, length)
  if config.model.get("speaker_embedding_dim", 0):
    first = {}
    for example in pipeline.utterances(config.data, config.data.eval_split, process_index=0,
                                       process_count=1):
      first.setdefault(example["speaker"], example["audio"])
    missing = sorted(set(speakers.tolist()) - first.keys())
    if missing:
      raise ValueError(f"speakers {missing} have no {config.data.eval_split} utterance to "
                       "take a reference from")
    reference_length = max(first[s].shape[0] for s in speakers)
    references = np.stack([np.resize(first[s], reference_length) for s in speakers])
    speaker = tasks.speaker_vectors(model, variables, references)
  elif config.model.get("num_speakers", 0):
    speaker = jnp.asarray(speakers, jnp.int32)
  if temperature is None:
    temperature = config.train.get("sample_temperature", 1.0)
  audio = np.asarray(task.generate(model, variables, jax.random.PRNGKey(config.seed), num_clips,
                                   length, speaker, temperature, **kwargs))
  voiced = (voicing.mean_voicing(audio, config.data.sample_rate_hz)["voiced_fraction"]
            if length >= voicing.frame_samples(config.data.sample_rate_hz) else None)
  return {"probe": probe.accuracy(list(audio), speakers),
          "probe_over_samples": (probe.accuracy(list(audio), speakers, True)
                                 if num_clips > 1 else None),
          "voiced": voiced}


def markdown(sweep: str, rows: dict[str, dict], probe_real: tuple[float, float] | None = None,
             voiced_real: float | None = None, samples: str = "") -> str:
  """The sweep's table; `probe_real`: the probe's accuracy on real test utterances (standardised
  as the training ones', over themselves); `samples` says how the probe's samples were drawn."""
  real = []
  if probe_real is not None:
    real.append("probe on real test utterances: {:.2f} / {:.2f}".format(*probe_real))
  if voiced_real is not None:
    real.append(f"voiced share on real test utterances: {voiced_real:.2f}")
  real = ([samples] if samples else []) + real
  lines = [f"Sweep `{sweep}`: test split, mu-law bits per sample (lower is better); speaker "
           "probe: share of samples a classifier of real utterances attributes to the "
           "speaker they were drawn for, their features standardised as the real utterances' "
           "or by the row's samples' own mean and spread (`speaker_probe`: a shift common to "
           "all samples does not decide); voiced: pYIN's voiced share of their loud frames"
           + (f" ({'; '.join(real)})." if real else "."),
           "", "| row | test bits/sample | receptive field (samples) | params | steps | "
           "speaker probe (samples) | the same, standardised over the samples | "
           "voiced (samples) |", "|---|---|---|---|---|---|---|---|"]
  show = lambda value, digits=2: f"{value:.{digits}f}" if value is not None else "-"
  notes = []
  for name, r in rows.items():
    lines.append(f"| {name} | {show(r['bits'], 4)} | {r['receptive_field'] or '-'} | "
                 f"{r['params'] / 1e6:.2f}M | {r['steps']} | {show(r.get('probe'))} | "
                 f"{show(r.get('probe_over_samples'))} | {show(r.get('voiced'))} |")
    if r.get("bits") is None and r.get("accuracy") is not None:
      notes.append(f"{name}: names the speaker of test crops with accuracy {r['accuracy']:.3f}.")
  return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv):
  del argv
  sweep = ablations.get_sweep(_SWEEP.value, _BASE.value)
  if _ROWS.value:
    unknown = set(_ROWS.value) - set(sweep)
    if unknown:
      raise ValueError(f"unknown rows {sorted(unknown)}; the sweep has {list(sweep)}")
    sweep = {k: v for k, v in sweep.items() if k in _ROWS.value}
  results, probe, probe_real, voiced_real = {}, None, None, None
  for name, config in sweep.items():
    if _NUM_STEPS.value:
      config.train.num_steps = _NUM_STEPS.value
      config.train.checkpoint_every = min(config.train.checkpoint_every, _NUM_STEPS.value)
      config.train.eval_every = 0
    if _DATASET.value:
      config.data.name = _DATASET.value
    if _DATA_DIR.value:
      config.data.data_dir = _DATA_DIR.value
    if config.train.get("init_from", "").startswith(ablations.ROW_PREFIX):
      config.train.init_from = row_dir(_WORKDIR.value,
                                       config.train.init_from[len(ablations.ROW_PREFIX):])
    print(f"== {name}", flush=True)
    workdir = row_dir(_WORKDIR.value, name)
    results[name] = run_row(config, workdir, _EVAL_EXAMPLES.value)
    if _PROBE_CLIPS.value and config.model.name == "wavenet":
      if probe is None:
        probe = speaker_probe.fit_on_corpus(config.data, config.data.train_split,
                                            _PROBE_EXAMPLES.value)
        test = list(pipeline.utterances(config.data, config.data.test_split,
                                        max_examples=_EVAL_EXAMPLES.value, process_index=0,
                                        process_count=1))
        probe_real = tuple(probe.accuracy([e["audio"] for e in test],
                                          [e["speaker"] for e in test], over)
                           for over in (False, True))
        voiced_real = voicing.mean_voicing([e["audio"] for e in test],
                                           config.data.sample_rate_hz)["voiced_fraction"]
      results[name].update(probe_samples(workdir, probe, _PROBE_CLIPS.value,
                                         _PROBE_SECONDS.value, _PROBE_TEMPERATURE.value,
                                         _PROBE_SPLIT.value))
  temperature = (f"temperature {_PROBE_TEMPERATURE.value}"
                 if _PROBE_TEMPERATURE.value is not None else "each row's sample_temperature")
  samples = (f"{_PROBE_CLIPS.value} samples of {_PROBE_SECONDS.value} s per row, {temperature}"
             if probe else "")
  table = markdown(_SWEEP.value, results, probe_real, voiced_real, samples)
  print(table, end="")
  with open(os.path.join(_WORKDIR.value, "results.md"), "w") as f:
    f.write(table)


if __name__ == "__main__":
  common.run(main)
