"""Token datasets: what the tokenizer jobs write and AudioLM's stages read.

  DIR/info.json            kind (semantic | acoustic), tokenizer fingerprint, vocab_size per
                           level, levels, frame_rate_hz, source dataset, records per split
  DIR/<split>.array_record one msgpack record per utterance: tokens int32 [frames, levels],
                           speaker int, index int (the utterance's index in its split)

`python -m launch.extract_tokens` writes them; a reader passes the fingerprint it expects
(`open_split(..., fingerprint=...)`), and a mismatch (tokens from another tokenizer than the
one the stage trains with) is a clear error, not silently wrong training data. Each split is
written to a temporary name and renamed when complete; info.json is rewritten after each.
"""

import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
from array_record.python import array_record_module
from flax import serialization

INFO = "info.json"


class TokenDatasetError(ValueError):
  """Missing, incomplete or mismatched token dataset."""


def read_info(directory: str) -> dict[str, Any]:
  path = os.path.join(directory, INFO)
  if not os.path.exists(path):
    raise TokenDatasetError(f"{directory} holds no token dataset ({INFO} missing): write one "
                            "with python -m launch.extract_tokens")
  with open(path) as f:
    return json.load(f)


def write_split(directory: str, split: str, records: Iterable[dict[str, Any]],
                info: dict[str, Any]) -> int:
  """Writes one split (records: {'tokens': int [frames(, levels)], 'speaker', 'index'}) and
  merges `info` (plus this split's count) into info.json. Returns the record count. An
  existing info.json must carry the same fingerprint."""
  os.makedirs(directory, exist_ok=True)
  previous = read_info(directory) if os.path.exists(os.path.join(directory, INFO)) else {}
  if previous and previous.get("fingerprint") != info["fingerprint"]:
    raise TokenDatasetError(
        f"{directory} holds tokens of tokenizer {previous.get('fingerprint')}, not "
        f"{info['fingerprint']}: write to another directory")
  final = os.path.join(directory, f"{split}.array_record")
  tmp = final + ".tmp"
  writer = array_record_module.ArrayRecordWriter(tmp, "group_size:1")
  count = 0
  for record in records:
    tokens = np.asarray(record["tokens"], np.int32)
    tokens = tokens[:, None] if tokens.ndim == 1 else tokens
    writer.write(serialization.msgpack_serialize(
        {"tokens": tokens, "speaker": int(record.get("speaker", 0)),
         "index": int(record["index"])}))
    count += 1
  writer.close()
  os.replace(tmp, final)
  merged = {**previous, **info, "splits": {**previous.get("splits", {}), split: count}}
  with open(os.path.join(directory, INFO + ".tmp"), "w") as f:
    json.dump(merged, f, indent=2)
  os.replace(os.path.join(directory, INFO + ".tmp"), os.path.join(directory, INFO))
  return count


class Split:
  """Random access to one split's records: `split[i]` -> {'tokens', 'speaker', 'index'}."""

  def __init__(self, directory: str, split: str):
    self.path = os.path.join(directory, f"{split}.array_record")
    if not os.path.exists(self.path):
      raise TokenDatasetError(f"{directory} has no split {split!r}")
    self._reader = array_record_module.ArrayRecordReader(self.path)

  def __len__(self) -> int:
    return self._reader.num_records()

  def __getitem__(self, i: int) -> dict[str, Any]:
    try:
      record = serialization.msgpack_restore(self._reader.read([i])[0])
    except Exception as err:  # msgpack raises several types for a damaged record.
      raise TokenDatasetError(f"record {i} of {self.path} is damaged: {err}") from err
    return {"tokens": np.asarray(record["tokens"], np.int32), "speaker": int(record["speaker"]),
            "index": int(record["index"])}


def open_split(directory: str, split: str, fingerprint: str | None = None) -> Split:
  """One split; with `fingerprint`, a clear error unless the tokens were made by it."""
  info = read_info(directory)
  if fingerprint is not None and info["fingerprint"] != fingerprint:
    raise TokenDatasetError(
        f"{directory} holds {info['kind']} tokens of tokenizer {info['fingerprint']}, but this "
        f"job uses tokenizer {fingerprint}: re-extract the tokens with it")
  return Split(directory, split)
