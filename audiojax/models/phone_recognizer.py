"""A CTC phone recognizer: the speech encoder of `audiojax.models.hubert` and a linear head.

  logits = model.apply(variables, audio, audio_mask, frame_mask, train)  # [b, frames, C]

C = num_phonemes + 1 classes per frame (one frame per `hop_samples`, ceil(samples / hop)
frames, as hubert): class 0 is CTC's blank (`BLANK`), class k the k-th phoneme of the run's
inventory (`config.data.phonemes`; ids as `audiojax.data.phonemes.ids`). Every hubert.Model field
configures the encoder (its HuBERT head, target and w2v-BERT fields are unused); the encoder's
params keep hubert's names, then "final_norm" (pre-norm layers end normalised) and "ctc_head".
In training, `mask_prob` / `mask_length` replace spans of frames by the encoder's learned mask
embedding (`hubert.span_mask`): a time-only SpecAugment; mask_prob=0 turns it off. With
`noise_prob > 0`, that share of the training crops gets white noise at a signal-to-noise
ratio drawn uniformly from `noise_snr_db` (`add_noise`): a recognizer that still hears the
phones of noisy speech, as an instrument for generated audio (launch.synthesize, launch.sample).

Also greedy CTC decoding and edit distances in JAX, for the training task's phone error rate
(`audiojax.train.tasks.phone_recognizer_loss`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.models import hubert, transformer

BLANK = 0


class Model(hubert.Model):
  """hubert's encoder and a per-frame linear head over num_phonemes + 1 classes (blank 0)."""
  num_phonemes: int = 0  # 0 in a config: the trainer sets the training split's inventory size.
  noise_prob: float = 0.0  # Training: share of crops with white noise added (`add_noise`).
  noise_snr_db: tuple[float, float] = (0.0, 30.0)  # Their SNR range, drawn uniformly (dB).

  def __post_init__(self):
    if self.num_phonemes < 1:
      raise ValueError(f"num_phonemes={self.num_phonemes}: the trainer sets it from the training "
                       "split's phoneme inventory (trainer.with_phoneme_inventory)")
    super().__post_init__()

  @nn.compact
  def __call__(self, audio: jnp.ndarray, audio_mask: jnp.ndarray | None = None,
               frame_mask: jnp.ndarray | None = None, train: bool = False) -> jnp.ndarray:
    """audio: float [b, samples], audio_mask [b, samples] (1 = real audio), frame_mask: bool
    [b, frames] (True = masked) -> float32 logits [b, ceil(samples / hop), num_phonemes + 1]."""
    hidden, _ = self._encode(audio, audio_mask, frame_mask, train, self.num_layers, False)
    x = hidden[-1]
    if self.norm_first:  # Pre-norm layers end unnormalised.
      x = nn.LayerNorm(epsilon=self.norm_epsilon, dtype=self.dtype, name="final_norm")(x)
    logits = transformer.Dense((self.num_phonemes + 1,), ("embed", "classes"), self.dtype,
                               use_bias=True, name="ctc_head")(x)
    return logits.astype(jnp.float32)


def add_noise(rng: jax.Array, audio: jnp.ndarray, audio_mask: jnp.ndarray, prob: float,
              snr_db: tuple[float, float]) -> jnp.ndarray:
  """audio [b, samples] (zero where audio_mask [b, samples] is 0) -> each row, with probability
  `prob`, plus white Gaussian noise over its real samples at an SNR (its mean power over the
  noise's) drawn uniformly from snr_db, in dB."""
  pick_rng, snr_rng, noise_rng = jax.random.split(rng, 3)
  batch = audio.shape[0]
  noisy = jax.random.bernoulli(pick_rng, prob, (batch, 1))
  snr = jax.random.uniform(snr_rng, (batch, 1), minval=snr_db[0], maxval=snr_db[1])
  power = (audio ** 2).sum(-1, keepdims=True) / jnp.maximum(audio_mask.sum(-1, keepdims=True), 1)
  scale = jnp.sqrt(power / 10 ** (snr / 10))  # [b, 1]
  noise = jax.random.normal(noise_rng, audio.shape, audio.dtype) * scale * audio_mask
  return jnp.where(noisy, audio + noise, audio)


def greedy_path(logits: jnp.ndarray, valid: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Greedy CTC decoding of logits [b, T, C] over the valid frames (bool [b, T]) -> (classes
  int32 [b, T], emit bool [b, T]): the output of a row is classes[emit], the frames whose
  class is not blank and differs from the previous frame's (repeats collapsed, blanks dropped)."""
  classes = logits.argmax(-1).astype(jnp.int32)
  previous = jnp.pad(classes[:, :-1], ((0, 0), (1, 0)), constant_values=BLANK)
  return classes, valid & (classes != BLANK) & (classes != previous)


def edit_distances(hypotheses: jnp.ndarray, emit: jnp.ndarray, references: jnp.ndarray,
                   lengths: jnp.ndarray) -> jnp.ndarray:
  """Levenshtein distances int32 [b] between hypotheses[i][emit[i]] (int [b, T], bool [b, T])
  and references[i, :lengths[i]] (int [b, L], int [b]).

  One dynamic-programming row per hypothesis token (a scan over T; rows of frames that emit
  nothing are kept): row j = edits turning the tokens so far into the first j references.
  Insertions within a row are a running minimum: D[j] = min_k (E[k] + j - k).
  """
  b, num_refs = references.shape
  columns = jnp.arange(num_refs + 1, dtype=jnp.int32)

  def step(row, inputs):
    token, on = inputs  # [b], [b]
    substitute = row[:, :-1] + (references != token[:, None]).astype(jnp.int32)
    best = jnp.concatenate([row[:, :1] + 1, jnp.minimum(row[:, 1:] + 1, substitute)], axis=1)
    best = jax.lax.cummin(best - columns, axis=1) + columns
    return jnp.where(on[:, None], best, row), None

  first = jnp.broadcast_to(columns, (b, num_refs + 1))
  row, _ = jax.lax.scan(step, first, (hypotheses.T.astype(jnp.int32), emit.T))
  return jnp.take_along_axis(row, lengths[:, None].astype(jnp.int32), axis=1)[:, 0]
