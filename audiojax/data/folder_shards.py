"""A folder of audio files -> sharded array_record files, built in parallel and resumable.

  python -m launch.prepare_data --dataset=folder:/path/to/audio --data_dir=DIR [--workers=16]
  python -m launch.prepare_data --dataset=folder:/path/to/audio --data_dir=DIR \
      --beam_runner=DataflowRunner --beam_option=--project=P --beam_option=--region=R ...

For folders too big to list and decode at every start-up (LibriLight: tens of thousands of
hours). The folder is listed once; files are split into train/validation/test (a hash of the
file name, as the `folder:` source does) and into shards of `files_per_shard` files, and
worker processes (or the workers of an Apache Beam pipeline: `--beam_runner`) decode,
resample and write each shard to `DIR/folder_<hash of the path>/<split>-<i>-of-<n>.array_record`.
A shard appears under its final name only when complete, so an interrupted preparation resumes
with the missing shards; `manifest.json`, written last, lists every shard with its record
count. The pipeline reads a prepared folder through this manifest (no host lists the folder),
and each host of a multi-host job opens only its own shards.

A record is a msgpack dict: audio int16 [samples] at `sample_rate_hz`, speaker int, path str.
"""

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
from typing import Any

import numpy as np
from array_record.python import array_record_module
from flax import serialization

from audiojax.data import audio_io

MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")


def prepared_dir(folder: str, data_dir: str) -> str:
  """Where the shards of `folder` live under `data_dir`."""
  digest = hashlib.sha1(os.path.abspath(folder).encode()).hexdigest()[:12]
  return os.path.join(data_dir, f"folder_{digest}")


def read_manifest(folder: str, data_dir: str) -> dict | None:
  """The manifest of a prepared folder, or None if it was never (completely) prepared."""
  path = os.path.join(prepared_dir(folder, data_dir), MANIFEST)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def encode_record(audio: np.ndarray, speaker: int, path: str) -> bytes:
  pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
  return serialization.msgpack_serialize({"audio": pcm, "speaker": speaker, "path": path})


def decode_record(record: bytes) -> dict[str, Any]:
  """-> {'audio': float32 [samples] in [-1, 1], 'speaker': int, 'path': str}."""
  try:
    fields = serialization.msgpack_restore(record)
  except Exception as err:  # msgpack raises several types for a damaged record.
    raise audio_io.AudioError(f"corrupt record in a prepared folder shard: {err}") from err
  return {"audio": fields["audio"].astype(np.float32) / 32767.0,
          "speaker": int(fields["speaker"]), "path": fields["path"]}


def _write_shard(paths: list[str], speakers: list[int], out_path: str, sample_rate_hz: int,
                 skip_bad_files: bool) -> None:
  """Decodes `paths` into one array_record file (a file that fails to load is skipped and
  logged with `skip_bad_files`, else the error stops the shard)."""
  tmp_path = out_path + ".incomplete"
  writer = array_record_module.ArrayRecordWriter(tmp_path, "group_size:1")
  try:
    for path, speaker in zip(paths, speakers, strict=True):
      try:
        audio = audio_io.load_audio(path, sample_rate_hz)
      except audio_io.AudioError as err:
        if not skip_bad_files:
          raise
        logging.warning("skipping %s", err)
        continue
      writer.write(encode_record(audio, speaker, path))
  finally:
    writer.close()
  os.replace(tmp_path, out_path)  # Complete shards only ever appear under their final name.
  logging.info("wrote %s", out_path)


def _write_shards_locally(jobs: list[tuple], num_workers: int | None) -> None:
  """`_write_shard(*job)` for every job, in `num_workers` processes of this machine."""
  # Spawned, not forked: a fork of a process running JAX's or grain's threads can hang or die.
  spawn = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=spawn) as pool:
    for future in concurrent.futures.as_completed([pool.submit(_write_shard, *job)
                                                   for job in jobs]):
      future.result()  # A worker's error stops the preparation here.


def _write_shards_with_beam(jobs: list[tuple], runner: str, options: list[str]) -> None:
  """`_write_shard(*job)` for every job as an Apache Beam pipeline on `runner` (DirectRunner
  here; DataflowRunner, FlinkRunner, SparkRunner... on a cluster, whose workers must see the
  folder and the data_dir at the same paths). `options`: Beam pipeline flags, e.g.
  ["--direct_num_workers=8", "--direct_running_mode=multi_processing"]."""
  import apache_beam as beam  # Optional (`pip install audiojax[beam]`): only this path needs it.
  from apache_beam.options.pipeline_options import PipelineOptions

  with beam.Pipeline(runner=runner, options=PipelineOptions(list(options))) as p:
    _ = (p | "shards" >> beam.Create(jobs)
         | "spread" >> beam.Reshuffle()  # One shard per work item, spread over the workers.
         | "write" >> beam.MapTuple(_write_shard))


def prepare_folder(folder: str, data_dir: str, *, sample_rate_hz: int = 16000,
                   files_per_shard: int = 256, num_workers: int | None = None,
                   skip_bad_files: bool = False, beam_runner: str | None = None,
                   beam_options: tuple[str, ...] = ()) -> dict:
  """Prepares `folder` (resuming a partial preparation); returns the manifest.

  The shards are written by `num_workers` local processes, or, with `beam_runner`, by an
  Apache Beam pipeline (`_write_shards_with_beam`). The manifest counts each shard's records
  from the written file, and a shard's skipped files as its files minus its records.
  """
  from audiojax.data import pipeline  # The folder listing and split rules of the pipeline.

  out_dir = prepared_dir(folder, data_dir)
  manifest = read_manifest(folder, data_dir)
  if manifest is not None:
    if manifest["sample_rate_hz"] != sample_rate_hz:
      raise ValueError(f"{out_dir} holds {folder} at {manifest['sample_rate_hz']} Hz, not "
                       f"{sample_rate_hz} Hz: delete it to prepare again")
    return manifest
  os.makedirs(out_dir, exist_ok=True)
  paths = pipeline.list_audio_files(folder)
  speaker_names, speaker_of = pipeline.folder_speakers(folder, paths)
  shards = []  # (split, file name, paths)
  for split in SPLITS:
    split_paths = [p for p in paths if pipeline.folder_split(p) == split]
    num_shards = max(1, -(-len(split_paths) // files_per_shard))
    for i in range(num_shards):
      shards.append((split, f"{split}-{i:05d}-of-{num_shards:05d}.array_record",
                     split_paths[i::num_shards]))
  # Shards finished before an interruption are kept.
  jobs = [(shard_paths, [speaker_of(p) for p in shard_paths], os.path.join(out_dir, name),
           sample_rate_hz, skip_bad_files)
          for _, name, shard_paths in shards if not os.path.exists(os.path.join(out_dir, name))]
  if beam_runner:
    _write_shards_with_beam(jobs, beam_runner, list(beam_options))
  else:
    _write_shards_locally(jobs, num_workers)

  splits, skipped = {split: [] for split in SPLITS}, 0
  for split, name, shard_paths in shards:
    count = array_record_module.ArrayRecordReader(os.path.join(out_dir, name)).num_records()
    splits[split].append({"file": name, "records": count})
    skipped += len(shard_paths) - count
  manifest = {"folder": os.path.abspath(folder), "sample_rate_hz": sample_rate_hz,
              "speakers": speaker_names, "num_files": len(paths),
              "skipped_files": skipped, "splits": splits}
  tmp = os.path.join(out_dir, MANIFEST + ".incomplete")
  with open(tmp, "w") as f:
    json.dump(manifest, f, indent=1)
  os.replace(tmp, os.path.join(out_dir, MANIFEST))
  return manifest


def shard_paths(folder: str, data_dir: str, split: str, manifest: dict,
                process_index: int = 0, process_count: int = 1) -> tuple[list[str], bool]:
  """(shard files to open, whether they are this host's alone).

  With at least as many shards as hosts, host i opens shards i::process_count only; with
  fewer, every host opens all and the pipeline splits them by record.
  """
  files = [s["file"] for s in manifest["splits"][split] if s["records"]]
  if not files:
    raise ValueError(f"prepared folder {folder} has no {split} records")
  host_local = len(files) >= process_count > 1
  if host_local:
    files = files[process_index::process_count]
  return [os.path.join(prepared_dir(folder, data_dir), f) for f in files], host_local
