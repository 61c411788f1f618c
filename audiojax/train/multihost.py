"""Multi-process start-up: `jax.distributed` on TPU pods, GPU clusters and CPU test rigs.

Each process runs the same program; `initialize` joins them into one JAX runtime whose
`jax.devices()` spans every host. Afterwards each host feeds only its rows of a global batch
(`jax.process_index()` picks its data shard), only process 0 writes logs and samples, and
orbax saves and restores collectively.
"""

import logging
import os

import jax


def _in_a_cluster() -> bool:
  """Cloud TPU VMs of several hosts, multi-slice TPU, SLURM or Open MPI with several tasks:
  there `jax.distributed.initialize()` finds the coordinator and process ids on its own."""
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
  if "," in hosts or os.environ.get("MEGASCALE_COORDINATOR_ADDRESS"):
    return True
  return any(int(os.environ.get(k, "1") or 1) > 1
             for k in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, mode: str = "auto") -> bool:
  """Joins this process to the others; returns whether it runs distributed.

  mode: "auto" initializes when a coordinator is given or the environment names a cluster of
  several processes (a one-host run stays a plain process); "on" always; "off" never.
  On CPU the processes talk through gloo collectives.
  """
  if mode not in ("auto", "on", "off"):
    raise ValueError(f"distributed mode {mode!r}: use auto, on or off")
  explicit = coordinator_address is not None
  if mode == "off" or (mode == "auto" and not explicit and not _in_a_cluster()):
    return False
  if explicit and (num_processes is None or process_id is None):
    raise ValueError("--coordinator_address needs --num_processes and --process_id")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  logging.info("process %d of %d, %d local of %d devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True
