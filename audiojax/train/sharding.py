"""Device meshes, logical axis rules, and placement of batches and train states.

Three layers, as in MaxText:
  1. mesh axes `data`, `fsdp`, `tensor`, sized by `config.mesh` (`make_mesh`);
  2. rules mapping logical axis names to mesh axes (`config.sharding_rules`, `RULES` below);
  3. per-tensor logical names: models wrap their initialisers in
     `nn.with_logical_partitioning(init, ("embed", "mlp"))` and constrain activations with
     `nn.with_logical_constraint(x, ("batch", "time", "embed"))`.
Data parallelism, FSDP and tensor parallelism are therefore config switches:
`--config.mesh.fsdp=4`, `--config.mesh.tensor=2`; a model adds annotations, nothing more.
A parameter axis that its mesh axes do not divide (e.g. 6 channels over tensor=4) stays
replicated (`logical_shardings`), so one set of names serves every width and mesh.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Logical name -> mesh axes. Batch rows are split over data and fsdp; FSDP shards parameters
# along their model-width (`embed`) axis; tensor parallelism splits hidden, head and vocabulary
# axes. Unlisted names (and `None`) stay replicated.
RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("time", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("vocab", "tensor"),
    ("conv_taps", None),
    ("classes", None),
)


def mesh_config(data: int = -1, fsdp: int = 1, tensor: int = 1) -> ml_collections.ConfigDict:
  """`config.mesh`: devices per axis (one may be -1: all the rest).

  `dcn_data` > 1 splits `data` over that many slices of a multi-slice TPU (the slow data-center
  network carries only data-parallel gradient reductions); the other sizes are then per slice.
  """
  return ml_collections.ConfigDict(dict(data=data, fsdp=fsdp, tensor=tensor, dcn_data=1))


def rules_from_config(config: ml_collections.ConfigDict) -> tuple[tuple[str, Any], ...]:
  """`config.sharding_rules` (lists after a JSON round trip) as flax's tuple-of-pairs rules."""
  rules = config.get("sharding_rules", RULES)
  return tuple((name, tuple(axes) if isinstance(axes, list) else axes) for name, axes in rules)


def _axis_sizes(mesh_cfg: ml_collections.ConfigDict | None, num_devices: int) -> list[int]:
  sizes = [int(mesh_cfg[a]) if mesh_cfg else (-1 if a == "data" else 1) for a in MESH_AXES]
  named = lambda: ", ".join(f"{a}={s}" for a, s in zip(MESH_AXES, sizes, strict=True))
  if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"config.mesh ({named()}): sizes must be positive, "
                     "with at most one -1 (all remaining devices)")
  known = int(np.prod([s for s in sizes if s != -1]))
  if -1 in sizes:
    if num_devices % known:
      raise ValueError(f"config.mesh ({named()}) does not divide the "
                       f"{num_devices} devices")
    sizes[sizes.index(-1)] = num_devices // known
  if int(np.prod(sizes)) != num_devices:
    raise ValueError(f"config.mesh ({named()}) needs {int(np.prod(sizes))} "
                     f"devices, but {num_devices} are available")
  return sizes


def make_mesh(mesh_cfg: ml_collections.ConfigDict | None = None,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A (data, fsdp, tensor) mesh over `devices` (default: all), laid out for the interconnect.

  Without a config every device is on `data` (pure data parallelism).
  """
  devices = list(devices if devices is not None else jax.devices())
  dcn = int(mesh_cfg.get("dcn_data", 1)) if mesh_cfg else 1
  sizes = _axis_sizes(mesh_cfg, len(devices) // dcn)
  if dcn > 1:  # Multi-slice TPU: data across slices (DCN), everything else inside one (ICI).
    array = mesh_utils.create_hybrid_device_mesh(sizes, [dcn, 1, 1], devices)
  elif len(devices) > 1 and devices[0].platform == "tpu":
    array = mesh_utils.create_device_mesh(sizes, devices)
  else:
    array = np.asarray(devices).reshape(sizes)
  return Mesh(array, MESH_AXES)


def use_cpu_cores(num_devices: int | None = None) -> None:
  """Makes the CPU backend expose `num_devices` devices (default: one per usable core).

  Call before JAX starts a backend. XLA:CPU runs a small op on one thread, so a chain of small
  ops (a sampler step) uses one core; split over these devices, a batch uses them all.
  """
  jax.config.update("jax_num_cpu_devices", num_devices or len(os.sched_getaffinity(0)))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data` and `fsdp`; replicated over `tensor`."""
  return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_shards(mesh: Mesh) -> int:
  """How many ways a global batch is split: data x fsdp."""
  return mesh.shape["data"] * mesh.shape["fsdp"]


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This host's rows -> global arrays split over `data` x `fsdp` (leading axis)."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def check_batch_size(global_batch: int, mesh: Mesh, microbatches: int = 1) -> None:
  shards = batch_shards(mesh) * microbatches
  if global_batch % shards:
    raise ValueError(f"data.batch_size={global_batch} must be a multiple of data x fsdp = "
                     f"{batch_shards(mesh)} batch shards"
                     + (f" times {microbatches} microbatches" if microbatches > 1 else ""))


def _divisible(spec: PartitionSpec, shape: tuple[int, ...],
               axis_sizes: Mapping[str, int]) -> PartitionSpec:
  """`spec` without the mesh axes that do not divide their dimension of `shape` (for each
  dimension, the longest prefix of its mesh axes whose sizes multiply to a divisor)."""
  fitted = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec)), strict=True):
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    kept, size = [], 1
    for axis in axes:
      if dim % (size * axis_sizes[axis]):
        break
      kept.append(axis)
      size *= axis_sizes[axis]
    fitted.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
  return PartitionSpec(*fitted)


def logical_shardings(boxed_tree: Any, mesh: Mesh, rules) -> Any:
  """NamedShardings for a tree holding `nn.LogicallyPartitioned` boxes (abstract or not).

  The result has the structure of `nn.meta.unbox(boxed_tree)`; unannotated leaves are
  replicated, and so is any axis that its mesh axes do not divide (`_divisible`).
  """
  specs = nn.logical_to_mesh(nn.get_partition_spec(boxed_tree), rules)  # None: no shape
  values = jax.tree.map(lambda x: x.value if isinstance(x, nn.Partitioned) else x, boxed_tree,
                        is_leaf=lambda x: isinstance(x, nn.Partitioned))
  return jax.tree.map(
      lambda spec, x: None if spec is None else NamedSharding(
          mesh, _divisible(spec, x.shape, mesh.shape)),
      specs, values, is_leaf=lambda x: x is None or isinstance(x, PartitionSpec))


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))
