"""Sharded transformer forward == single-device forward; run by tests/models/test_transformer.py.

  python -m tests.models.transformer_multidevice

8 CPU devices (JAX fixes the count when it starts, hence a process of its own) as data=2,
fsdp=2, tensor=2; params initialised sharded by their logical axes (`sharding.RULES`), the
forward traced under the rules so the activation constraints apply. Prints "ok" at the end.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from audiojax.models import transformer
from audiojax.train import sharding, trainer


def logits_on(model: transformer.Model, tokens: np.ndarray, mesh) -> jax.Array:
  """Logits of freshly initialised (seed 0) params, placed by their logical axes on `mesh`."""
  boxed = jax.eval_shape(model.init, jax.random.key(0), tokens)
  shardings = sharding.logical_shardings(boxed, mesh, sharding.RULES)
  variables = jax.jit(lambda: nn.meta.unbox(model.init(jax.random.key(0), tokens)),
                      out_shardings=shardings)()
  if mesh.size > 1:
    kernel = variables["params"]["layer_0"]["attention"]["query"]["kernel"]  # [embed, heads, kv]
    assert kernel.sharding.spec == P("fsdp", "tensor", None), kernel.sharding.spec
    assert kernel.addressable_shards[0].data.shape == (16, 1, 16), kernel.addressable_shards
  forward = trainer.jit_in_mesh(model.apply, mesh, sharding.RULES,
                                in_shardings=(shardings, sharding.batch_sharding(mesh)))
  logits = forward(variables, sharding.shard_batch({"tokens": tokens}, mesh)["tokens"])
  if mesh.size > 1:  # Rows over data x fsdp, vocab over tensor.
    assert logits.sharding.spec == P(("data", "fsdp"), None, "tensor"), logits.sharding.spec
  return logits


def main() -> None:
  assert len(jax.devices()) == 8, jax.devices()
  model = transformer.from_preset("tiny", mlp="swiglu")
  tokens = np.random.default_rng(0).integers(0, model.vocab_size, (8, 16)).astype(np.int32)
  mesh = sharding.make_mesh(sharding.mesh_config(2, 2, 2))
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}, mesh.shape
  sharded = logits_on(model, tokens, mesh)
  single = logits_on(model, tokens, sharding.make_mesh(None, jax.devices()[:1]))
  np.testing.assert_allclose(np.asarray(sharded), np.asarray(single), atol=1e-5, rtol=1e-5)
  assert float(jnp.abs(single).max()) > 0.1  # not trivially zero


if __name__ == "__main__":
  jax.config.update("jax_num_cpu_devices", 8)  # Before JAX starts its CPU backend.
  main()
  print("ok")
