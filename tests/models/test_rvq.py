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
                         dead_code_fraction=0.0, kmeans_iters=20)
  x = clustered(1, batch=8)
  variables = init(model, x)
  assert not variables["codebooks"]["initialized"]
  (_, _, aux), variables = train_step(model, variables, x)
  assert variables["codebooks"]["initialized"]
  # After k-means on the batch, the one level leaves only the noise (std 0.3 per dim).
  assert float(aux["residual_norms"][1]) < 0.3 * np.sqrt(8) * 1.3, aux["residual_norms"]


def test_ema_update_on_a_toy_case():
  model = rvq.ResidualVQ(num_quantizers=1, codebook_size=2, dim=1, decay=0.5,
                         dead_code_fraction=0.0, quantizer_dropout=False, epsilon=0.0)
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


def _dead_code_case(**rule):
  """Code 2 of three is barely used; one step on 4 vectors (two per live code), decay 0.9:
  usage EMA 0.9 * [5, 5, 0.1] + 0.1 * [2, 2, 0] = [4.7, 4.7, 0.09], mean 3.163."""
  model = rvq.ResidualVQ(num_quantizers=1, codebook_size=3, dim=2, decay=0.9,
                         quantizer_dropout=False, **rule)
  x = jnp.array([[[1.0, 1.0], [1.1, 0.9], [-1.0, -1.0], [-0.9, -1.1]]])
  variables = init(model, x)
  book = {"level_0_embedding": jnp.array([[1.0, 1.0], [-1.0, -1.0], [50.0, 50.0]]),
          "level_0_cluster_size": jnp.array([5.0, 5.0, 0.1]),
          "level_0_embed_sum": jnp.array([[5.0, 5.0], [-5.0, -5.0], [5.0, 5.0]]),
          "initialized": jnp.array(True)}
  _, variables = train_step(model, {**variables, "codebooks": book}, x)
  return np.asarray(x[0]), variables["codebooks"]


def test_dead_codes_restart_from_batch_vectors():
  # Below a tenth of the mean usage (0.316): restarted at a batch vector with the mean usage.
  x, book = _dead_code_case(dead_code_fraction=0.1)
  restarted = np.asarray(book["level_0_embedding"][2])
  assert any(np.allclose(restarted, v) for v in x), restarted
  np.testing.assert_allclose(book["level_0_cluster_size"], [4.7, 4.7, 9.49 / 3], rtol=1e-5)
  np.testing.assert_allclose(book["level_0_embedding"][0], [1.0, 1.0], atol=0.02)
  # Above a hundredth (0.0316): kept.
  _, book = _dead_code_case(dead_code_fraction=0.01)
  np.testing.assert_allclose(book["level_0_cluster_size"][2], 0.09, rtol=1e-5)
  # The older absolute rule (usage below 2 vectors per batch; reset to 2).
  x, book = _dead_code_case(dead_code_threshold=2.0)
  assert any(np.allclose(book["level_0_embedding"][2], v) for v in x)
  assert float(book["level_0_cluster_size"][2]) == 2.0


def test_small_batches_keep_their_codes():
  """16 vectors per batch for 32 codes: the relative rule keeps the codebook (k-means
  quality), where the absolute rule of 2 vectors per batch restarts every code at every
  step (each code's expected usage is 0.5), leaving the codes where the last batch was."""
  dim, k = 8, 32
  centres = 4.0 * np.random.default_rng(7).standard_normal((k, dim))

  def batch(seed):
    rng = np.random.default_rng(seed)
    return jnp.asarray(centres[rng.integers(0, k, (1, 16))]
                       + 0.1 * rng.standard_normal((1, 16, dim)), jnp.float32)

  def quantization_error(**rule):
    model = rvq.ResidualVQ(num_quantizers=1, codebook_size=k, dim=dim, decay=0.9,
                           quantizer_dropout=False, **rule)
    variables = init(model, batch(0))
    for step in range(60):
      _, variables = train_step(model, variables, batch(step), seed=step)
    test = jnp.asarray(centres[None] + 0.1 * np.random.default_rng(99).standard_normal(
        (1, k, dim)), jnp.float32)  # Every centre once.
    _, _, aux = model.apply(variables, test)
    return float(aux["residual_norms"][-1])

  relative, absolute = quantization_error(), quantization_error(dead_code_threshold=2.0)
  assert relative < 0.5 * absolute, (relative, absolute)


def test_a_level_with_no_vectors_yet_stays_finite():
  """The first batches may reach no example's deeper levels (quantizer dropout): a level
  that has seen no vector keeps its codes (no 0 / 0) until vectors come."""
  model = rvq.ResidualVQ(num_quantizers=2, codebook_size=8, dim=8, quantizer_dropout=False)
  x = clustered(3)
  nothing = jnp.zeros(x.shape[:2])
  _, variables = train_step(model, init(model, x), x, mask=nothing)  # k-means of no vector
  book = variables["codebooks"]
  assert all(np.isfinite(v).all() for v in jax.tree.leaves(book))
  _, variables = train_step(model, variables, x, seed=1)
  assert all(np.isfinite(v).all() for v in jax.tree.leaves(variables["codebooks"]))
  for _ in range(10):
    (_, _, aux), variables = train_step(model, variables, x, seed=2)
  assert float(aux["residual_norms"][-1]) < 0.5 * float(aux["residual_norms"][0])


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


def test_full_levels_share_keeps_every_level_on_that_share_of_examples():
  model = rvq.ResidualVQ(num_quantizers=4, codebook_size=8, dim=8, full_levels_share=0.5)
  x = clustered(4, batch=400, frames=2)
  _, variables = train_step(model, init(model, x), x)
  (_, codes, aux), _ = train_step(model, variables, x, seed=5)
  levels = np.asarray(aux["active_levels"])
  # Half the examples use all 4 levels; the other half draw 1..4 (a quarter of them 4 too).
  assert 0.55 < np.mean(levels == 4) < 0.70, np.mean(levels == 4)
  assert all(0.08 < np.mean(levels == n) < 0.17 for n in (1, 2, 3)), np.bincount(levels)
  assert ((np.asarray(codes) >= 0).sum(-1) == levels[:, None]).all()
