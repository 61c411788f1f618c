"""A folder of audio files -> sharded array_record files, built in parallel and resumable.

  python -m launch.prepare_data --dataset=folder:/path/to/audio --data_dir=DIR [--workers=16]

For folders too big to list and decode at every start-up (LibriLight: tens of thousands of
hours). The folder is listed once; files are split into train/validation/test (a hash of the
file name, as the `folder:` source does) and into shards of `files_per_shard` files, and
worker processes decode, resample and write each shard to
`DIR/folder_<hash of the path>/<split>-<i>-of-<n>.array_record`. A shard appears under its
final name only when complete, so an interrupted preparation resumes with the missing shards;
`manifest.json`, written last, lists every shard with its record count. The pipeline reads a
prepared folder through this manifest (no host lists the folder), and each host of a
multi-host job opens only its own shards.

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
                 skip_bad_files: bool) -> tuple[int, int]:
  """Decodes `paths` into one array_record file; returns (records, skipped files)."""
  tmp_path = out_path + ".incomplete"
  writer = array_record_module.ArrayRecordWriter(tmp_path, "group_size:1")
  written = skipped = 0
  try:
    for path, speaker in zip(paths, speakers, strict=True):
      try:
        audio = audio_io.load_audio(path, sample_rate_hz)
      except audio_io.AudioError as err:
        if not skip_bad_files:
          raise
        logging.warning("skipping %s", err)
        skipped += 1
        continue
      writer.write(encode_record(audio, speaker, path))
      written += 1
  finally:
    writer.close()
  os.replace(tmp_path, out_path)  # Complete shards only ever appear under their final name.
  return written, skipped


def prepare_folder(folder: str, data_dir: str, *, sample_rate_hz: int = 16000,
                   files_per_shard: int = 256, num_workers: int | None = None,
                   skip_bad_files: bool = False) -> dict:
  """Prepares `folder` (resuming a partial preparation); returns the manifest."""
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
  jobs = []  # (split, shard index, paths)
  for split in SPLITS:
    split_paths = [p for p in paths if pipeline.folder_split(p) == split]
    num_shards = max(1, -(-len(split_paths) // files_per_shard))
    for i in range(num_shards):
      jobs.append((split, i, num_shards, split_paths[i::num_shards]))

  shards = {split: [] for split in SPLITS}
  skipped_total = 0
  # Spawned, not forked: a fork of a process running JAX's or grain's threads can hang or die.
  spawn = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=spawn) as pool:
    futures = {}
    for split, i, n, shard_paths in jobs:
      name = f"{split}-{i:05d}-of-{n:05d}.array_record"
      out_path = os.path.join(out_dir, name)
      if os.path.exists(out_path):  # Finished before an interruption.
        count = array_record_module.ArrayRecordReader(out_path).num_records()
        shards[split].append({"file": name, "records": count})
        continue
      future = pool.submit(_write_shard, shard_paths, [speaker_of(p) for p in shard_paths],
                           out_path, sample_rate_hz, skip_bad_files)
      futures[future] = (split, name)
    for future in concurrent.futures.as_completed(futures):
      split, name = futures[future]
      count, skipped = future.result()
      skipped_total += skipped
      shards[split].append({"file": name, "records": count})
      logging.info("wrote %s (%d records)", name, count)
  for split in SPLITS:
    shards[split].sort(key=lambda s: s["file"])
  manifest = {"folder": os.path.abspath(folder), "sample_rate_hz": sample_rate_hz,
              "speakers": speaker_names, "num_files": len(paths),
              "skipped_files": skipped_total, "splits": shards}
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
