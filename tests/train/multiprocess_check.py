"""One of two processes training together through jax.distributed on CPU (gloo).

  python -m tests.train.multiprocess_check PORT PROCESS_ID OUT.npz

Each process has 2 CPU devices and feeds its half of a fixed 8-row batch; the mesh spans the
4 devices. Process 0 writes the params after two steps, for tests/train/test_sharding.py to
compare with one process on the whole batch.
"""

import sys

import jax

jax.config.update("jax_num_cpu_devices", 2)

import numpy as np  # noqa: E402

from audiojax.train import multihost, sharding, trainer  # noqa: E402
from tests.train.multidevice_checks import batch, tiny_config  # noqa: E402


def main(port: str, process_id: int, out: str) -> None:
  assert multihost.initialize(f"127.0.0.1:{port}", 2, process_id)
  assert jax.device_count() == 4 and jax.local_device_count() == 2
  config = tiny_config(-1, 1, 1)
  model, task, tx, schedule, mesh, rules = trainer.build(config)
  state, shardings = trainer.init_state(config, model, task, tx, mesh, rules)
  step = trainer.jit_in_mesh(trainer.make_train_step(model, task, tx, schedule), mesh, rules,
                             in_shardings=(shardings, sharding.batch_sharding(mesh), None),
                             out_shardings=(shardings, None))
  for i in range(2):
    rows = jax.tree.map(lambda x: x[4 * process_id:4 * (process_id + 1)], batch(i))
    state, _ = step(state, sharding.shard_batch(rows, mesh), jax.random.key(i))
  if process_id == 0:
    leaves = jax.tree_util.tree_leaves_with_path(state.params)
    np.savez(out, **{jax.tree_util.keystr(k): np.asarray(v.addressable_data(0))
                     for k, v in leaves})
  print("ok")


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
