"""Orbax checkpoints of the train state, the data iterator state and the model fingerprint.

Layout: `WORKDIR/checkpoints/<step>/{state,data,meta}`. `meta` holds the model's config and
a fingerprint of it; restoring into a different model or config is refused with a clear
error. Saves are asynchronous; `wait()` before exiting.
"""

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp


class CheckpointMismatchError(ValueError):
  """The checkpoint was written by another model or model config."""


# Model fields that change how the model computes or trains, not its parameters: a checkpoint
# resumes under another value (e.g. fp32 -> bf16 compute, remat on, other loss weights).
COMPUTE_ONLY_FIELDS = ("dtype", "remat", "reconstruction_weight", "adversarial_weight",
                       "feature_weight", "commitment_weight", "context_crop",
                       "speaker_loss_weight")


def model_fingerprint(model_config: ml_collections.ConfigDict) -> str:
  """A short stable hash of the model config: what a checkpoint's parameters depend on."""
  fields = {k: v for k, v in model_config.to_dict().items() if k not in COMPUTE_ONLY_FIELDS}
  text = json.dumps(fields, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_meta(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return {
      "model_name": config.model.name,
      "fingerprint": model_fingerprint(config.model),
      "config": json.loads(config.to_json_best_effort()),
  }


def make_manager(workdir: str, keep: int = 3, async_save: bool = True,
                 read_only: bool = False) -> ocp.CheckpointManager:
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, enable_async_checkpointing=async_save, read_only=read_only,
      create=not read_only)
  return ocp.CheckpointManager(directory, options=options)


def _gather_json(obj: Any) -> list[Any]:
  """Every process's `obj` (JSON-able), in process order; call on all processes."""
  if jax.process_count() == 1:
    return [obj]
  from jax.experimental import multihost_utils

  data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
  lengths = multihost_utils.process_allgather(np.int32(data.size))
  padded = np.zeros(int(np.max(lengths)), np.uint8)
  padded[:data.size] = data
  rows = multihost_utils.process_allgather(padded)  # [processes, longest]
  return [json.loads(bytes(row[:n])) for row, n in zip(rows, lengths, strict=True)]


def save(manager: ocp.CheckpointManager, step: int, state: Any, data_state: dict,
         meta: dict) -> None:
  """Starts an (async) save of everything needed to resume exactly at `step`.

  `data_state` is this process's data iterator state; every process's is saved (process 0
  writes the JSON), so each host resumes its own stream.
  """
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=ocp.args.JsonSave({"process_states": _gather_json(data_state)}),
      meta=ocp.args.JsonSave(meta),
  ), force=True)


def _this_process_data_state(data: dict, where: str) -> dict | None:
  """This process's iterator state from a checkpoint's `data` item (None: start afresh)."""
  states = data.get("process_states")
  if states is None:  # A single-process checkpoint of an earlier layout.
    return data
  if len(states) != jax.process_count():
    logging.warning("%s was written by %d processes, this job has %d: the data streams "
                    "restart (parameters and optimizer state resume exactly)", where,
                    len(states), jax.process_count())
    return None
  return states[jax.process_index()]


def read_meta(manager: ocp.CheckpointManager, step: int | None = None) -> dict | None:
  """The meta dict of checkpoint `step` (default: latest), or None if there is none."""
  step = manager.latest_step() if step is None else step
  if step is None:
    return None
  return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def check_meta(meta: dict, expected: dict, where: str) -> None:
  """Raises CheckpointMismatchError unless `meta` was written by the expected model/config."""
  if meta["model_name"] != expected["model_name"]:
    raise CheckpointMismatchError(
        f"{where} holds a checkpoint of model {meta['model_name']!r}, not "
        f"{expected['model_name']!r}: use another --workdir")
  if meta["fingerprint"] != expected["fingerprint"]:
    old, new = meta["config"].get("model", {}), expected["config"].get("model", {})
    # A field added to the model after the checkpoint was written is off by default (False,
    # 0, None, empty: the computation as before it existed), so a checkpoint that lacks it
    # matches a config that leaves it off.
    diffs = [f"model.{k}: checkpoint {old.get(k)!r} vs config {new.get(k)!r}"
             for k in sorted(set(old) | set(new))
             if old.get(k) != new.get(k) and k not in COMPUTE_ONLY_FIELDS
             and not (k not in old and not new[k])]
    if not diffs and meta["config"].get("model"):
      return
    raise CheckpointMismatchError(
        f"{where} holds a checkpoint of a different {meta['model_name']} config ("
        + "; ".join(diffs or ["fingerprint differs"]) + "): use another --workdir")


def restore(manager: ocp.CheckpointManager, abstract_state: Any, expected_meta: dict,
            step: int | None = None) -> tuple[Any, dict, int] | None:
  """(state, data_state, step) of checkpoint `step` (default latest), or None if none.

  `abstract_state` is a pytree of jax.ShapeDtypeStruct (with shardings) to restore into.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    return None
  check_meta(read_meta(manager, step), expected_meta, str(manager.directory))

  def restore_into(target):
    return manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))

  try:
    restored = restore_into(abstract_state)
    state = restored.state
  except ValueError as err:
    # Checkpoints written before the train state had `model_state` lack it; a model without
    # non-parameter state restores them as they are.
    if "do not match" not in str(err) or getattr(abstract_state, "model_state", None) != {}:
      raise CheckpointMismatchError(
          f"{manager.directory} step {step} does not fit this train state (written by another "
          f"audiojax version or model?): {err}") from err
    fields = {f.name: getattr(abstract_state, f.name) for f in dataclasses.fields(abstract_state)
              if f.name != "model_state"}
    restored = restore_into(fields)
    state = abstract_state.replace(**restored.state)
  return state, _this_process_data_state(restored.data, str(manager.directory)), step


def abstract(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a pytree of arrays, to restore into."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
