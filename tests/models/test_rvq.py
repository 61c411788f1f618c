"""Residual vector quantizer: residuals shrink, EMA math, k-means init, dead codes, dropout."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.models import rvq


def clustered(seed: int, batch: int = 4, frames: int = 64, dim: int = 8) -> jnp.ndarray:
  """Vectors around 6 fixed, well-separated centres plus small noise: [batch, frames, dim]."""
  centres = 4.0 * np.random.default_rng(1234).standard_normal((6, dim))
  rng = np.random.default_rng(seed)
  picks = rng.integers(0, 6, (batch, frames))
  return jnp.asarray(centres[picks] + 0.3 * rng.standard_normal((batch, frames, dim)),
                     jnp.float32)


def init(model: rvq.ResidualVQ, x: jnp.ndarray):
  return model.init({"params": jax.random.key(0), "quantizer": jax.random.key(1)}, x)


@functools.partial(jax.jit, static_argnums=0)
def _train_apply(model, variables, x, rng, mask):
  return model.apply(variables, x, train=True, mask=mask, mutable=["codebooks"],
                     rngs={"quantizer": rng})


def train_step(model, variables, x, seed=0, mask=None):
  """One training forward (jitted: eager k-means is slow): (outputs, updated variables)."""
  out, updates = _train_apply(model, variables, x, jax.random.key(seed), mask)
  return out, {**variables, **updates}


def test_residual_norm_shrinks_with_each_level():
  model = rvq.ResidualVQ(num_quantizers=4, codebook_size=16, dim=8, quantizer_dropout=False)
  x = clustered(0)
  variables = init(model, x)
  for step in range(5):
    _, variables = train_step(model, variables, clustered(step), seed=step)
  _, codes, aux = model.apply(variables, clustered(99))
  norms = np.asarray(aux["residual_norms"])
  assert norms.shape == (5,)
  assert np.all(np.diff(norms) <= 1e-6), norms
  assert norms[-1] < 0.25 * norms[0], norms
  assert codes.shape == (4, 64, 4) and codes.min() >= 0


def test_kmeans_init_finds_the_clusters():
  model = rvq.ResidualVQ(num_quantizers=1, codebook_size=6, dim=8, quantizer_dropout=False,
                         dead_code_threshold=0.0, kmeans_iters=20)
  x = clustered(1, batch=8)
  variables = init(model, x)
  assert not variables["codebooks"]["initialized"]
  (_, _, aux), variables = train_step(model, variables, x)
  assert variables["codebooks"]["initialized"]
  # After k-means on the batch, the one level leaves only the noise (std 0.3 per dim).
  assert float(aux["residual_norms"][1]) < 0.3 * np.sqrt(8) * 1.3, aux["residual_norms"]


def test_ema_update_on_a_toy_case():
  model = rvq.ResidualVQ(num_quantizers=1, codebook_size=2, dim=1, decay=0.5,
                         dead_code_threshold=0.0, quantizer_dropout=False, epsilon=0.0)
  x = jnp.array([[[0.9], [1.1], [-2.0]]])  # Codes: 1, 1, 0.
  variables = init(model, x)
  book = {"level_0_embedding": jnp.array([[-1.0], [1.0]]),
          "level_0_cluster_size": jnp.array([2.0, 2.0]),
          "level_0_embed_sum": jnp.array([[-2.0], [2.0]]),
          "initialized": jnp.array(True)}
  variables = {**variables, "codebooks": book}
  (_, codes, _), variables = train_step(model, variables, x)
  np.testing.assert_array_equal(codes[0, :, 0], [1, 1, 0])
  new = variables["codebooks"]
  # cluster_size = 0.5 * [2, 2] + 0.5 * [1, 2] = [1.5, 2];
  # embed_sum = 0.5 * [-2, 2] + 0.5 * [-2, 2.0] = [-2, 2]; embedding = sum / size.
  np.testing.assert_allclose(new["level_0_cluster_size"], [1.5, 2.0], rtol=1e-6)
  np.testing.assert_allclose(new["level_0_embedding"][:, 0], [-2.0 / 1.5, 1.0], rtol=1e-6)


def test_dead_codes_restart_from_batch_vectors():
  model = rvq.ResidualVQ(num_quantizers=1, codebook_size=3, dim=2, decay=0.9,
                         dead_code_threshold=2.0, quantizer_dropout=False)
  x = jnp.array([[[1.0, 1.0], [1.1, 0.9], [-1.0, -1.0], [-0.9, -1.1]]])
  variables = init(model, x)
  book = {"level_0_embedding": jnp.array([[1.0, 1.0], [-1.0, -1.0], [50.0, 50.0]]),
          "level_0_cluster_size": jnp.array([5.0, 5.0, 1.0]),  # Code 2 is dead.
          "level_0_embed_sum": jnp.array([[5.0, 5.0], [-5.0, -5.0], [50.0, 50.0]]),
          "initialized": jnp.array(True)}
  variables = {**variables, "codebooks": book}
  _, variables = train_step(model, variables, x)
  restarted = np.asarray(variables["codebooks"]["level_0_embedding"][2])
  assert any(np.allclose(restarted, v) for v in np.asarray(x[0])), restarted
  assert float(variables["codebooks"]["level_0_cluster_size"][2]) == 2.0


def test_quantizer_dropout_uses_only_the_first_levels():
  model = rvq.ResidualVQ(num_quantizers=6, codebook_size=8, dim=8)
  x = clustered(2, batch=16)
  _, variables = train_step(model, init(model, x), x)  # k-means init
  # The forward pass quantizes with the codebooks it starts from (then updates them).
  (quantized, codes, aux), _ = train_step(model, variables, x, seed=1)
  levels = np.asarray(aux["active_levels"])
  assert levels.min() >= 1 and levels.max() <= 6 and len(set(levels)) > 1
  codes = np.asarray(codes)
  for b, n in enumerate(levels):
    assert (codes[b, :, :n] >= 0).all() and (codes[b, :, n:] == -1).all()
  decoded = model.apply(variables, jnp.asarray(codes), method=model.decode)
  np.testing.assert_allclose(quantized, decoded, atol=1e-5)
  # Inference at a chosen bitrate: exactly the first nq levels.
  _, codes_3, _ = model.apply(variables, x, num_quantizers=3)
  assert (codes_3[..., :3] >= 0).all() and (codes_3[..., 3:] == -1).all()


def test_straight_through_gradient_and_padding():
  model = rvq.ResidualVQ(num_quantizers=2, codebook_size=8, dim=8, quantizer_dropout=False)
  x = clustered(3)
  variables = init(model, x)
  _, variables = train_step(model, variables, x)
  grad = jax.grad(lambda x: model.apply(variables, x)[0].sum())(x)
  np.testing.assert_allclose(grad, jnp.ones_like(x))
  mask = jnp.ones(x.shape[:2]).at[:, 32:].set(0.0)
  # Padding frames do not move the codebooks: huge padding values change nothing.
  _, a = train_step(model, variables, x, mask=mask)
  _, b = train_step(model, variables, x.at[:, 32:].set(1e3), mask=mask)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5),
               a["codebooks"], b["codebooks"])


def test_bitrate():
  assert rvq.bitrate_bps(75, 8, 1024) == 6000  # SoundStream 24 kHz at 6 kbps.
  assert rvq.bitrate_bps(50, 12, 1024) == 6000  # AudioLM's acoustic tokens.
