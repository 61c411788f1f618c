"""Residual vector quantizer (SoundStream, Zeghidour et al. 2021) with EMA codebooks.

Level q quantizes the residual that levels 0..q-1 left: r_0 = x, c_q = argmin_k |r_q - e_qk|,
r_{q+1} = r_q - e_q[c_q], and the output is sum_q e_q[c_q] (straight-through gradients to x).

Training (`train=True` with the `codebooks` collection mutable):
  - codebooks follow exponential moving averages of their assigned vectors (VQ-VAE-2 style,
    Laplace-smoothed counts); no gradient reaches them;
  - on the first training batch each level's codebook is initialised by k-means (k-means++
    seeding, then Lloyd iterations) on that level's residuals;
  - a code whose usage EMA falls below `dead_code_fraction` of the mean usage per code (the
    level's vectors per batch / K) is restarted from a random residual of the current batch,
    with the mean usage, so it has ~log(fraction) / log(decay) steps to attract vectors; a
    threshold relative to the batch suits every batch size and every level under quantizer
    dropout (the deeper levels see fewer vectors). `dead_code_threshold` (absolute usage, in
    vectors per batch) is the older rule, kept so codecs configured with it (before 2026-12-07)
    load, and train as they did: with fewer vectors per batch than threshold x K, every code
    is restarted at every step;
  - quantizer dropout: each example uses only its first nq ~ U{1..Nq} levels, so one model
    serves every bitrate; with `full_levels_share` > 0 that share of the examples uses every
    level instead (DAC, Kumar et al. 2023, drops levels on half the examples: the full
    bitrate's quality suffers when every example draws nq).
The commitment loss sum_q |r_q - sg(e_q[c_q])|^2 (mean over active frames) is returned for
the encoder; the caller weights it.

Variables: collection `codebooks`, per level q: `level_{q}_embedding` [K, D],
`level_{q}_cluster_size` [K] (usage EMA), `level_{q}_embed_sum` [K, D]; and `initialized`
(bool []). `init` boxes the per-level arrays in `nn.LogicallyPartitioned` for sharding: the
codebook axis K is "vocab" (the codes are the level's token vocabulary), D "embed", as a
transformer's embedding table.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.models import layers


def perplexity(usage: jnp.ndarray) -> jnp.ndarray:
  """exp(entropy) of a distribution over codes [..., K] (each code's share of the vectors):
  how many codes are in effective use, 1..K."""
  return jnp.exp(-jnp.sum(usage * jnp.log(usage + 1e-10), axis=-1))


def nearest_code(vectors: jnp.ndarray, codebook: jnp.ndarray) -> jnp.ndarray:
  """Index of the nearest codebook row (squared L2): [N, D], [K, D] -> int32 [N]."""
  distances = (jnp.sum(vectors**2, -1, keepdims=True) - 2 * vectors @ codebook.T
               + jnp.sum(codebook**2, -1)[None, :])  # [N, K]
  return jnp.argmin(distances, axis=-1).astype(jnp.int32)


def kmeans_plus_plus(vectors: jnp.ndarray, weights: jnp.ndarray, num_clusters: int,
                     rng: jax.Array) -> jnp.ndarray:
  """k-means++ seeding: each new centre drawn with probability ~ squared distance to the
  nearest centre so far (among vectors with weight 1). vectors [N, D] -> centres [K, D]."""
  keys = jax.random.split(rng, num_clusters)
  uniform = weights / jnp.maximum(weights.sum(), 1.0)
  first = vectors[jax.random.choice(keys[0], vectors.shape[0], p=uniform)]
  centres = jnp.zeros((num_clusters, vectors.shape[1]), vectors.dtype).at[0].set(first)
  nearest = jnp.sum((vectors - first) ** 2, -1)  # [N]: squared distance to the nearest centre

  def add_centre(i, carry):
    centres, nearest = carry
    mass = nearest * weights
    # Fewer distinct vectors than clusters: every vector is a centre already, draw uniformly.
    probs = jnp.where(mass.sum() > 0, mass / jnp.maximum(mass.sum(), 1e-30), uniform)
    centre = vectors[jax.random.choice(keys[i], vectors.shape[0], p=probs)]
    return centres.at[i].set(centre), jnp.minimum(nearest, jnp.sum((vectors - centre) ** 2, -1))

  return jax.lax.fori_loop(1, num_clusters, add_centre, (centres, nearest))[0]


def kmeans(vectors: jnp.ndarray, weights: jnp.ndarray, num_clusters: int, rng: jax.Array,
           num_iters: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Lloyd's k-means with k-means++ seeding on weighted vectors [N, D] (weights [N] in {0, 1}).

  An empty cluster keeps its centre. Returns (centres [K, D], counts [K]).
  """
  centres = kmeans_plus_plus(vectors, weights, num_clusters, rng)

  def assign(centres):
    onehot = jax.nn.one_hot(nearest_code(vectors, centres), num_clusters) * weights[:, None]
    return onehot.sum(0), onehot.T @ vectors  # counts [K], sums [K, D]

  def step(_, centres):
    counts, sums = assign(centres)
    return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centres)

  centres = jax.lax.fori_loop(0, num_iters, step, centres)
  return centres, assign(centres)[0]


class ResidualVQ(nn.Module):
  """`num_quantizers` codebooks of `codebook_size` vectors of size `dim`."""
  num_quantizers: int
  codebook_size: int
  dim: int
  decay: float = 0.99
  dead_code_fraction: float = 0.1
  dead_code_threshold: float | None = None  # The older absolute rule: overrides the fraction.
  kmeans_iters: int = 10
  quantizer_dropout: bool = True
  full_levels_share: float = 0.0
  epsilon: float = 1e-5

  def setup(self):
    k, d = self.codebook_size, self.dim

    rows, table = ("vocab",), ("vocab", "embed")  # Logical names of [K] and [K, D].

    def level_vars(q):
      name = f"level_{q}"
      embed = self.variable("codebooks", f"{name}_embedding", layers.logical_init(
          table, lambda: jax.random.normal(self.make_rng("params"), (k, d))))
      size = self.variable("codebooks", f"{name}_cluster_size",
                           layers.logical_init(rows, lambda: jnp.ones((k,))))
      total = self.variable("codebooks", f"{name}_embed_sum",
                            layers.logical_init(table, lambda: embed.value))
      return embed, size, total

    self.levels = [level_vars(q) for q in range(self.num_quantizers)]
    self.initialized = self.variable("codebooks", "initialized", lambda: jnp.array(False))

  def codebook(self, q: int) -> jnp.ndarray:
    """Level q's codebook [K, D]."""
    return self.levels[q][0].value

  def decode(self, codes: jnp.ndarray) -> jnp.ndarray:
    """codes int32 [..., nq] (nq <= num_quantizers; -1 = level unused) -> vectors [..., D]."""
    out = 0.0
    for q in range(codes.shape[-1]):
      c = codes[..., q]
      out += jnp.where((c >= 0)[..., None], self.codebook(q)[jnp.maximum(c, 0)], 0.0)
    return out

  def __call__(self, x: jnp.ndarray, *, train: bool = False, num_quantizers: int | None = None,
               mask: jnp.ndarray | None = None) -> tuple[jnp.ndarray, jnp.ndarray, dict]:
    """Quantizes x: [batch, frames, D].

    num_quantizers: levels used at inference (default all); in training with
    `quantizer_dropout`, each example draws its own (rng stream `quantizer`).
    mask: [batch, frames], 1 on real frames (padding neither trains codebooks nor counts).
    Returns (quantized [b, t, D] with straight-through gradients, codes int32 [b, t, Nq] with -1
    on unused levels, aux) where aux has `commitment_loss` [], `residual_norms` [Nq] (mean
    |r_q| before level q, then the final residual) and `perplexity` [Nq].
    """
    b, t, d = x.shape
    assert d == self.dim, (d, self.dim)
    mask = jnp.ones((b, t), x.dtype) if mask is None else mask.astype(x.dtype)
    x = x.astype(jnp.float32)
    if train and self.quantizer_dropout:
      active_levels = jax.random.randint(self.make_rng("quantizer"), (b,), 1,
                                         self.num_quantizers + 1)
      if self.full_levels_share > 0:
        full = jax.random.uniform(self.make_rng("quantizer"), (b,)) < self.full_levels_share
        active_levels = jnp.where(full, self.num_quantizers, active_levels)
    else:
      active_levels = jnp.full((b,), num_quantizers or self.num_quantizers)
    update = train and self.is_mutable_collection("codebooks") and not self.is_initializing()

    residual, quantized = x, jnp.zeros_like(x)
    codes, norms, perplexities, commitment = [], [], [], 0.0
    frames = mask.sum()
    for q in range(self.num_quantizers):
      active = (q < active_levels)[:, None].astype(x.dtype) * mask  # [b, t]
      flat, weights = residual.reshape(-1, d), active.reshape(-1)
      if update:
        self._maybe_kmeans_init(q, flat, weights)
      codebook = self.codebook(q)
      code = nearest_code(flat, codebook)  # [b * t]
      chosen = codebook[code].reshape(b, t, d)
      norms.append((jnp.linalg.norm(residual, axis=-1) * mask).sum() / jnp.maximum(frames, 1))
      commitment += (jnp.sum((residual - jax.lax.stop_gradient(chosen)) ** 2, -1) * active
                     ).sum() / jnp.maximum(active.sum(), 1.0)
      onehot = jax.nn.one_hot(code, self.codebook_size) * weights[:, None]  # [N, K]
      usage = onehot.sum(0) / jnp.maximum(weights.sum(), 1.0)
      perplexities.append(perplexity(usage))
      if update:
        self._ema_update(q, flat, onehot, weights)
      chosen = chosen * active[..., None]
      quantized += chosen
      residual = residual - chosen
      codes.append(jnp.where(active > 0, code.reshape(b, t), -1))
    norms.append((jnp.linalg.norm(residual, axis=-1) * mask).sum() / jnp.maximum(frames, 1))
    if update:
      self.initialized.value = jnp.array(True)
    quantized = x + jax.lax.stop_gradient(quantized - x)  # Straight-through estimator.
    aux = {"commitment_loss": commitment, "residual_norms": jnp.stack(norms),
           "perplexity": jnp.stack(perplexities), "active_levels": active_levels}
    return quantized, jnp.stack(codes, -1), aux

  def _maybe_kmeans_init(self, q: int, flat: jnp.ndarray, weights: jnp.ndarray) -> None:
    embed, size, total = self.levels[q]
    centres, counts = jax.lax.cond(
        self.initialized.value,
        lambda: (embed.value, size.value),
        lambda: kmeans(jax.lax.stop_gradient(flat), weights, self.codebook_size,
                       self.make_rng("quantizer"), self.kmeans_iters))
    embed.value, size.value = centres, counts
    total.value = centres * counts[:, None]

  def _ema_update(self, q: int, flat: jnp.ndarray, onehot: jnp.ndarray,
                  weights: jnp.ndarray) -> None:
    embed, size, total = self.levels[q]
    flat = jax.lax.stop_gradient(flat)
    counts, sums = onehot.sum(0), onehot.T @ flat  # [K], [K, D]
    cluster_size = self.decay * size.value + (1 - self.decay) * counts
    embed_sum = self.decay * total.value + (1 - self.decay) * sums
    n = cluster_size.sum()
    smoothed = (cluster_size + self.epsilon) / (n + self.codebook_size * self.epsilon) * n
    # Codes of zero smoothed usage stay as they are (a level no vector has reached yet, as
    # under quantizer dropout a batch of fewer levels, has n = 0).
    embedding = jnp.where((smoothed > 0)[:, None],
                          embed_sum / jnp.maximum(smoothed, 1e-30)[:, None], embed.value)
    # Dead codes: restart from random active vectors of this batch (module docstring).
    if self.dead_code_threshold is None:
      restart_size = n / self.codebook_size
      threshold = self.dead_code_fraction * restart_size
    else:
      threshold = restart_size = self.dead_code_threshold
    dead = (cluster_size < threshold) & (weights.sum() > 0)  # Only from this level's vectors.
    probs = weights / jnp.maximum(weights.sum(), 1.0)
    picks = jax.random.choice(self.make_rng("quantizer"), flat.shape[0], (self.codebook_size,),
                              p=probs)
    embedding = jnp.where(dead[:, None], flat[picks], embedding)
    cluster_size = jnp.where(dead, restart_size, cluster_size)
    embed.value = embedding
    size.value = cluster_size
    total.value = embedding * cluster_size[:, None]


def bitrate_bps(frame_rate_hz: float, num_quantizers: int, codebook_size: int) -> float:
  """Bits per second of `num_quantizers` codes per frame: frame_rate * nq * log2(K)."""
  return frame_rate_hz * num_quantizers * math.log2(codebook_size)
