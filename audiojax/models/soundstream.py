"""SoundStream (Zeghidour et al., 2021): causal conv encoder -> residual VQ -> causal decoder.

Encoder: causal conv (C channels, kernel 7), then one block per stride: three residual units
(dilations 1, 3, 9; kernel 7 then 1x1, ELU) and a causal strided conv (kernel 2 x stride) that
doubles the channels; a final conv to `embedding_dim`. The decoder mirrors it with causal
transposed convs. Strides (2, 4, 5, 8) give 320 samples per frame (50 Hz at 16 kHz).

Every conv is causal (padded on the past only), so the model streams: with `streaming=True`
each conv keeps the inputs it still needs in the `stream` collection and a chunk of whole
frames goes in at a time (`init_stream`, `encode_step`, `decode_step`); the output equals the
offline output.

Sharding (`audiojax.train.sharding`): `init` returns every param in a `nn.LogicallyPartitioned`
box naming its axes (`nn.meta.unbox` for the plain arrays; `apply` takes either). Conv kernels
[taps, in, out] are ("conv_taps", "embed", "mlp"), biases ("mlp",), except the audio's single
channel (None): the encoder's first kernel is ("conv_taps", None, "mlp") and the decoder's last
("conv_taps", "embed", None) with bias (None,). The RVQ codebooks are ("vocab", "embed")
(`rvq.ResidualVQ`), the discriminators' kernels are named alike (`discriminators`). Every conv's
output is constrained to ("batch", "time", None), the latents to ("batch", "time", "embed").
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.models import discriminators, layers, rvq


class CausalConv(nn.Module):
  """Causal 1-D conv: output t sees inputs <= t (for stride s: <= the end of frame t).

  Offline, the input is left-padded with `context` zeros; streaming, those are the previous
  chunk's last inputs, kept in the `stream` collection.
  """
  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1
  dtype: Any = jnp.float32
  in_axis: str | None = "embed"  # Logical names of the kernel's input and output channels.
  out_axis: str | None = "mlp"

  @property
  def context(self) -> int:
    """Past inputs each chunk needs: (kernel - 1) * dilation + 1 - stride."""
    return (self.kernel_size - 1) * self.dilation + 1 - self.stride

  @nn.compact
  def __call__(self, x: jnp.ndarray, streaming: bool = False) -> jnp.ndarray:
    """x: [batch, time, channels] (time a multiple of stride) -> [batch, time // stride, F]."""
    if streaming:
      buffer = self.variable("stream", "buffer", jnp.zeros,
                             (x.shape[0], self.context, x.shape[-1]), x.dtype)
      x = jnp.concatenate([buffer.value, x], axis=1)
      buffer.value = x[:, x.shape[1] - self.context:]
    y = layers.Conv(self.features, self.kernel_size, self.stride, self.dilation, self.dtype,
                    kernel_init=layers.logical_init(("conv_taps", self.in_axis, self.out_axis)),
                    bias_init=layers.logical_init((self.out_axis,), nn.initializers.zeros),
                    padding=0 if streaming else self.context, name="conv")(x)
    return layers.constrain(y, ("batch", "time", None))


class CausalConvTranspose(nn.Module):
  """Causal upsampling by `stride` (kernel 2 x stride): output frame t sees inputs <= t.

  Of the full transposed conv only the first time * stride outputs are kept; each of them
  mixes its own input frame and the one before, which streaming keeps in `stream`.
  """
  features: int
  stride: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, streaming: bool = False) -> jnp.ndarray:
    """x: [batch, frames, channels] -> [batch, frames * stride, F]."""
    previous = jnp.zeros_like(x[:, :1])  # Offline: a zero frame before the first one.
    if streaming:
      buffer = self.variable("stream", "previous", jnp.zeros, (x.shape[0], 1, x.shape[-1]),
                             x.dtype)
      previous, buffer.value = buffer.value, x[:, -1:]
    y = layers.FrameUpsample(
        self.features, self.stride, self.dtype, name="conv",
        kernel_init=layers.logical_init(("conv_taps", "embed", "mlp")),
        bias_init=layers.logical_init(("mlp",), nn.initializers.zeros))(x, previous)
    return layers.constrain(y, ("batch", "time", None))


class ResidualUnit(nn.Module):
  """x + 1x1(ELU(dilated causal conv k7(ELU(x))))."""
  dilation: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, streaming: bool = False) -> jnp.ndarray:
    channels = x.shape[-1]
    y = CausalConv(channels, 7, dilation=self.dilation, dtype=self.dtype,
                   name="dilated")(layers.elu(x), streaming)
    y = CausalConv(channels, 1, dtype=self.dtype, name="pointwise")(layers.elu(y), streaming)
    return x + y


class Encoder(nn.Module):
  channels: int
  strides: Sequence[int]
  embedding_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, audio: jnp.ndarray, streaming: bool = False) -> jnp.ndarray:
    """audio: [batch, samples] (a multiple of the hop) -> embeddings [batch, frames, D]."""
    audio = layers.constrain(audio, ("batch", "time"))
    x = CausalConv(self.channels, 7, dtype=self.dtype, in_axis=None, name="conv_in")(
        audio[..., None], streaming)
    for i, stride in enumerate(self.strides):
      for j, dilation in enumerate((1, 3, 9)):
        x = ResidualUnit(dilation, self.dtype, name=f"block_{i}_unit_{j}")(x, streaming)
      x = CausalConv(2 * x.shape[-1], 2 * stride, stride=stride, dtype=self.dtype,
                     name=f"block_{i}_down")(layers.elu(x), streaming)
    x = CausalConv(self.embedding_dim, 3, dtype=self.dtype, name="conv_out")(layers.elu(x),
                                                                           streaming)
    return layers.constrain(x, ("batch", "time", "embed"))


class Decoder(nn.Module):
  channels: int
  strides: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, embeddings: jnp.ndarray, streaming: bool = False) -> jnp.ndarray:
    """embeddings: [batch, frames, D] -> audio [batch, frames * hop]."""
    width = self.channels * 2 ** len(self.strides)
    embeddings = layers.constrain(embeddings, ("batch", "time", "embed"))
    x = CausalConv(width, 7, dtype=self.dtype, name="conv_in")(embeddings, streaming)
    for i, stride in enumerate(reversed(self.strides)):
      x = CausalConvTranspose(x.shape[-1] // 2, stride, dtype=self.dtype,
                              name=f"block_{i}_up")(layers.elu(x), streaming)
      for j, dilation in enumerate((1, 3, 9)):
        x = ResidualUnit(dilation, self.dtype, name=f"block_{i}_unit_{j}")(x, streaming)
    audio = CausalConv(1, 7, dtype=self.dtype, out_axis=None, name="conv_out")(layers.elu(x),
                                                                               streaming)
    return layers.constrain(audio[..., 0], ("batch", "time"))


DISCRIMINATORS = ("wave_discriminator", "stft_discriminator")


class Model(nn.Module):
  """The codec: `__call__` reconstructs audio through the quantizer (training and eval).

  The discriminators live in the same params tree (`DISCRIMINATORS` subtrees) and train in
  the same step; `discriminate` runs them. The loss weights are the paper's: adversarial 1,
  feature matching 100, multi-scale mel reconstruction 1.
  """
  sample_rate_hz: int = 16000
  channels: int = 32
  strides: Sequence[int] = (2, 4, 5, 8)
  embedding_dim: int = 128
  num_quantizers: int = 12
  codebook_size: int = 1024
  quantizer_dropout: bool = True
  full_levels_share: float = 0.0  # Examples that keep every level (`rvq.ResidualVQ`).
  codebook_decay: float = 0.99
  dead_code_fraction: float = 0.1
  dead_code_threshold: float | None = None  # Configs before 2026-12-07: 2.0 (`rvq.ResidualVQ`).
  wave_discriminator_channels: int = 16
  wave_discriminator_downsamples: int = 4
  stft_discriminator_channels: int = 32
  stft_window: int = 1024
  stft_hop: int = 256
  reconstruction_weight: float = 1.0
  adversarial_weight: float = 1.0
  feature_weight: float = 100.0
  commitment_weight: float = 1.0
  dtype: Any = jnp.float32

  @property
  def hop_samples(self) -> int:
    """Audio samples per frame (the product of the strides; also the latency)."""
    return functools.reduce(lambda a, b: a * b, self.strides, 1)

  def setup(self):
    self.encoder = Encoder(self.channels, tuple(self.strides), self.embedding_dim, self.dtype)
    self.quantizer = rvq.ResidualVQ(self.num_quantizers, self.codebook_size, self.embedding_dim,
                                    decay=self.codebook_decay,
                                    dead_code_fraction=self.dead_code_fraction,
                                    dead_code_threshold=self.dead_code_threshold,
                                    quantizer_dropout=self.quantizer_dropout,
                                    full_levels_share=self.full_levels_share)
    self.decoder = Decoder(self.channels, tuple(self.strides), self.dtype)
    self.wave_discriminator = discriminators.MultiScaleWaveDiscriminator(
        self.wave_discriminator_channels, num_downsamples=self.wave_discriminator_downsamples,
        dtype=self.dtype)
    self.stft_discriminator = discriminators.STFTDiscriminator(
        self.stft_window, self.stft_hop, self.stft_discriminator_channels, dtype=self.dtype)

  def discriminate(self, audio: jnp.ndarray) -> list[list[jnp.ndarray]]:
    """audio [b, samples] -> every discriminator's [feature maps ..., logits]."""
    return self.wave_discriminator(audio) + self.stft_discriminator(audio)

  def init_all(self, audio: jnp.ndarray):
    """Touches every submodule (codec and discriminators), for `init`."""
    reconstruction, _, _ = self(audio, train=False)
    return self.discriminate(reconstruction)

  def __call__(self, audio: jnp.ndarray, *, train: bool = False,
               num_quantizers: int | None = None) -> tuple[jnp.ndarray, jnp.ndarray, dict]:
    """audio: [batch, samples] (a multiple of hop_samples) -> (reconstruction [b, samples],
    codes int32 [b, frames, Nq], quantizer aux; see `rvq.ResidualVQ`)."""
    embeddings = self.encoder(audio)
    quantized, codes, aux = self.quantizer(embeddings, train=train,
                                           num_quantizers=num_quantizers)
    return self.decoder(quantized).astype(jnp.float32), codes, aux

  def encode(self, audio: jnp.ndarray, num_quantizers: int | None = None,
             streaming: bool = False) -> jnp.ndarray:
    """audio [batch, samples] -> codes int32 [batch, frames, num_quantizers]."""
    _, codes, _ = self.quantizer(self.encoder(audio, streaming), num_quantizers=num_quantizers)
    return codes[..., :num_quantizers or self.num_quantizers]

  def decode(self, codes: jnp.ndarray, streaming: bool = False) -> jnp.ndarray:
    """codes int32 [batch, frames, nq] -> audio [batch, frames * hop_samples]."""
    return self.decoder(self.quantizer.decode(codes), streaming).astype(jnp.float32)


def init_stream(model: Model, variables: Any, batch_size: int, num_quantizers: int) -> Any:
  """Empty streaming state (the `stream` collection) for `encode_step` and `decode_step`.

  variables: the model's `params` and `codebooks`.
  """
  audio = jnp.zeros((batch_size, model.hop_samples))
  codes = jnp.zeros((batch_size, 1, num_quantizers), jnp.int32)
  _, enc = jax.eval_shape(functools.partial(model.apply, method=Model.encode, streaming=True,
                                            mutable=["stream"]), variables, audio)
  _, dec = jax.eval_shape(functools.partial(model.apply, method=Model.decode, streaming=True,
                                            mutable=["stream"]), variables, codes)
  zeros = lambda tree: jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), tree["stream"])
  return {"encoder": zeros(enc), "decoder": zeros(dec)}


def encode_step(model: Model, variables: Any, stream: Any, audio: jnp.ndarray,
                num_quantizers: int) -> tuple[Any, jnp.ndarray]:
  """One chunk of whole frames: audio [b, k * hop] -> (stream, codes [b, k, nq])."""
  codes, updated = model.apply({**variables, "stream": stream["encoder"]}, audio,
                               num_quantizers, True, method=Model.encode, mutable=["stream"])
  return {**stream, "encoder": updated["stream"]}, codes


def decode_step(model: Model, variables: Any, stream: Any,
                codes: jnp.ndarray) -> tuple[Any, jnp.ndarray]:
  """One chunk of frames: codes [b, k, nq] -> (stream, audio [b, k * hop])."""
  audio, updated = model.apply({**variables, "stream": stream["decoder"]}, codes, True,
                               method=Model.decode, mutable=["stream"])
  return {**stream, "decoder": updated["stream"]}, audio
