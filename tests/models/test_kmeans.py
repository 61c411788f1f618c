"""k-means: Lloyd and mini-batch fits, k-means++ seeding, assignment, sharding, persistence."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from audiojax.models import kmeans

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def blobs(n: int = 1200, k: int = 6, d: int = 5, seed: int = 0) -> np.ndarray:
  """n points around k centres (std 0.3) in a [-5, 5]^d box, scaled per dimension."""
  rng = np.random.default_rng(seed)
  centres = rng.uniform(-5, 5, (k, d))
  x = centres[rng.integers(0, k, n)] + 0.3 * rng.normal(size=(n, d))
  return (x * np.linspace(1, 100, d)).astype(np.float32)  # Needs the normalisation.


def normalised(x: np.ndarray, model: kmeans.KMeans) -> np.ndarray:
  return (x.astype(np.float64) - model.mean) / model.std


def test_lloyd_inertia_decreases_to_convergence():
  x = blobs()
  model, history = kmeans.fit_with_history(x, 6, jax.random.key(1), steps=30, tolerance=0.0)
  assert len(history) >= 2 and np.all(np.diff(history) <= 1e-4 * history[0]), history
  assert history[-1] < history[0]
  np.testing.assert_allclose(kmeans.inertia(x, model), history[-1], rtol=1e-3)


def test_minibatch_improves_on_the_seeding():
  x = blobs(seed=2)
  seeded = kmeans.fit(x, 12, jax.random.key(0), steps=0)
  model, history = kmeans.fit_with_history(x, 12, jax.random.key(0), steps=60, batch_size=128)
  assert len(history) == 60
  assert kmeans.inertia(x, model) < 0.9 * kmeans.inertia(x, seeded)


@pytest.mark.parametrize("batch_size", [None, 256])
def test_matches_scikit_learn(batch_size):
  from sklearn.cluster import KMeans as SkKMeans

  x = blobs(seed=3)
  model = kmeans.fit(x, 6, jax.random.key(0), steps=100 if batch_size else 30,
                     batch_size=batch_size)
  np.testing.assert_allclose(model.mean, x.mean(0), rtol=1e-4)
  np.testing.assert_allclose(model.std, x.std(0), rtol=1e-4)
  z = normalised(x, model)
  reference = SkKMeans(6, n_init=10, random_state=0).fit(z)
  ours = kmeans.inertia(x, model)
  assert ours <= reference.inertia_ * 1.02, (ours, reference.inertia_)
  # Same centres, in some order.
  distances = np.linalg.norm(model.centroids[:, None] - reference.cluster_centers_[None], axis=-1)
  assert sorted(distances.argmin(1)) == list(range(6))
  assert distances.min(1).max() < 0.05, distances.min(1)


def test_kmeans_plus_plus_picks_distinct_data_points():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(20, 3)).astype(np.float32)
  x = np.repeat(points, 30, axis=0)  # 20 distinct points, 30 copies each.
  seeded = kmeans.fit(x, 20, jax.random.key(4), steps=0)
  z = normalised(points, seeded)
  matches = np.linalg.norm(seeded.centroids[:, None] - z[None], axis=-1).argmin(1)
  np.testing.assert_allclose(seeded.centroids, z[matches], atol=1e-5)
  assert len(set(matches.tolist())) == 20


def test_assign_matches_brute_force_argmin():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(3001, 8)).astype(np.float32)  # Several chunks, the last one partial.
  model = kmeans.fit(x, 16, jax.random.key(0), steps=3)
  labels = kmeans.assign(x, model, chunk_rows=512)
  assert labels.dtype == np.int32 and labels.shape == (3001,)
  d2 = ((normalised(x, model)[:, None] - model.centroids[None].astype(np.float64)) ** 2).sum(-1)
  expected = d2.argmin(1)
  gap = np.sort(d2, 1)[:, 1] - np.sort(d2, 1)[:, 0]
  clear = gap > 1e-4  # Leave out near ties, where float32 rounding may pick either.
  assert clear.mean() > 0.99
  np.testing.assert_array_equal(labels[clear], expected[clear])
  predicted = jax.jit(kmeans.predict)(x[:3000].reshape(3, 1000, 8), model)  # [b, t, d] rows
  assert predicted.shape == (3, 1000)
  np.testing.assert_array_equal(np.asarray(predicted).reshape(-1)[clear[:3000]],
                                labels[:3000][clear[:3000]])
  np.testing.assert_allclose(kmeans.inertia(x, model, chunk_rows=512), d2.min(1).sum(),
                             rtol=1e-4)


def test_deterministic_for_a_seed():
  x = blobs(seed=6)
  fit = lambda seed, **kw: kmeans.fit(x, 8, jax.random.key(seed), steps=5, **kw)
  np.testing.assert_array_equal(fit(0).centroids, fit(0).centroids)
  np.testing.assert_array_equal(fit(0, batch_size=64).centroids,
                                fit(0, batch_size=64).centroids)
  assert not np.array_equal(kmeans.fit(x, 8, jax.random.key(0), steps=0).centroids,
                            kmeans.fit(x, 8, jax.random.key(1), steps=0).centroids)


def test_save_load_and_fingerprint(tmp_path):
  model = kmeans.fit(blobs(seed=7), 5, jax.random.key(0), steps=3)
  path = str(tmp_path / "km.npz")
  kmeans.save(path, model, features="mfcc", frame_rate_hz=50.0)
  restored = kmeans.load(path)
  assert kmeans.load_metadata(path) == {"features": "mfcc", "frame_rate_hz": 50.0}
  for a, b in zip(model, restored, strict=True):
    np.testing.assert_array_equal(a, b)
  assert restored.fingerprint() == model.fingerprint() and len(model.fingerprint()) == 16
  centroids = model.centroids.copy()
  centroids[0, 0] += 1e-3
  assert model._replace(centroids=centroids).fingerprint() != model.fingerprint()
  assert model._replace(std=model.std * 2).fingerprint() != model.fingerprint()


def test_bad_arguments():
  with pytest.raises(ValueError, match="num_clusters=11"):
    kmeans.fit(np.zeros((10, 2), np.float32), 11, jax.random.key(0))
  with pytest.raises(ValueError, match="features"):
    kmeans.fit(np.zeros((10,), np.float32), 2, jax.random.key(0))


def sharded_check() -> None:
  """Run with 8 CPU devices: a fit with rows split over a data mesh equals the one-device fit."""
  from audiojax.train import sharding

  assert jax.device_count() == 8, jax.devices()
  rows = sharding.batch_sharding(sharding.make_mesh())
  x = blobs(n=1003, k=7, seed=8)  # Not a multiple of 8: padded rows must not count.
  placed, _, steps = kmeans._place(x, rows, 128)
  assert steps == 8 and placed.sharding.shard_shape(placed.shape) == (128, 5)
  assert len(placed.sharding.device_set) == 8
  for kwargs in ({}, {"batch_size": 64}):
    fit = lambda rows, kw=kwargs: kmeans.fit(x, 7, jax.random.key(0), steps=20, tolerance=0.0,
                                             chunk_rows=128, rows=rows, **kw)
    single, split = fit(None), fit(rows)
    for a, b in zip(single, split, strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(kmeans.assign(x, split, rows=rows, chunk_rows=128),
                                  kmeans.assign(x, single, chunk_rows=128))
  print("ok")


def test_sharded_fit_on_8_devices_equals_one_device():
  flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  env = {**os.environ, "XLA_FLAGS": flags,
         "JAX_PLATFORMS": "cpu"}
  result = subprocess.run(
      [sys.executable, "-c", "from tests.models import test_kmeans; test_kmeans.sharded_check()"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-4000:]
