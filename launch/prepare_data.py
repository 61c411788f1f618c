"""Builds a dataset offline into --data_dir and prints a summary of its splits.

  python -m launch.prepare_data --dataset=espeak_speech [--config=default] --data_dir=DIR
  python -m launch.prepare_data --dataset=music21_audio [--config=default] --data_dir=DIR
  python -m launch.prepare_data --dataset=folder:/path/to/audio --data_dir=DIR \
      [--workers=16] [--files_per_shard=256] [--sample_rate_hz=16000] [--skip_bad_files]
      [--beam_runner=DirectRunner|DataflowRunner|... --beam_option=--flag=value ...]

A dataset that is already built is reused (only the summary is printed). A folder becomes
array_record shards written by --workers processes, or by an Apache Beam pipeline on
--beam_runner (its workers must see the folder and --data_dir at the same paths); rerun
after an interruption to finish the missing shards. Training with
`--config.data.name=folder:/path` and the same data_dir then reads the shards.
"""

import importlib
import os

import tensorflow_datasets as tfds
from absl import flags, logging

from audiojax.data import pipeline
from launch import common

_DATASET = flags.DEFINE_string("dataset", None, "Dataset to build, e.g. espeak_speech.")
_CONFIG = flags.DEFINE_string("config", "default", "Builder config, e.g. tiny, default, large.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder to build the dataset into.")
_WORKERS = flags.DEFINE_integer("workers", None, "folder: worker processes (default: CPUs).")
_FILES_PER_SHARD = flags.DEFINE_integer("files_per_shard", 256, "folder: files per shard.")
_SAMPLE_RATE_HZ = flags.DEFINE_integer("sample_rate_hz", 16000, "folder: rate to store at.")
_SKIP_BAD_FILES = flags.DEFINE_bool("skip_bad_files", False,
                                    "folder: skip unreadable files (counted) instead of stopping.")
_BEAM_RUNNER = flags.DEFINE_string("beam_runner", None, "folder: write the shards with this "
                                   "Apache Beam runner instead of local processes.")
_BEAM_OPTIONS = flags.DEFINE_multi_string("beam_option", [], "folder: a Beam pipeline flag "
                                          "(repeatable), e.g. --beam_option=--project=P.")
flags.mark_flags_as_required(["dataset", "data_dir"])


def prepare(dataset: str, data_dir: str, config: str) -> tfds.core.DatasetBuilder:
  """Builds a built-in `dataset` (`pipeline.BUILT_IN`) into `data_dir` if missing."""
  if dataset not in pipeline.BUILT_IN:
    raise ValueError(f"unknown --dataset={dataset!r}; known datasets: "
                     f"{', '.join(pipeline.BUILT_IN)}, folder:/path")
  return importlib.import_module(f"audiojax.data.{dataset}").prepare(data_dir, config)


def summarize(builder: tfds.core.DatasetBuilder) -> str:
  """One line per split: utterances, hours of audio and speakers; then totals and disk size.

  Expects an int `audio` [samples] feature and, optionally, a ClassLabel `speaker` (or
  `instrument`, counted as speakers).
  """
  sample_rate_hz = (builder.info.metadata or {}).get("sample_rate_hz", 16000)
  label = next((k for k in ("speaker", "instrument") if k in builder.info.features), None)
  lines = [f"{builder.info.full_name} in {builder.data_dir} ({sample_rate_hz} Hz)",
           f"{'split':<22}{'utterances':>11}{'hours':>9}{'speakers':>10}"]
  total_samples, total_utterances = 0, 0
  for split in builder.info.splits:
    source = builder.as_data_source(split)
    samples, speakers = 0, set()
    for i in range(len(source)):
      example = source[i]
      samples += example["audio"].shape[0]
      speakers.add(int(example[label]) if label else 0)
    hours = samples / sample_rate_hz / 3600
    lines.append(f"{split:<22}{len(source):>11}{hours:>9.3f}{len(speakers):>10}")
    total_samples += samples
    total_utterances += len(source)
  disk_bytes = sum(
      os.path.getsize(os.path.join(builder.data_dir, name))
      for name in os.listdir(builder.data_dir)
  )
  num_speakers = builder.info.features[label].num_classes if label else 1
  lines.append(f"{'total':<22}{total_utterances:>11}"
               f"{total_samples / sample_rate_hz / 3600:>9.3f}{num_speakers:>10}")
  lines.append(f"disk: {disk_bytes / 2**20:.1f} MiB")
  return "\n".join(lines)


def summarize_folder(manifest: dict, data_dir: str) -> str:
  from audiojax.data import folder_shards

  where = folder_shards.prepared_dir(manifest["folder"], data_dir)
  lines = [f"folder:{manifest['folder']} in {where} ({manifest['sample_rate_hz']} Hz, "
           f"{len(manifest['speakers'])} speakers, {manifest['num_files']} files, "
           f"{manifest['skipped_files']} skipped)",
           f"{'split':<12}{'records':>10}{'shards':>8}"]
  for split, shards in manifest["splits"].items():
    lines.append(f"{split:<12}{sum(s['records'] for s in shards):>10}{len(shards):>8}")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  if _DATASET.value.startswith("folder:"):
    from audiojax.data import folder_shards

    folder = os.path.expanduser(_DATASET.value[len("folder:"):])
    manifest = folder_shards.prepare_folder(
        folder, _DATA_DIR.value, sample_rate_hz=_SAMPLE_RATE_HZ.value,
        files_per_shard=_FILES_PER_SHARD.value, num_workers=_WORKERS.value,
        skip_bad_files=_SKIP_BAD_FILES.value, beam_runner=_BEAM_RUNNER.value,
        beam_options=tuple(_BEAM_OPTIONS.value))
    print(summarize_folder(manifest, _DATA_DIR.value))
    return
  builder = prepare(_DATASET.value, _DATA_DIR.value, _CONFIG.value)
  print(summarize(builder))


if __name__ == "__main__":
  common.run(main)
