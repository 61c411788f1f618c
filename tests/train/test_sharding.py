"""Meshes, logical sharding, gradient accumulation and mixed precision of the shared trainer."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from audiojax.train import checkpoint, sharding, trainer
from tests.train.multidevice_checks import batch, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_check(*args: str) -> None:
  """Runs a check of tests/train/multidevice_checks.py with 8 CPU devices, in its own process."""
  result = subprocess.run([sys.executable, "-m", "tests.train.multidevice_checks", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-4000:]


def test_step_on_2x2x2_mesh_equals_one_device():
  """data=2, fsdp=2, tensor=2: same loss and updated params as on 1 device (to 1e-5)."""
  run_check("sharded_equals_single")


@pytest.mark.slow  # ~85 s on 2 cores (compiling the GAN step twice); WaveNet's is above.
def test_codec_gan_step_on_2x2x2_mesh_equals_one_device():
  """The tiny SoundStream's GAN step (codec, discriminators, EMA codebooks) on data=2, fsdp=2,
  tensor=2, its kernels and codebooks split: same losses, params and codebooks as on 1 device
  (to 1e-5)."""
  run_check("codec_sharded_equals_single")


def test_acoustic_step_on_2x2x2_mesh_equals_one_device():
  """The text-to-speech acoustic model (tiny, width 8) on data=2, fsdp=2, tensor=2, its conv
  kernels split: same losses and params as on 1 device (to 1e-5)."""
  run_check("acoustic_sharded_equals_single")


def test_indivisible_axes_stay_replicated():
  sizes = {"data": 2, "fsdp": 4, "tensor": 2}
  P = jax.sharding.PartitionSpec
  assert sharding._divisible(P(None, "fsdp", "tensor"), (7, 8, 6), sizes) == P(
      None, "fsdp", "tensor")
  assert sharding._divisible(P(None, "fsdp", "tensor"), (7, 6, 1), sizes) == P(None, None, None)
  assert sharding._divisible(P(("data", "fsdp")), (6, 3), sizes) == P("data", None)
  assert sharding._divisible(P(), (5,), sizes) == P(None)


def test_checkpoint_restores_on_other_meshes(tmp_path):
  """Saved on (data 4, fsdp 2), restored on (2, 4) and on 1 device: identical values."""
  run_check("restore_across_meshes", str(tmp_path))


def test_mesh_sizes_from_config():
  mesh_cfg = sharding.mesh_config(data=-1, fsdp=2, tensor=2)
  assert sharding._axis_sizes(mesh_cfg, 8) == [2, 2, 2]
  assert sharding._axis_sizes(None, 8) == [8, 1, 1]
  with pytest.raises(ValueError, match="does not divide the 6 devices"):
    sharding._axis_sizes(sharding.mesh_config(fsdp=4), 6)
  with pytest.raises(ValueError, match="needs 4 devices, but 8"):
    sharding._axis_sizes(sharding.mesh_config(data=2, fsdp=2), 8)
  with pytest.raises(ValueError, match="at most one -1"):
    sharding._axis_sizes(sharding.mesh_config(data=-1, fsdp=-1), 8)


def test_rules_survive_a_json_round_trip():
  config = tiny_config(1, 1, 1)
  restored = trainer.ml_collections.ConfigDict(
      checkpoint.json.loads(config.to_json_best_effort()))
  assert sharding.rules_from_config(restored) == sharding.rules_from_config(config)
  assert dict(sharding.rules_from_config(config))["batch"] == ("data", "fsdp")


def one_update(config, batch_rows):
  model, task, tx, schedule, mesh, rules = trainer.build(config)
  state, shardings = trainer.init_state(config, model, task, tx, mesh, rules)
  step = jax.jit(trainer.make_train_step(model, task, tx, schedule,
                                         config.train.microbatches))
  state, metrics = step(state, sharding.shard_batch(batch_rows, mesh), jax.random.key(0))
  return jax.device_get(state.params), jax.device_get(metrics)


def test_gradient_accumulation_equals_the_large_batch():
  config = tiny_config(1, 1, 1)
  config.mesh.update(data=-1)
  rows = batch(0, size=8)
  rows["mask"][3, 40:] = 0.0  # Uneven counts: the microbatches must be weighted by them.
  rows["mask"][6, 10:] = 0.0
  params, metrics = one_update(config, rows)
  config.train.microbatches = 4
  params_4, metrics_4 = one_update(config, rows)
  np.testing.assert_allclose(metrics_4["loss"], metrics["loss"], rtol=1e-5)
  np.testing.assert_allclose(metrics_4["grad_norm"], metrics["grad_norm"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               params_4, params)


def test_bfloat16_compute_trains_with_float32_params():
  config = tiny_config(1, 1, 1)
  config.mesh.update(data=-1)
  config.optimizer.update(learning_rate=1e-2, warmup_steps=1)
  config.train.num_steps = 40

  def losses(dtype):
    config.model.dtype = dtype
    model, task, tx, schedule, mesh, rules = trainer.build(config)
    state, _ = trainer.init_state(config, model, task, tx, mesh, rules)
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.params))
    step = jax.jit(trainer.make_train_step(model, task, tx, schedule))
    rows = sharding.shard_batch(batch(0), mesh)
    out = []
    for i in range(config.train.num_steps):
      state, metrics = step(state, rows, jax.random.key(i))
      out.append(float(metrics["loss"]))
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.params))
    return np.array(out)

  bf16, fp32 = losses("bfloat16"), losses("float32")
  assert np.isfinite(bf16).all() and bf16[-1] < bf16[0] - 1.0, bf16
  assert abs(bf16[-1] - fp32[-1]) < 0.1 * fp32[0], (bf16[-1], fp32[-1])


@pytest.mark.parametrize("policy", ["full", "dots"])
def test_remat_gives_the_same_gradients(policy):
  config = tiny_config(1, 1, 1)
  config.mesh.update(data=-1)
  params, metrics = one_update(config, batch(1))
  config.model.remat = policy
  params_remat, metrics_remat = one_update(config, batch(1))
  np.testing.assert_allclose(metrics_remat["grad_norm"], metrics["grad_norm"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               params_remat, params)


def test_two_processes_match_one(tmp_path):
  """jax.distributed over 127.0.0.1: 2 processes x 2 CPU devices, each feeding half the batch,
  end with the params of one process training on the whole batch."""
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
  out = str(tmp_path / "params.npz")
  procs = [subprocess.Popen([sys.executable, "-m", "tests.train.multiprocess_check", port,
                             str(i), out], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  results = [p.communicate(timeout=600) for p in procs]
  for p, (stdout, stderr) in zip(procs, results, strict=True):
    assert p.returncode == 0 and stdout.strip().endswith("ok"), stderr[-4000:]

  config = tiny_config(-1, 1, 1)
  model, task, tx, schedule, mesh, rules = trainer.build(config)
  state, _ = trainer.init_state(config, model, task, tx, mesh, rules)
  step = jax.jit(trainer.make_train_step(model, task, tx, schedule))
  for i in range(2):
    state, _ = step(state, sharding.shard_batch(batch(i), mesh), jax.random.key(i))
  expected = {jax.tree_util.keystr(k): np.asarray(v)
              for k, v in jax.tree_util.tree_leaves_with_path(jax.device_get(state.params))}
  with np.load(out) as got:
    assert sorted(got.files) == sorted(expected)
    for key, value in expected.items():
      np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
