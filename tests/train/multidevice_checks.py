"""Checks that need several devices, run by tests/train/test_sharding.py in a fresh process.

  python -m tests.train.multidevice_checks CHECK [WORKDIR]

JAX fixes its CPU device count when it starts, so each check runs with 8 CPU devices in its own
process and prints "ok" at the end.
"""

import sys

import jax
import numpy as np

from audiojax.data import pitch
from audiojax.train import checkpoint, sharding, trainer
from configs import acoustic as acoustic_config
from configs import soundstream as soundstream_config
from configs import wavenet as wavenet_config


def tiny_config(data: int, fsdp: int, tensor: int):
  config = wavenet_config.get_config("tiny")
  # Channel counts divisible by the fsdp and tensor sizes, so parameters really get split.
  config.model.update(residual_channels=8, gate_channels=16, skip_channels=8, head_channels=16,
                      num_speakers=4)
  config.data.update(batch_size=8, crop_samples=64)
  config.mesh.update(data=data, fsdp=fsdp, tensor=tensor)
  return config


def tiny_codec_config(data: int, fsdp: int, tensor: int):
  """The tiny SoundStream (codec, discriminators, 3 x 16 codes) at widths that split 2 ways."""
  config = soundstream_config.get_config("tiny")
  config.model.update(channels=4, embedding_dim=8, wave_discriminator_channels=4,
                      stft_discriminator_channels=4)
  config.data.update(batch_size=8, crop_samples=1024)
  config.mesh.update(data=data, fsdp=fsdp, tensor=tensor)
  return config


def tiny_acoustic_config(data: int, fsdp: int, tensor: int):
  """The tiny text-to-speech acoustic model at a width that splits 2 ways, 4 speakers."""
  config = acoustic_config.get_config("tiny")
  config.model.update(width=8, num_speakers=4)
  config.data.update(batch_size=8, crop_samples=64)
  config.mesh.update(data=data, fsdp=fsdp, tensor=tensor)
  return config


def acoustic_batch(seed: int, size: int = 8, samples: int = 64) -> dict[str, np.ndarray]:
  """`batch` plus random linguistic frames and an excitation of pulses every 40 samples."""
  model = tiny_acoustic_config(1, 1, 1).model
  rows = batch(seed, size, samples)
  linguistic = np.random.default_rng(seed).uniform(
      size=(size, samples // model.hop, model.linguistic_channels))
  excitation = pitch.excitation_frames(np.zeros(samples), 16000, model.hop,
                                       np.arange(seed, samples, 40))
  rows["condition"] = np.concatenate([linguistic, np.stack([excitation] * size)],
                                     -1).astype(np.float32)
  return rows


def batch(seed: int, size: int = 8, samples: int = 64) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  t = np.arange(samples)[None] / 16.0
  audio = 0.5 * np.sin(t * rng.uniform(0.5, 2.0, (size, 1)))
  audio += 0.05 * rng.normal(size=(size, samples))
  return {"audio": audio.astype(np.float32), "mask": np.ones((size, samples), np.float32),
          "speaker": rng.integers(0, 4, size).astype(np.int32)}


def two_steps(config, devices, batch_fn=None):
  """Params and losses after two train steps on a mesh over `devices` (batches of `batch_fn`,
  default `batch`)."""
  batch_fn = batch_fn or batch
  model, task, tx, schedule, _, rules = trainer.build(config)
  mesh = sharding.make_mesh(config.mesh if len(devices) > 1 else None, devices)
  state, shardings = trainer.init_state(config, model, task, tx, mesh, rules)
  step = trainer.jit_in_mesh(trainer.make_train_step(model, task, tx, schedule), mesh, rules,
                             in_shardings=(shardings, sharding.batch_sharding(mesh), None),
                             out_shardings=(shardings, None))
  losses = []
  for i in range(2):
    rows = batch_fn(i, config.data.batch_size, config.data.crop_samples)
    state, metrics = step(state, sharding.shard_batch(rows, mesh), jax.random.key(i))
    losses.append(float(metrics["loss"]))
  return state, losses, mesh


def assert_trees_close(a, b) -> None:
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5,
                                                       atol=1e-5), a, b)


def sharded_equals_single():
  config = tiny_config(2, 2, 2)
  state, losses, mesh = two_steps(config, jax.devices())
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}, mesh.shape
  # The parameters really are split: a conv kernel over fsdp (embed) and tensor (mlp).
  kernel = state.params["layer_0"]["dilated_conv"]["kernel"]
  assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor"), kernel.sharding
  shard_shape = kernel.addressable_shards[0].data.shape
  assert shard_shape == (2, 4, 8), shard_shape
  single_state, single_losses, _ = two_steps(config, jax.devices()[:1])
  np.testing.assert_allclose(losses, single_losses, rtol=1e-5, atol=1e-5)
  assert_trees_close(state.params, single_state.params)


def codec_sharded_equals_single():
  """Two GAN steps of the tiny codec (k-means init of the codebooks, then an EMA update)."""
  config = tiny_codec_config(2, 2, 2)
  state, losses, mesh = two_steps(config, jax.devices())
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}, mesh.shape
  P, spec = jax.sharding.PartitionSpec, lambda x: x.sharding.spec
  # Every kernel (codec and discriminators) is split: in channels over fsdp ("embed"), out
  # channels over tensor ("mlp"), the single audio and logit channels not at all.
  kernels = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(
      state.params) if jax.tree_util.keystr(k).endswith("['kernel']")}
  replicated = [k for k, v in kernels.items() if v.sharding.is_fully_replicated]
  assert not replicated, replicated
  encoder, decoder = state.params["encoder"], state.params["decoder"]
  kernel = encoder["block_1_down"]["conv"]["kernel"]  # [8, 8, 16]
  assert spec(kernel) == P(None, "fsdp", "tensor"), kernel.sharding
  assert kernel.addressable_shards[0].data.shape == (8, 4, 8)
  assert spec(encoder["conv_in"]["conv"]["kernel"]) == P(None, None, "tensor")
  assert spec(decoder["conv_out"]["conv"]["kernel"]) == P(None, "fsdp", None)
  assert spec(state.params["stft_discriminator"]["Conv_2"]["kernel"]) == P(
      None, None, "fsdp", "tensor")
  # The EMA codebooks: codes over tensor ("vocab"), dimensions over fsdp ("embed").
  codebooks = state.model_state["codebooks"]["quantizer"]
  assert spec(codebooks["level_0_embedding"]) == P("tensor", "fsdp")  # [16, 8]
  assert spec(codebooks["level_0_embed_sum"]) == P("tensor", "fsdp")
  assert spec(codebooks["level_0_cluster_size"]) == P("tensor")
  single_state, single_losses, _ = two_steps(config, jax.devices()[:1])
  np.testing.assert_allclose(losses, single_losses, rtol=1e-5, atol=1e-5)
  assert codebooks["initialized"]
  assert_trees_close(state.params, single_state.params)
  assert_trees_close(state.model_state, single_state.model_state)


def acoustic_sharded_equals_single():
  """Two steps of the acoustic model (dropout on) on data=2, fsdp=2, tensor=2 and on 1 device.
  (Its residual stream once carried a tensor-sharded constraint: on this mesh alone the params
  then parted by ~1e-3 after two steps.)"""
  config = tiny_acoustic_config(2, 2, 2)
  state, losses, mesh = two_steps(config, jax.devices(), acoustic_batch)
  kernel = state.params["layer_0_conv"]["kernel"]  # [5, 8, 8]: taps, embed, mlp
  assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor"), kernel.sharding
  assert kernel.addressable_shards[0].data.shape == (5, 4, 4)
  single_state, single_losses, _ = two_steps(config, jax.devices()[:1], acoustic_batch)
  np.testing.assert_allclose(losses, single_losses, rtol=1e-5, atol=1e-5)
  assert_trees_close(state.params, single_state.params)


def restore_across_meshes(workdir: str):
  config = tiny_config(4, 2, 1)
  state, _, mesh = two_steps(config, jax.devices())
  manager = checkpoint.make_manager(workdir, async_save=False)
  meta = checkpoint.make_meta(config)
  checkpoint.save(manager, 2, state, {"note": "no data iterator here"}, meta)
  manager.wait_until_finished()
  expected = jax.device_get(state)

  # (4, 2) -> (2, 4): the same values, now split four ways over fsdp.
  config_24 = tiny_config(2, 4, 1)
  model, task, tx, _, mesh_24, rules = trainer.build(config_24)
  shardings = trainer.state_shardings(config_24, model, task, tx, mesh_24, rules)
  restored, _, step = checkpoint.restore(manager, jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), expected, shardings), meta)
  assert step == 2
  kernel = restored.params["layer_0"]["dilated_conv"]["kernel"]
  shard_shape = kernel.addressable_shards[0].data.shape
  assert shard_shape == (2, 2, 16), shard_shape
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), expected)

  # -> one device, as a sampling job loads it.
  _, _, variables, step = trainer.restore_variables(config, workdir)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(variables["params"]),
               expected.params)


if __name__ == "__main__":
  jax.config.update("jax_num_cpu_devices", 8)  # Before JAX starts its CPU backend.
  check = sys.argv[1]
  if check == "sharded_equals_single":
    sharded_equals_single()
  elif check == "codec_sharded_equals_single":
    codec_sharded_equals_single()
  elif check == "acoustic_sharded_equals_single":
    acoustic_sharded_equals_single()
  elif check == "restore_across_meshes":
    restore_across_meshes(sys.argv[2])
  else:
    raise SystemExit(f"unknown check {check!r}")
  print("ok")
