"""A speaker encoder (d-vector) trained on its own, to give voice-cloning models a fixed voice
space.

  vectors, logits = model.apply(variables, reference_mel)  # [b, E], [b, num_speakers]

`SpeakerEncoder` maps the log-mel of reference audio [batch, frames, reference_mels] (10-ms
frames at 16 kHz by default: `tasks.reference_features`) to a unit-norm vector [batch, E]:
three 1-D convs (kernel 3, ReLU), the mean over frames, a linear projection. The voice-cloning
WaveNet and acoustic model (`speaker_embedding_dim`) hold the same module under the same name,
"speaker_encoder", and either train it jointly with themselves or, as in "transfer learning from
speaker verification" (Jia et al., 2018), take it from a run of this model and keep it fixed:
`--config.train.init_from=RUN --config.optimizer.frozen=speaker_encoder`.

`Model` trains the encoder alone to name the speaker of a crop, with the additive-margin
cosine softmax (AM-softmax, Wang et al., 2018): logits = scale * (cos(v, w_k) - margin [k is
the label]), w_k a learned unit vector per training speaker, so speakers are separated by angle,
the similarity the WaveNet's 1x1s and the cosine comparisons downstream see. The margin applies
in training only (`speaker_encoder_loss`); `logits` here are without it.

Parameters (logical axes for sharding):
  speaker_encoder/conv_{i}/kernel [3, M or F, F], bias [F]; speaker_encoder/project/kernel
                                  [F, E], bias [E]
  speaker_centres                 [num_speakers, E]   (`Model` only)
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from audiojax.models import layers

_init = layers.logical_init


def unit(x: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
  """x scaled to unit L2 norm along `axis`."""
  return x / jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True) + 1e-12)


class SpeakerEncoder(nn.Module):
  """Reference log-mel [batch, frames, M] -> unit-norm speaker vector [batch, embedding_dim]:
  three 1-D convs (kernel 3, ReLU), the mean over frames, a linear projection (a d-vector)."""
  embedding_dim: int
  channels: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, mel: jnp.ndarray) -> jnp.ndarray:
    x = mel.astype(self.dtype)
    for i in range(3):
      x = nn.relu(nn.Conv(self.channels, (3,), dtype=self.dtype, name=f"conv_{i}",
                          kernel_init=_init(("conv_taps", None, "mlp")),
                          bias_init=_init(("mlp",), nn.initializers.zeros))(x))
    x = nn.Dense(self.embedding_dim, dtype=self.dtype, name="project",
                 kernel_init=_init(("mlp", None)))(x.mean(axis=1))
    return unit(x.astype(jnp.float32))  # [batch, E]


class Model(nn.Module):
  """The encoder and one learned direction per training speaker (module docstring).

  The reference fields are named as the voice-cloning WaveNet's, so a WaveNet whose
  speaker_embedding_dim and reference_* equal these can take this encoder's weights.
  """
  num_speakers: int = 10  # Training speakers (>= the dataset's speaker count).
  embedding_dim: int = 64  # E.
  sample_rate_hz: int = 16000
  reference_mels: int = 40  # Log-mel bands of the input.
  reference_hop: int = 160  # Samples per input frame.
  scale: float = 10.0  # AM-softmax: logits = scale * (cosine - margin at the label).
  margin: float = 0.2
  dtype: str = "float32"

  def __post_init__(self):
    if self.num_speakers < 2:
      raise ValueError(f"num_speakers={self.num_speakers}: a speaker encoder learns from "
                       "telling at least two speakers apart")
    super().__post_init__()

  @nn.compact
  def __call__(self, mel: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """mel [b, frames, reference_mels] -> (unit vectors [b, E], logits [b, num_speakers]:
    scale * cosine to each speaker's direction)."""
    vectors = SpeakerEncoder(self.embedding_dim, dtype=jnp.dtype(self.dtype),
                             name="speaker_encoder")(mel)
    centres = self.param("speaker_centres", _init((None, None), nn.initializers.normal(1.0)),
                         (self.num_speakers, self.embedding_dim))
    return vectors, self.scale * vectors @ unit(centres).T
