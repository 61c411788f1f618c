"""Acoustic model of a two-stage text-to-speech: linguistic frames -> log-mel frames.

Tacotron 2's split (a feature predictor, then a WaveNet vocoder), with the durations given, as
in Deep Voice / FastSpeech: espeak's phoneme alignment already says which phoneme each frame
belongs to (`audiojax.data.phonemes.frame_features`), so the model maps frames to frames and
needs no attention. Its output is the vocoder's conditioning (`losses.mel_features` at the
vocoder's hop and bands), so `launch.synthesize --vocoder=RUN` speaks through any log-mel
vocoder of `configs/wavenet.py` with the same frames, e.g. the quick start's.

Inputs per frame: the linguistic features, and the pitch the vocoder will be driven by, read
off the pitch-synchronous excitation the data pipeline packs after them (`audiojax.data.pitch`:
the voiced share of the frame's samples and their mean log-F0), so the predicted spectrum's
harmonics agree with the excitation's F0; plus the speaker: an id, or for voice cloning
(`speaker_embedding_dim`) a vector that a speaker encoder, trained jointly (or alone and
frozen), computes from a few seconds of the voice (`speaker_encoder.SpeakerEncoder`).
Non-causal: a stack of residual dilated convolutions over the whole utterance (kernel 5,
dilations 1, 2, 4, 8, ...).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from audiojax.data import pitch
from audiojax.models import speaker_encoder
from audiojax.models.layers import constrain, logical_init


def frame_pitch(excitation: jnp.ndarray, hop: int, channels: int,
                sample_rate_hz: int) -> jnp.ndarray:
  """Packed excitation frames [b, frames, hop * channels] (`pitch.excitation_frames`) ->
  [b, frames, 2]: each frame's voiced share of samples and the mean of log2(F0 / 100 Hz) over
  its voiced samples (0 when none)."""
  per_sample = excitation.reshape(*excitation.shape[:2], hop, channels)
  voiced = per_sample[..., 0]
  share = voiced.mean(-1)
  if channels <= pitch.PERIOD_CHANNEL:  # No period channel: the voicing only.
    return jnp.stack([share, jnp.zeros_like(share)], -1)
  period = per_sample[..., pitch.PERIOD_CHANNEL] * pitch.period_scale(sample_rate_hz)
  log_f0 = jnp.where(voiced > 0, jnp.log2(sample_rate_hz / jnp.maximum(period, 1.0) / 100.0), 0)
  mean = log_f0.sum(-1) / jnp.maximum(voiced.sum(-1), 1.0)
  return jnp.stack([share, mean], -1)


class Model(nn.Module):
  """Linguistic frames (+ excitation) and speaker -> log-mel frames.

  Attributes:
    num_mels: bands of the output (the vocoder's `condition_channels`).
    linguistic_channels: features per frame before the excitation
      (`phonemes.num_features(num_phonemes)`).
    hop: samples per frame (the vocoder's `condition_hop`); the excitation holds hop x
      excitation_channels values per frame.
    excitation_channels: channels per sample of the packed excitation (0: none).
    num_speakers: speaker-id embedding rows (0: unconditional).
    speaker_embedding_dim: E > 0: condition on a speaker vector from reference audio instead
      (its log-mel: reference_mels bands every reference_hop samples, `tasks.speaker_vectors`).
  """
  num_mels: int = 40
  linguistic_channels: int = 392
  hop: int = 128
  excitation_channels: int = pitch.EXCITATION_CHANNELS
  sample_rate_hz: int = 16000
  num_speakers: int = 16
  speaker_embedding_dim: int = 0
  reference_mels: int = 40
  reference_hop: int = 160
  width: int = 256
  num_layers: int = 6
  kernel_size: int = 5
  dilations: tuple[int, ...] = (1, 2, 4, 8)  # Repeated over the layers.
  dropout_rate: float = 0.1
  dtype: Any = "float32"

  @nn.compact
  def __call__(self, condition: jnp.ndarray, speaker: jnp.ndarray | None,
               train: bool = False) -> jnp.ndarray:
    """condition: [b, frames, linguistic_channels + hop * excitation_channels], speaker: [b]
    ids, or with speaker_embedding_dim the reference's log-mel [b, ref_frames, reference_mels]
    or its speaker vectors [b, E] -> log-mel [b, frames, num_mels] (`losses.mel_features`'
    scale)."""
    expected = self.linguistic_channels + self.hop * self.excitation_channels
    if condition.shape[-1] != expected:
      raise ValueError(f"acoustic model input has {condition.shape[-1]} channels per frame, "
                       f"expected {expected} (linguistic {self.linguistic_channels} + hop "
                       f"{self.hop} x excitation {self.excitation_channels})")
    dtype = jnp.dtype(self.dtype)
    features = condition[..., :self.linguistic_channels]
    if self.excitation_channels:
      features = jnp.concatenate([features, frame_pitch(
          condition[..., self.linguistic_channels:], self.hop, self.excitation_channels,
          self.sample_rate_hz)], -1)
    x = nn.Dense(self.width, dtype=dtype, kernel_init=logical_init(("embed", "mlp")),
                 name="input")(features)  # [b, frames, width]
    if self.speaker_embedding_dim:
      if speaker.ndim == 3:  # Reference log-mel -> speaker vector.
        speaker = speaker_encoder.SpeakerEncoder(self.speaker_embedding_dim, dtype=dtype,
                                                 name="speaker_encoder")(speaker)
      x = x + nn.Dense(self.width, dtype=dtype, kernel_init=logical_init((None, "mlp")),
                       name="speaker_vector")(speaker)[:, None]
    elif self.num_speakers:
      table = nn.Embed(self.num_speakers, self.width, dtype=dtype,
                       embedding_init=logical_init((None, "mlp"), nn.initializers.normal(1.0)),
                       name="speaker")
      x = x + table(speaker)[:, None]
    # The residual stream's channels stay whole (as WaveNet's): constrained to "mlp" they
    # parted sharded from unsharded training on a data x fsdp x tensor mesh (by ~1e-3 in two
    # steps; tests/train/test_sharding.py).
    x = constrain(x, ("batch", "time", None))
    for i in range(self.num_layers):
      y = nn.LayerNorm(dtype=dtype, name=f"layer_{i}_norm")(x)
      y = nn.Conv(self.width, (self.kernel_size,), padding="SAME", dtype=dtype,
                  kernel_dilation=self.dilations[i % len(self.dilations)],
                  kernel_init=logical_init(("conv_taps", "embed", "mlp")),
                  name=f"layer_{i}_conv")(y)
      y = nn.gelu(y)
      y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
      y = nn.Dense(self.width, dtype=dtype, kernel_init=logical_init(("mlp", "embed")),
                   name=f"layer_{i}_out")(y)
      x = constrain(x + y, ("batch", "time", None))
    x = nn.LayerNorm(dtype=dtype, name="output_norm")(x)
    mel = nn.Dense(self.num_mels, dtype=dtype, kernel_init=logical_init(("embed", None)),
                   name="output")(x)
    return mel.astype(jnp.float32)
