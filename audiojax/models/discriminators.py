"""SoundStream's discriminators: multi-scale waveform (3 scales) and complex STFT.

Each returns, per sub-discriminator, the list of its feature maps with the logits last; the
adversarial (hinge) and feature-matching losses are in `audiojax.train.losses`.

Sharding: conv kernels are named ("conv_taps", "embed", "mlp") (2-D: ("conv_taps", None,
"embed", "mlp"), frequency taps replicated), biases ("mlp",); the single audio channel, the
STFT's real/imaginary pair and the one logit channel are None. The inputs are constrained to
("batch", "time"), every conv's output to ("batch", "time", None, ...) (`_conv`).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from audiojax.models import layers


def _conv(x: jnp.ndarray, features: int, kernel_size: Sequence[int],
          in_axis: str | None = "embed", out_axis: str | None = "mlp", **kwargs) -> jnp.ndarray:
  """`nn.Conv(features, kernel_size, **kwargs)(x)` for x [b, t, (f,) C], its kernel
  [*taps, C, features] and bias [features] named (taps: "conv_taps" along time, then None), its
  output constrained to split by batch only: left to the partitioner, the STFT stack's strided
  2-D convs got wrong gradients from Shardy (jax 0.10) on a data x fsdp x tensor mesh."""
  taps = ("conv_taps",) + (None,) * (len(kernel_size) - 1)
  y = nn.Conv(features, tuple(kernel_size),
              kernel_init=layers.logical_init((*taps, in_axis, out_axis)),
              bias_init=layers.logical_init((out_axis,), nn.initializers.zeros), **kwargs)(x)
  return layers.constrain(y, ("batch", "time") + (None,) * (y.ndim - 2))


class WaveDiscriminator(nn.Module):
  """MelGAN-style 1-D conv stack on one waveform scale."""
  channels: int = 16
  max_channels: int = 1024
  num_downsamples: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, audio: jnp.ndarray) -> list[jnp.ndarray]:
    """audio: [batch, samples] -> feature maps [b, t_i, c_i], logits [b, t, 1] last."""
    x = layers.constrain(audio, ("batch", "time"))[..., None]
    features = []
    x = nn.leaky_relu(_conv(x, self.channels, (15,), in_axis=None, dtype=self.dtype), 0.2)
    features.append(x)
    width = self.channels
    for _ in range(self.num_downsamples):
      width = min(width * 4, self.max_channels)
      groups = max(1, width // 64)
      x = nn.leaky_relu(_conv(x, width, (41,), strides=(4,), feature_group_count=groups,
                              dtype=self.dtype), 0.2)
      features.append(x)
    x = nn.leaky_relu(_conv(x, width, (5,), dtype=self.dtype), 0.2)
    features.append(x)
    features.append(_conv(x, 1, (3,), out_axis=None, dtype=self.dtype))
    return features


class MultiScaleWaveDiscriminator(nn.Module):
  """Wave discriminators on the audio at 1x, 1/2x and 1/4x the sample rate."""
  channels: int = 16
  max_channels: int = 1024
  num_downsamples: int = 4
  num_scales: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, audio: jnp.ndarray) -> list[list[jnp.ndarray]]:
    outputs = []
    for scale in range(self.num_scales):
      if scale:  # Average-pool by 2 (kernel 4, stride 2) for each coarser scale.
        audio = nn.avg_pool(audio[..., None], (4,), strides=(2,), padding=((1, 1),))[..., 0]
      outputs.append(WaveDiscriminator(self.channels, self.max_channels, self.num_downsamples,
                                       self.dtype, name=f"scale_{scale}")(audio))
    return outputs


def complex_stft(audio: jnp.ndarray, window: int, hop: int) -> jnp.ndarray:
  """Hann-windowed STFT: audio [b, samples] -> real and imaginary [b, frames, bins, 2]."""
  num_frames = (audio.shape[1] - window) // hop + 1
  starts = jnp.arange(num_frames)[:, None] * hop
  frames = audio[:, starts + jnp.arange(window)[None, :]]  # [b, frames, window], one gather
  spectrum = jnp.fft.rfft(frames * jnp.hanning(window + 1)[:-1], axis=-1)
  return jnp.stack([spectrum.real, spectrum.imag], axis=-1)


class STFTDiscriminator(nn.Module):
  """2-D convs over the complex STFT (window 1024, hop 256 in the paper), strided in frequency."""
  window: int = 1024
  hop: int = 256
  channels: int = 32
  strides: Sequence[tuple[int, int]] = ((1, 2), (2, 2), (1, 2), (2, 2), (1, 2), (2, 2))
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, audio: jnp.ndarray) -> list[list[jnp.ndarray]]:
    """audio: [batch, samples] (>= window) -> [[feature maps ..., logits]] (one discriminator)."""
    audio = layers.constrain(audio.astype(jnp.float32), ("batch", "time"))
    x = complex_stft(audio, self.window, self.hop)  # [b, t, f, 2]
    features = []
    x = nn.leaky_relu(_conv(x, self.channels, (7, 7), in_axis=None, dtype=self.dtype), 0.2)
    features.append(x)
    for i, stride in enumerate(self.strides):
      width = self.channels * 2 ** ((i + 1) // 2)
      x = nn.leaky_relu(_conv(x, width, (3, 4), strides=stride, dtype=self.dtype), 0.2)
      features.append(x)
    features.append(_conv(x, 1, (1, x.shape[2]), out_axis=None, padding="VALID",
                          dtype=self.dtype))
    return [features]


def logits_and_features(outputs: list[list[jnp.ndarray]]):
  """Splits discriminator outputs into ([logits per discriminator], [feature maps])."""
  return [o[-1] for o in outputs], [f for o in outputs for f in o[:-1]]

