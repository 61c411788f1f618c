"""Builds a dataset offline into --data_dir and prints a summary of its splits.

  python -m launch.prepare_data --dataset=espeak_speech [--config=default] --data_dir=DIR

A dataset that is already built is reused (only the summary is printed).
"""

import os
from collections.abc import Callable

import tensorflow_datasets as tfds
from absl import flags, logging

from launch import common

_DATASET = flags.DEFINE_string("dataset", None, "Dataset to build, e.g. espeak_speech.")
_CONFIG = flags.DEFINE_string("config", "default", "Builder config, e.g. tiny, default, large.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder to build the dataset into.")
flags.mark_flags_as_required(["dataset", "data_dir"])


def _espeak_speech(data_dir: str, config: str) -> tfds.core.DatasetBuilder:
  from audiojax.data import espeak_speech

  return espeak_speech.prepare(data_dir, config)


# Dataset name -> prepare(data_dir, config) -> builder.
PREPARERS: dict[str, Callable[[str, str], tfds.core.DatasetBuilder]] = {
    "espeak_speech": _espeak_speech,
}


def prepare(dataset: str, data_dir: str, config: str) -> tfds.core.DatasetBuilder:
  """Builds `dataset` (a PREPARERS key) into `data_dir` if missing; returns its builder."""
  if dataset not in PREPARERS:
    raise ValueError(f"unknown --dataset={dataset!r}; known datasets: {', '.join(PREPARERS)}")
  return PREPARERS[dataset](data_dir, config)


def summarize(builder: tfds.core.DatasetBuilder) -> str:
  """One line per split: utterances, hours of audio and speakers; then totals and disk size.

  Expects an int `audio` [samples] feature and, optionally, a ClassLabel `speaker`.
  """
  sample_rate_hz = (builder.info.metadata or {}).get("sample_rate_hz", 16000)
  has_speaker = "speaker" in builder.info.features
  lines = [f"{builder.info.full_name} in {builder.data_dir} ({sample_rate_hz} Hz)",
           f"{'split':<22}{'utterances':>11}{'hours':>9}{'speakers':>10}"]
  total_samples, total_utterances = 0, 0
  for split in builder.info.splits:
    source = builder.as_data_source(split)
    samples, speakers = 0, set()
    for i in range(len(source)):
      example = source[i]
      samples += example["audio"].shape[0]
      speakers.add(int(example["speaker"]) if has_speaker else 0)
    hours = samples / sample_rate_hz / 3600
    lines.append(f"{split:<22}{len(source):>11}{hours:>9.3f}{len(speakers):>10}")
    total_samples += samples
    total_utterances += len(source)
  disk_bytes = sum(
      os.path.getsize(os.path.join(builder.data_dir, name))
      for name in os.listdir(builder.data_dir)
  )
  num_speakers = builder.info.features["speaker"].num_classes if has_speaker else 1
  lines.append(f"{'total':<22}{total_utterances:>11}"
               f"{total_samples / sample_rate_hz / 3600:>9.3f}{num_speakers:>10}")
  lines.append(f"disk: {disk_bytes / 2**20:.1f} MiB")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  builder = prepare(_DATASET.value, _DATA_DIR.value, _CONFIG.value)
  print(summarize(builder))


if __name__ == "__main__":
  common.run(main)
