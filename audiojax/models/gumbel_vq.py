"""Gumbel-softmax vector quantizer (wav2vec 2.0, Baevski et al. 2020; one codebook group).

A projection of each frame to `codebook_size` logits picks a code: in training a hard
Gumbel-softmax sample at temperature tau with straight-through gradients (the forward pass
uses the one-hot code, the backward pass the soft sample), in evaluation the argmax. The code's
learned vector is the frame's quantized vector. tau falls geometrically from
`temperatures[0]` to `temperatures[1]` over `anneal_steps` training calls (a counter in the
`codebooks` collection, so it is checkpointed and resumes exactly).

The diversity loss (V - perplexity) / V, with the perplexity exp(entropy) of the softmax
(without noise) averaged over the batch's valid frames, pushes the quantizer to use every code
equally often; the caller weights it (wav2vec 2.0: 0.1).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.models import layers


def temperature(step: jnp.ndarray, temperatures: tuple[float, float],
                anneal_steps: int) -> jnp.ndarray:
  """tau after `step` training calls: geometric from temperatures[0] to [1], then constant."""
  start, end = temperatures
  progress = jnp.minimum(step.astype(jnp.float32) / max(anneal_steps, 1), 1.0)
  return start * (end / start) ** progress


class GumbelVQ(nn.Module):
  """x [b, T, D_in] -> (quantized [b, T, dim] float32, codes int32 [b, T],
  {"perplexity": [], "diversity_loss": [], "temperature": []})."""
  codebook_size: int
  dim: int
  temperatures: tuple[float, float] = (2.0, 0.5)
  anneal_steps: int = 100_000

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False,
               mask: jnp.ndarray | None = None) -> tuple[jnp.ndarray, jnp.ndarray, dict]:
    """mask: [b, T] (1 = a real frame) for the diversity statistics; None = all real."""
    logits = nn.Dense(self.codebook_size, name="logits", kernel_init=layers.logical_init(
        (None, "vocab")), bias_init=layers.logical_init(("vocab",), nn.initializers.zeros))(
            x).astype(jnp.float32)  # [b, T, V]
    codebook = self.param("codebook", layers.logical_init(
        ("vocab", "embed"), nn.initializers.uniform(1.0)), (self.codebook_size, self.dim))
    step = self.variable("codebooks", "step", lambda: jnp.zeros((), jnp.int32))
    tau = temperature(step.value, self.temperatures, self.anneal_steps)
    if train:
      noisy = logits + jax.random.gumbel(self.make_rng("quantizer"), logits.shape)
      soft = jax.nn.softmax(noisy / tau, axis=-1)
      codes = jnp.argmax(noisy, axis=-1).astype(jnp.int32)
      hard = jax.nn.one_hot(codes, self.codebook_size, dtype=soft.dtype)
      weights = hard + soft - jax.lax.stop_gradient(soft)  # Straight through.
      if not self.is_initializing():
        step.value += 1
    else:
      codes = jnp.argmax(logits, axis=-1).astype(jnp.int32)
      weights = jax.nn.one_hot(codes, self.codebook_size, dtype=jnp.float32)
    quantized = weights @ codebook.astype(jnp.float32)  # [b, T, dim]

    real = jnp.ones(logits.shape[:2]) if mask is None else mask.astype(jnp.float32)
    probs = jax.nn.softmax(logits, axis=-1)
    average = jnp.sum(probs * real[..., None], (0, 1)) / jnp.maximum(real.sum(), 1.0)  # [V]
    perplexity = jnp.exp(-jnp.sum(average * jnp.log(average + 1e-9)))
    diversity_loss = (self.codebook_size - perplexity) / self.codebook_size
    return quantized, codes, {"perplexity": perplexity, "diversity_loss": diversity_loss,
                              "temperature": tau}
