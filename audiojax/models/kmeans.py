"""k-means in JAX for token vocabularies (AudioLM semantic tokens, HuBERT-style targets).

Features [n, d] are normalised per dimension (zero mean, unit variance over the fit set; the
stats are kept with the centroids), seeded by k-means++ on a random subsample, then refined
by full-batch Lloyd steps (`batch_size=None`) or by mini-batch steps (Sculley, 2010: each
centroid moves to the running mean of the points ever assigned to it, i.e. a per-centroid
learning rate 1 / count). Squared distances are ||x||^2 - 2 x.c + ||c||^2 in chunks of rows.

With a `rows` sharding (e.g. `audiojax.train.sharding.batch_sharding(mesh)`) the rows are
split over devices; under `jit` the per-centroid sums of each shard are summed across devices
by XLA, so a sharded fit equals the single-device one (up to float summation order).
Deterministic for a given `rng`. An empty cluster keeps its centroid.
"""

import functools
import hashlib
import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Sharding

from audiojax.models import rvq

_HIGHEST = jax.lax.Precision.HIGHEST
_MIN_STD = 1e-6  # Per-dimension std floor: constant dimensions stay finite.


class KMeans(NamedTuple):
  """A fitted k-means model (a pytree); distances are measured in normalised units."""

  centroids: np.ndarray  # float32 [k, d], normalised features
  mean: np.ndarray  # float32 [d], of the raw features
  std: np.ndarray  # float32 [d], of the raw features

  @property
  def num_clusters(self) -> int:
    return int(self.centroids.shape[0])

  def fingerprint(self) -> str:
    """16 hex digits identifying k, the centroids and the normalisation (for token files)."""
    digest = hashlib.sha256(f"kmeans:{self.centroids.shape}".encode())
    for array in self:
      digest.update(np.ascontiguousarray(np.asarray(array, "<f4")).tobytes())
    return digest.hexdigest()[:16]


def save(path: str, model: KMeans, **metadata) -> None:
  """Writes the model to an .npz file (centroids, mean, std), with JSON-able `metadata` (e.g.
  which features it clusters: `load_metadata`)."""
  arrays = {k: np.asarray(v, np.float32) for k, v in model._asdict().items()}
  with open(path, "wb") as f:
    np.savez(f, **arrays, metadata=np.array(json.dumps(metadata)))


def load(path: str) -> KMeans:
  with np.load(path) as data:
    return KMeans(*(np.asarray(data[k], np.float32) for k in KMeans._fields))


def load_metadata(path: str) -> dict:
  """The metadata `save` stored ({} for files without)."""
  with np.load(path) as data:
    return json.loads(str(data["metadata"])) if "metadata" in data else {}


def predict(features: jax.Array, model: KMeans) -> jax.Array:
  """Jittable: raw features [..., d] -> int32 [...], the nearest centroid of each normalised
  row (what `assign` computes, for use inside a model's step, e.g. HuBERT's targets)."""
  x = (features.reshape(-1, features.shape[-1]) - model.mean) / model.std
  return _nearest(x, model.centroids)[0].reshape(features.shape[:-1])


# ----------------------------------------------------------------------------- kernels


def _nearest(x: jax.Array, centroids: jax.Array) -> tuple[jax.Array, jax.Array]:
  """[m, d], [k, d] -> (int32 index [m] of the nearest centroid, its squared distance [m])."""
  d2 = (jnp.sum(x * x, -1, keepdims=True)
        - 2 * jnp.matmul(x, centroids.T, precision=_HIGHEST)
        + jnp.sum(centroids * centroids, -1)[None])
  labels = jnp.argmin(d2, -1).astype(jnp.int32)
  return labels, jnp.maximum(jnp.take_along_axis(d2, labels[:, None], -1)[:, 0], 0.0)


def _cluster_sums(x: jax.Array, weights: jax.Array, labels: jax.Array, k: int
                  ) -> tuple[jax.Array, jax.Array]:
  """Weighted per-cluster (sums [k, d], counts [k]) as one-hot matmuls (no scatter)."""
  onehot = jax.nn.one_hot(labels, k, dtype=x.dtype) * weights[:, None]
  return jnp.matmul(onehot.T, x, precision=_HIGHEST), onehot.sum(0)


def _chunks(x: jax.Array, steps: int) -> jax.Array:
  """[n, ...] -> [steps, n // steps, ...]: chunk j holds rows j, j + steps, ... so that each
  chunk keeps the row sharding of `x` (no data moves between devices)."""
  return jnp.swapaxes(x.reshape(x.shape[0] // steps, steps, *x.shape[1:]), 0, 1)


def _unchunk(y: jax.Array) -> jax.Array:
  return jnp.swapaxes(y, 0, 1).reshape(-1, *y.shape[2:])


def _pass(x: jax.Array, weights: jax.Array, model: KMeans, steps: int):
  """One chunked pass over raw rows: (labels [n], squared distances [n], sums [k, d],
  counts [k]) with sums and counts weighted (padding rows have weight 0)."""
  k, d = model.centroids.shape

  def body(carry, chunk):
    xc, wc = chunk
    xc = (xc - model.mean) / model.std
    labels, d2 = _nearest(xc, model.centroids)
    sums, counts = _cluster_sums(xc, wc, labels, k)
    return (carry[0] + sums, carry[1] + counts), (labels, d2 * wc)

  init = (jnp.zeros((k, d), jnp.float32), jnp.zeros((k,), jnp.float32))
  (sums, counts), (labels, d2) = jax.lax.scan(body, init, (_chunks(x, steps),
                                                           _chunks(weights, steps)))
  return _unchunk(labels), _unchunk(d2), sums, counts


@functools.partial(jax.jit, static_argnames="steps")
def _assign(x, weights, model, steps):
  labels, d2, _, _ = _pass(x, weights, model, steps)
  return labels, d2


@functools.partial(jax.jit, static_argnames="steps")
def _lloyd_step(x, weights, model, steps):
  """One full-batch Lloyd step -> (updated model, inertia of the old centroids)."""
  _, d2, sums, counts = _pass(x, weights, model, steps)
  centroids = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None],
                        model.centroids)
  return model._replace(centroids=centroids), d2.sum()


@functools.partial(jax.jit, static_argnames=("num_rows", "batch_size"))
def _minibatch_step(x, model, counts, rng, num_rows, batch_size):
  """One mini-batch step on `batch_size` rows drawn uniformly (with replacement) from the
  first `num_rows` -> (updated model, updated counts, batch inertia of the old centroids)."""
  rows = x[jax.random.randint(rng, (batch_size,), 0, num_rows)]
  rows = (rows - model.mean) / model.std
  labels, d2 = _nearest(rows, model.centroids)
  sums, batch_counts = _cluster_sums(rows, jnp.ones((batch_size,), jnp.float32), labels,
                                     model.centroids.shape[0])
  new_counts = counts + batch_counts
  centroids = jnp.where(
      batch_counts[:, None] > 0,
      (model.centroids * counts[:, None] + sums) / jnp.maximum(new_counts, 1.0)[:, None],
      model.centroids)
  return model._replace(centroids=centroids), new_counts, d2.sum()


@functools.partial(jax.jit, static_argnames=("num_rows", "num_clusters", "init_samples"))
def _init(x, weights, rng, num_rows, num_clusters, init_samples):
  """Normalisation stats over the real rows and k-means++ centroids from a subsample."""
  total = weights.sum()
  mean = jnp.einsum("n,nd->d", weights, x, precision=_HIGHEST) / total
  var = jnp.einsum("n,nd->d", weights, (x - mean) ** 2, precision=_HIGHEST) / total
  std = jnp.maximum(jnp.sqrt(var), _MIN_STD)
  choice_rng, seed_rng = jax.random.split(rng)
  subsample = jax.random.choice(choice_rng, num_rows, (init_samples,), replace=False)
  rows = (x[subsample] - mean) / std
  centroids = rvq.kmeans_plus_plus(rows, jnp.ones((init_samples,), jnp.float32),
                                   num_clusters, seed_rng)
  return KMeans(centroids, mean, std)


# ----------------------------------------------------------------------------- public API


def _num_shards(rows: Sharding) -> int:
  """How many ways `rows` splits the leading axis."""
  size = rows.num_devices
  return size // rows.shard_shape((size, 1))[0]


def _place(features: np.ndarray, rows: Sharding | None, chunk_rows: int
           ) -> tuple[jax.Array, jax.Array, int]:
  """Raw rows zero-padded to whole chunks, with weights (1 real, 0 padding), placed with the
  `rows` sharding (or on the default device) -> (x [n_pad, d], weights [n_pad], steps)."""
  features = np.asarray(features, np.float32)
  if features.ndim != 2 or features.shape[0] == 0:
    raise ValueError(f"k-means needs features [n > 0, d], got shape {features.shape}")
  n = features.shape[0]
  shards = 1 if rows is None else _num_shards(rows)
  # Rows per chunk, split over the shards; a power of two below chunk_rows, so that inputs of
  # similar size share a compiled program.
  chunk = -(-min(chunk_rows, 1 << (n - 1).bit_length()) // shards) * shards
  steps = -(-n // chunk)
  x = np.zeros((steps * chunk, features.shape[1]), np.float32)
  x[:n] = features
  weights = (np.arange(steps * chunk) < n).astype(np.float32)
  if rows is None:
    return jnp.asarray(x), jnp.asarray(weights), steps
  return jax.device_put(x, rows), jax.device_put(weights, rows), steps


def fit_with_history(features: np.ndarray, num_clusters: int, rng: jax.Array, *,
                     steps: int = 100, batch_size: int | None = None,
                     init_samples: int | None = None, tolerance: float = 1e-4,
                     rows: Sharding | None = None, chunk_rows: int = 8192
                     ) -> tuple[KMeans, np.ndarray]:
  """Fits k-means to raw features [n, d] -> (model, inertia per step).

  steps: Lloyd steps (stopping early once inertia improves by less than `tolerance`,
    relative) or mini-batch steps (all of them). batch_size: None for full-batch Lloyd steps,
    else rows per mini-batch step. The inertia history is of the centroids before each step:
    the whole fit set's for Lloyd steps, the mini-batch's for mini-batch steps.
  init_samples: rows of the k-means++ subsample (default min(n, 50 k)).
  rows: how to split the rows over devices, e.g. `sharding.batch_sharding(mesh)` of
    `audiojax.train.sharding` (default: all on the default device). chunk_rows: rows per
    distance chunk (over all devices).
  """
  n = int(np.shape(features)[0])
  if not 1 <= num_clusters <= n:
    raise ValueError(f"num_clusters={num_clusters} must be in [1, {n}] (the rows to cluster)")
  x, weights, chunk_steps = _place(features, rows, chunk_rows)
  init_samples = min(n, init_samples or 50 * num_clusters)
  if init_samples < num_clusters:
    raise ValueError(f"init_samples={init_samples} < num_clusters={num_clusters}")
  init_rng, step_rng = jax.random.split(rng)
  model = _init(x, weights, init_rng, n, num_clusters, init_samples)
  history = []
  if batch_size is None:
    for _ in range(steps):
      model, value = _lloyd_step(x, weights, model, chunk_steps)
      history.append(float(value))
      if len(history) > 1 and history[-2] - history[-1] <= tolerance * history[-2]:
        break
  else:
    counts = jnp.zeros((num_clusters,), jnp.float32)
    for step_key in jax.random.split(step_rng, steps):
      model, counts, value = _minibatch_step(x, model, counts, step_key, n, batch_size)
      history.append(float(value))
  model = KMeans(*(np.asarray(jax.device_get(a), np.float32) for a in model))
  return model, np.asarray(history, np.float64)


def fit(features: np.ndarray, num_clusters: int, rng: jax.Array, **kwargs) -> KMeans:
  """`fit_with_history` without the history: raw features [n, d] -> a fitted KMeans."""
  return fit_with_history(features, num_clusters, rng, **kwargs)[0]


def assign(features: np.ndarray, model: KMeans, *, rows: Sharding | None = None,
           chunk_rows: int = 8192) -> np.ndarray:
  """Raw features [n, d] -> int32 [n], the nearest centroid of each normalised row."""
  x, weights, steps = _place(features, rows, chunk_rows)
  return np.asarray(_assign(x, weights, model, steps)[0])[:len(features)]


def inertia(features: np.ndarray, model: KMeans, *, rows: Sharding | None = None,
            chunk_rows: int = 8192) -> float:
  """Sum over rows of the squared distance to the nearest centroid (normalised units)."""
  x, weights, steps = _place(features, rows, chunk_rows)
  return float(_assign(x, weights, model, steps)[1].sum())
