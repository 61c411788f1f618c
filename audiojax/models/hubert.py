"""Self-supervised speech encoder (HuBERT / w2v-BERT style) for AudioLM's semantic tokens.

AudioLM's semantic tokens are k-means clusters of an inner layer of w2v-BERT; HuBERT (Hsu et
al., 2021) trains the same kind of encoder by masked prediction of cluster targets: iteration 1
predicts k-means clusters of MFCC frames, iteration n those of a layer of iteration n - 1.

  out = model.apply(variables, audio, frame_mask, train)        # logits [b, frames, K], hidden
  h = model.apply(variables, audio, layer, method="features")  # [b, frames, embed_dim]

Front ends (`frontend`), both ending at one frame per `hop_samples` (320 at 16 kHz: 50 Hz):
  waveform  HuBERT / wav2vec 2.0's conv feature encoder on raw audio: convs of `conv_kernels`
            and `conv_strides` (paper: 10,3,3,3,3,2,2 and 5,2,2,2,2,2,2 = 320 samples, a
            400-sample receptive field), GELU, group norm after the first.
  mel       w2v-BERT's: 80 log-mel bands every `hop_samples // mel_subsampling` samples (25 ms
            windows), then a conv of kernel and stride `mel_subsampling` (its frames
            side by side), GELU, and a kernel-3 conv. Far cheaper on a CPU. With
            `mel_warp` w > 0, training warps each clip's bands by a random factor in
            [1 - w, 1 + w] (vocal tract length perturbation, `warp_mel`) while its targets
            come from the clip as it is: the encoder is pushed to a speaker-independent
            view of the input (ContentVec's argument).
Frame t describes audio[t * hop:(t + 1) * hop] (the front end's window is centred on it) and
there are ceil(samples / hop) frames: the convention of
`audiojax.eval.token_metrics.frame_phoneme_labels`, so tokens line up with phone labels.
(frontend_padding="none", below: frame t sees audio[t * hop:t * hop + receptive_field].)

Then LayerNorm, a projection to `embed_dim` and dropout; masked frames (training) are replaced
by a learned embedding; `num_layers` bidirectional pre-norm transformer layers
(`transformer.Block`, causal=False, T5 relative position bias with both directions); a final
norm. HuBERT's head: a projection to `final_dim`, cosine similarity with one learned embedding
per target cluster, divided by `logit_temperature` (0.1) -> logits [b, frames, num_targets].

Objectives (`objective`):
  hubert    masked prediction of k-means cluster targets (below) by the head above.
  w2v_bert  w2v-BERT (Chung et al., 2021): the first `contrastive_layers` layers are the
            contrastive module, the rest the masked-LM module. A quantizer of
            `quantizer_features` (a learned projection of the front-end features to
            `final_dim`, as in w2v-BERT, or the clip's fixed log-mel) and `quantizer`
            ("kmeans", one EMA k-means codebook of `num_targets` codes (`rvq.ResidualVQ` with
            one level, k-means initialised, dead codes restarted), or "gumbel", wav2vec 2.0's
            Gumbel-softmax quantizer (`gumbel_vq.GumbelVQ`: learned codes, temperature
            annealed, a diversity loss)) gives each frame a target vector and a code. The
            contrastive module's output (projected by `contrastive_head`) must pick its frame's
            target vector (projected by `target_projection`, wav2vec 2.0's project_q) among
            `num_negatives` others of the same clip (`losses.contrastive_loss`); the head on
            the last layer predicts the codes (masked LM); both at masked frames, and with
            `masked_loss_weight` < 1 also at unmasked ones. Both modules are trained jointly;
            `model.apply(..., mutable=["codebooks"], rngs={"quantizer": ...})`
            in training (`audiojax.train.tasks.w2v_bert_loss`).
  spin      SPIN (Chang et al., 2023: speaker-invariant clustering), meant to fine-tune an
            encoder trained by one of the above (`train.init_from`): each clip is encoded
            twice, unmasked, as it is and in another voice (`data.perturb_voice`: Praat's
            formant and pitch shifts, `audiojax.data.voice_perturbation`) and/or under two
            random frequency warps (`mel_warp`), and the head above (the cosine of the last
            layer's projection with `num_targets` learned prototypes, / `logit_temperature`)
            must predict, in each view, the other view's assignment of the frame to the
            prototypes, balanced over the batch's frames by Sinkhorn-Knopp
            (`sinkhorn_epsilon`; SwAV's swapped prediction, `audiojax.train.tasks.spin_loss`).
            What the views share is what the clusters keep: the phones, not the voice.

Targets of the hubert objective (`targets`): "mfcc" (iteration 1: the 39-D MFCCs of
`audiojax.eval.mfcc_tokens`) or "teacher" (iteration n: layer `teacher_layer` of a frozen
model of the same architecture). The k-means model of those features and the teacher's
params live in the non-parameter collection "targets" (filled from `target_kmeans` /
`teacher_workdir` when training starts, see `audiojax.train.tasks.hubert_load_targets`), so
the training step computes its targets from the audio itself, on the accelerator, and a
checkpoint holds everything it needs.

Padding: `audio_mask` [b, samples] (1 = real audio) hides padded frames from attention.

Pretrained Hugging Face HuBERT / wav2vec 2.0 encoders (`audiojax.models.hf_import` maps a
HubertModel / Wav2Vec2Model onto these fields; the defaults are the encoder above):
  position="conv"          wav2vec 2.0's positional embedding instead of the T5 bias: x +=
                           gelu(conv(x)), a conv over frames of kernel `conv_pos_kernel` (even:
                           its last output dropped) in `conv_pos_groups` groups, frames hidden
                           from attention zeroed first.
  norm_first=False         post-norm layers (BASE) after a layer norm of their input
                           ("encoder_norm"), no final norm; True: pre-norm, a final norm (LARGE).
  use_bias                 biases in the projection and in the layers' dense layers.
  conv_norm="layer"        a layer norm after every front-end conv, not a group norm after the
                           first ("group").
  frontend_padding="none"  the waveform is not padded: frame t sees audio[t * hop:t * hop +
                           receptive_field]. Still ceil(samples / hop) frames, but those whose
                           window runs past the real audio (the last one or two, and padding)
                           are hidden from attention, and the group norm's statistics cover the
                           real audio only: the real frames equal HF's on the unpadded clip.
  exact_gelu               erf GELU (torch's) instead of the tanh approximation.
  normalize_audio          each clip to zero mean and unit variance over its real samples (the
                           HF feature extractor's do_normalize).
  norm_epsilon             every norm's epsilon (torch's: 1e-5).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import librosa
import numpy as np

from audiojax.models import gumbel_vq, layers, rvq, transformer
from audiojax.models.wavenet import remat

OBJECTIVES = ("hubert", "w2v_bert", "spin")
QUANTIZERS = ("kmeans", "gumbel")
QUANTIZER_FEATURES = ("frontend", "mel")
FRONTENDS = ("waveform", "mel")
TARGETS = ("mfcc", "teacher")
POSITIONS = ("t5_bias", "conv")
CONV_NORMS = ("group", "layer")
FRONTEND_PADDINGS = ("centred", "none")


def num_frames(num_samples: int, hop_samples: int) -> int:
  """Frames of a clip: ceil(samples / hop)."""
  return -(-num_samples // hop_samples)


def frame_padding(audio_mask: jnp.ndarray, hop_samples: int) -> jnp.ndarray:
  """Frames whose first sample is real audio: bool [b, frames] of audio_mask [b, samples]."""
  return audio_mask[:, ::hop_samples] > 0


def normalize_audio(audio: jnp.ndarray, audio_mask: jnp.ndarray | None) -> jnp.ndarray:
  """Each clip of audio [b, samples] to zero mean and unit variance over its real samples
  (audio_mask [b, samples] > 0, default all), padding set to 0: wav2vec 2.0's
  `zero_mean_unit_var_norm`."""
  real = jnp.ones_like(audio) if audio_mask is None else (audio_mask > 0).astype(audio.dtype)
  return standardize(audio, real, -1, 1e-7) * real


def standardize(x: jnp.ndarray, real: jnp.ndarray, axis: int, epsilon: float) -> jnp.ndarray:
  """x to zero mean and unit variance along `axis`, the statistics taken where `real`
  (broadcastable to x) is 1."""
  count = jnp.maximum(real.sum(axis, keepdims=True), 1.0)
  mean = (x * real).sum(axis, keepdims=True) / count
  var = (jnp.square(x - mean) * real).sum(axis, keepdims=True) / count
  return (x - mean) * jax.lax.rsqrt(var + epsilon)


def _embed_norm(epsilon: float, dtype: Any, name: str) -> nn.LayerNorm:
  """LayerNorm of [..., embed_dim] features, params annotated with the "embed" axis."""
  return nn.LayerNorm(epsilon=epsilon, dtype=dtype, name=name,
                      scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))


def span_mask(rng: jax.Array, shape: tuple[int, int], mask_prob: float,
              mask_length: int) -> jnp.ndarray:
  """HuBERT / wav2vec 2.0 masking: each frame starts a span with probability `mask_prob`, and a
  span masks `mask_length` frames from its start (spans may overlap). bool [b, frames]; about
  1 - (1 - p) ** length of the frames are masked (57% for p = 0.08, length 10)."""
  starts = jax.random.bernoulli(rng, mask_prob, shape).astype(jnp.float32)
  padded = jnp.pad(starts, ((0, 0), (mask_length - 1, 0)))
  covered = sum(padded[:, j:j + shape[1]] for j in range(mask_length))
  return covered > 0


def warp_mel(features: jnp.ndarray, factors: jnp.ndarray, sample_rate_hz: int) -> jnp.ndarray:
  """Log-mel features [b, frames, M] of librosa's mel scale (0 Hz to Nyquist) -> the same with
  each clip's frequency axis scaled by its factor [b]: band m takes the value the input has at
  its centre frequency x factor (linear between bands, the edge bands beyond the range). A
  factor above 1 moves spectral peaks (formants, harmonics) down, as a longer vocal tract."""
  num_mels = features.shape[-1]
  centres = librosa.mel_frequencies(num_mels + 2, fmax=sample_rate_hz / 2)[1:-1]  # Hz [M]
  positions = jnp.interp(centres[None, :] * factors[:, None], centres,
                         jnp.arange(num_mels, dtype=jnp.float32))  # [b, M] fractional bands
  low = jnp.clip(jnp.floor(positions).astype(jnp.int32), 0, num_mels - 2)
  frac = (positions - low)[:, None, :]
  take = lambda i: jnp.take_along_axis(features, i[:, None, :], axis=-1)
  return take(low) * (1 - frac) + take(low + 1) * frac


class Model(nn.Module):
  """The encoder and HuBERT's prediction head (module docstring)."""
  sample_rate_hz: int = 16000
  frontend: str = "waveform"  # waveform | mel
  conv_channels: int = 512
  conv_kernels: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
  conv_strides: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
  num_mels: int = 80
  mel_subsampling: int = 2  # mel frames per encoder frame
  mel_warp: float = 0.0  # Training: frequency warp factors in [1 - w, 1 + w] (`warp_mel`).
  hop_samples: int = 320
  num_layers: int = 12
  embed_dim: int = 768
  num_heads: int = 12
  mlp_dim: int = 3072
  num_buckets: int = 32
  max_distance: int = 128
  # Hugging Face HuBERT / wav2vec 2.0 (module docstring); the defaults are this encoder.
  position: str = "t5_bias"  # t5_bias | conv
  conv_pos_kernel: int = 128
  conv_pos_groups: int = 16
  norm_first: bool = True
  use_bias: bool = False
  conv_norm: str = "group"  # group | layer
  frontend_padding: str = "centred"  # centred | none
  exact_gelu: bool = False
  normalize_audio: bool = False
  norm_epsilon: float = 1e-6
  dropout_rate: float = 0.1
  mask_prob: float = 0.08
  mask_length: int = 10
  masked_loss_weight: float = 1.0  # HuBERT's alpha: the loss's weight on masked frames.
  num_targets: int = 100  # hubert: k-means clusters of the targets; w2v_bert: codebook size.
  final_dim: int = 256
  objective: str = "hubert"  # hubert | w2v_bert | spin
  contrastive_layers: int = 4  # w2v_bert: layers of the contrastive module (the rest: MLM).
  num_negatives: int = 100  # w2v_bert: distractors per masked frame.
  contrastive_temperature: float = 0.1
  quantizer: str = "kmeans"  # w2v_bert's targets: kmeans (EMA codebook) | gumbel
  # w2v_bert: what the quantizer codes: "frontend" (a learned projection of the front end's
  # output, w2v-BERT's) or "mel" (the clip's log-mel at the frame rate, normalised per band:
  # fixed, so neither the commitment nor the contrastive loss can collapse what it codes;
  # `_quantizer_mel`).
  quantizer_features: str = "frontend"
  codebook_decay: float = 0.99  # w2v_bert kmeans: EMA of the codebook.
  gumbel_temperatures: tuple[float, float] = (2.0, 0.5)  # w2v_bert gumbel: tau start -> end,
  gumbel_anneal_steps: int = 100_000  # geometrically over this many training steps.
  diversity_weight: float = 0.1  # w2v_bert gumbel: weight of the diversity loss.
  logit_temperature: float = 0.1
  sinkhorn_epsilon: float = 0.0  # spin: entropy of the balanced assignments (SPIN's 0.02).
  targets: str = "mfcc"  # mfcc | teacher
  target_kmeans: str = ""  # .npz from `launch.fit_kmeans`, read when training starts.
  teacher_workdir: str = ""  # targets="teacher": the previous iteration's workdir.
  teacher_layer: int = 6
  dtype: Any = jnp.float32
  remat: str = "none"

  def __post_init__(self):
    for name, allowed in (("objective", OBJECTIVES), ("frontend", FRONTENDS),
                          ("targets", TARGETS), ("position", POSITIONS),
                          ("conv_norm", CONV_NORMS), ("frontend_padding", FRONTEND_PADDINGS),
                          ("quantizer", QUANTIZERS),
                          ("quantizer_features", QUANTIZER_FEATURES)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"{name}={getattr(self, name)!r}: use one of {', '.join(allowed)}")
    if self.objective == "w2v_bert" and not 0 < self.contrastive_layers < self.num_layers:
      raise ValueError(f"contrastive_layers={self.contrastive_layers}: w2v_bert needs 1 to "
                       f"num_layers - 1 = {self.num_layers - 1} (the rest is the MLM module)")
    if self.objective == "spin" and not self.sinkhorn_epsilon > 0:
      raise ValueError("spin needs sinkhorn_epsilon > 0 (SPIN's 0.02)")
    if self.mel_warp and (self.frontend != "mel" or not 0 <= self.mel_warp < 1):
      raise ValueError(f"mel_warp={self.mel_warp}: a fraction in [0, 1) of the mel front end")
    if self.frontend == "mel" and self.frontend_padding != "centred":
      raise ValueError("frontend_padding='none' needs the waveform front end")
    if self.position == "conv" and self.embed_dim % self.conv_pos_groups:
      raise ValueError(f"embed_dim={self.embed_dim} is not a multiple of "
                       f"conv_pos_groups={self.conv_pos_groups}")
    if self.frontend == "waveform" and int(np.prod(self.conv_strides)) != self.hop_samples:
      raise ValueError(f"conv_strides {self.conv_strides} multiply to "
                       f"{int(np.prod(self.conv_strides))}, not hop_samples={self.hop_samples}")
    if self.frontend == "mel" and self.hop_samples % self.mel_subsampling:
      raise ValueError(f"hop_samples={self.hop_samples} is not a multiple of "
                       f"mel_subsampling={self.mel_subsampling}")
    super().__post_init__()

  @property
  def frame_rate_hz(self) -> float:
    return self.sample_rate_hz / self.hop_samples

  @property
  def receptive_field(self) -> int:
    """Samples of audio one front-end frame sees (waveform: 400 for the paper's convs)."""
    if self.frontend == "mel":  # 3 frames of mel bands (the kernel-3 conv), their windows.
      mel_hop = self.hop_samples // self.mel_subsampling
      return 3 * self.hop_samples + self._mel_window - mel_hop
    field = 1
    for kernel, stride in zip(reversed(self.conv_kernels), reversed(self.conv_strides),
                              strict=True):
      field = (field - 1) * stride + kernel
    return field

  @property
  def _mel_window(self) -> int:
    return max(round(0.025 * self.sample_rate_hz), self.hop_samples // self.mel_subsampling)

  def valid_frames(self, audio_mask: jnp.ndarray) -> jnp.ndarray:
    """bool [b, frames] of audio_mask [b, samples] (1 = real audio): the frames that attention
    sees. centred: those whose first sample is real (`frame_padding`); none: those whose whole
    window is (HF's feature-vector attention mask)."""
    if self.frontend_padding == "centred":
      return frame_padding(audio_mask, self.hop_samples)
    samples = audio_mask.shape[1]
    last = (jnp.arange(num_frames(samples, self.hop_samples)) * self.hop_samples
            + self.receptive_field - 1)  # The last sample of each frame's window.
    return (last < samples) & (audio_mask[:, jnp.minimum(last, samples - 1)] > 0)

  def _gelu(self, x: jnp.ndarray) -> jnp.ndarray:
    return nn.gelu(x, approximate=not self.exact_gelu)

  def _frontend(self, audio: jnp.ndarray, audio_mask: jnp.ndarray | None,
                train: bool = False, warp: jnp.ndarray | None = None) -> jnp.ndarray:
    """audio [b, samples] -> front-end features [b, ceil(samples / hop), C]; with
    frontend_padding="none", [b, max(samples - receptive_field, 0) // hop + 1, C]. warp:
    [b] frequency-warp factors of the mel front end (default: random ones in training when
    `mel_warp`, else none)."""
    frames = num_frames(audio.shape[1], self.hop_samples)
    kernel_init = nn.with_logical_partitioning(nn.linear.default_kernel_init,
                                               ("conv_taps", None, None))
    if self.frontend == "mel":
      x = self._log_mel(audio)  # [b, ceil(samples / mel_hop), M]
      if warp is None and train and self.mel_warp:
        warp = jax.random.uniform(self.make_rng("dropout"), (x.shape[0],),
                                  minval=1 - self.mel_warp, maxval=1 + self.mel_warp)
      if warp is not None:
        x = warp_mel(x, warp, self.sample_rate_hz)
      x = jnp.pad(x, ((0, 0), (0, frames * self.mel_subsampling - x.shape[1]), (0, 0)))
      x = self._gelu(layers.Conv(self.conv_channels, self.mel_subsampling,
                                 self.mel_subsampling, dtype=self.dtype,
                                 kernel_init=kernel_init, name="conv_0")(x))
      x = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
      return self._gelu(layers.Conv(self.conv_channels, 3, dtype=self.dtype,
                                    kernel_init=kernel_init, name="conv_1")(x))
    field = self.receptive_field
    real = None  # bool [b, samples']: where the group norm takes its statistics (None: all).
    if self.frontend_padding == "centred":
      left = (field - self.hop_samples) // 2  # Centre frame t's window on its hop.
      x = jnp.pad(audio, ((0, 0), (left, (frames - 1) * self.hop_samples + field - left
                                   - audio.shape[1])))
    else:  # HF: no padding (but one window at least).
      pad = ((0, 0), (0, max(field - audio.shape[1], 0)))
      x = jnp.pad(audio, pad)
      real = None if audio_mask is None else jnp.pad(audio_mask, pad) > 0
    x = x[..., None]  # [b, samples', 1]
    for i, (kernel, stride) in enumerate(zip(self.conv_kernels, self.conv_strides,
                                             strict=True)):
      x = layers.Conv(self.conv_channels, kernel, stride, dtype=self.dtype,
                      kernel_init=kernel_init, name=f"conv_{i}")(x)
      if self.conv_norm == "layer":
        x = nn.LayerNorm(epsilon=self.norm_epsilon, dtype=self.dtype, name=f"conv_norm_{i}")(x)
      elif i == 0:  # wav2vec 2.0 base: one group per channel, first layer only.
        mask = None  # Statistics over the outputs whose window holds real audio only.
        if real is not None:
          mask = jnp.broadcast_to(real[:, kernel - 1::stride][:, :x.shape[1], None], x.shape)
        x = nn.GroupNorm(num_groups=self.conv_channels, epsilon=self.norm_epsilon,
                         dtype=self.dtype, name="conv_norm")(x, mask=mask)
      x = self._gelu(x)
    return x  # [b, frames, C]

  def _quantizer_mel(self, audio: jnp.ndarray, real: jnp.ndarray | None,
                     frames: int) -> jnp.ndarray:
    """audio [b, samples] (normalised as the encoder sees it), real: [b, frames] 1 on real
    frames -> the quantizer's fixed input [b, frames, mel_subsampling x num_mels]: log-mel at
    hop_samples / mel_subsampling, that many frames stacked per frame, each band normalised to
    mean 0 and variance 1 over the clip's real frames; no gradient."""
    s = self.mel_subsampling
    x = self._log_mel(audio)  # [b, ~frames * s, M]
    x = jnp.pad(x, ((0, 0), (0, max(frames * s - x.shape[1], 0)), (0, 0)))[:, :frames * s]
    x = x.reshape(x.shape[0], frames, s * self.num_mels).astype(jnp.float32)
    real = jnp.ones(x.shape[:2]) if real is None else real
    return jax.lax.stop_gradient(standardize(x, real[..., None], 1, 1e-5))

  def _log_mel(self, audio: jnp.ndarray) -> jnp.ndarray:
    """audio [b, samples] -> log-mel [b, ceil(samples / mel_hop), num_mels] at mel_hop =
    hop_samples / mel_subsampling (the mel front end's input)."""
    from audiojax.train import losses

    return losses.mel_features(audio, self.sample_rate_hz,
                               self.hop_samples // self.mel_subsampling, self.num_mels,
                               window=self._mel_window)

  @nn.compact
  def _encode(self, audio: jnp.ndarray, audio_mask: jnp.ndarray | None,
              frame_mask: jnp.ndarray | None, train: bool, num_layers: int, head: bool,
              warp: jnp.ndarray | None = None):
    """-> (hidden states of the first layer's input (0) and of layers 1..num_layers, each
    [b, T, D], the head's logits or None)."""
    audio = audio.astype(jnp.float32)
    if self.normalize_audio:
      audio = normalize_audio(audio, audio_mask)
    t = num_frames(audio.shape[1], self.hop_samples)
    x = self._frontend(audio, audio_mask, train, warp)[:, :t]
    x = jnp.pad(x, ((0, 0), (0, t - x.shape[1]), (0, 0)))  # frontend_padding="none"
    x = nn.LayerNorm(epsilon=self.norm_epsilon, dtype=self.dtype, name="frontend_norm")(x)
    frontend_features = x  # [b, T, C]: what w2v-BERT's quantizer sees (unmasked).
    x = transformer.Dense((self.embed_dim,), (None, "embed"), self.dtype,
                          use_bias=self.use_bias, name="projection")(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    embedding = self.param("mask_embedding", nn.with_logical_partitioning(
        nn.initializers.uniform(1.0), ("embed",)), (self.embed_dim,))
    if frame_mask is not None:
      x = jnp.where(frame_mask[..., None], embedding.astype(x.dtype), x)
    x = nn.with_logical_constraint(x, ("batch", "time", "embed"))

    valid = None  # bool [b, T]: the frames attention sees (None: all).
    if audio_mask is not None or self.frontend_padding == "none":
      valid = self.valid_frames(jnp.ones(audio.shape) if audio_mask is None else audio_mask)
    positions = jnp.arange(t, dtype=jnp.int32)
    bias = None
    if self.position == "t5_bias":
      buckets = transformer.relative_position_bucket(positions[:, None] - positions[None, :],
                                                     self.num_buckets, self.max_distance,
                                                     bidirectional=True)
      table = self.param("relative_bias", nn.with_logical_partitioning(
          nn.initializers.normal(0.1), (None, "heads")), (self.num_buckets, self.num_heads))
      bias = jnp.transpose(table[buckets], (2, 0, 1))[None].astype(self.dtype)  # [1, N, T, T]
    else:  # wav2vec 2.0's conv positional embedding.
      if valid is not None:
        x = jnp.where(valid[..., None], x, jnp.zeros((), x.dtype))
      k = self.conv_pos_kernel
      x = x + self._gelu(nn.Conv(
          self.embed_dim, (k,), padding=[(k // 2, (k - 1) // 2)],
          feature_group_count=self.conv_pos_groups, dtype=self.dtype,
          kernel_init=nn.with_logical_partitioning(nn.linear.default_kernel_init,
                                                   ("conv_taps", None, "embed")),
          bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
          name="position_conv")(x))
    if not self.norm_first:
      x = _embed_norm(self.norm_epsilon, self.dtype, "encoder_norm")(x)
    keys = None if valid is None else valid[:, None, None, :]  # [b, 1, 1, T]
    context = transformer.Context(positions=positions, bias=bias, mask=keys)

    block = remat(transformer.Block, self.remat)
    hidden = [x]
    for i in range(num_layers):
      x, _ = block(self.num_heads, self.embed_dim // self.num_heads, self.mlp_dim, "layer",
                   "gelu_exact" if self.exact_gelu else "gelu", self.position, 0.0,
                   self.dropout_rate, 0.0, not train, None, self.dtype, False, self.use_bias,
                   self.norm_first, self.norm_epsilon, name=f"layer_{i}")(x, None, context)
      hidden.append(x)
    if not head:
      return hidden, None
    extra = {}
    if self.objective == "w2v_bert":
      real = None if valid is None else valid.astype(jnp.float32)
      if self.quantizer_features == "mel":
        z = self._quantizer_mel(audio, real, t)
      else:
        z = transformer.Dense((self.final_dim,), (None, None), self.dtype,
                              name="quantizer_input")(frontend_features)
      if self.quantizer == "gumbel":
        quantized, codes, aux = gumbel_vq.GumbelVQ(
            self.num_targets, z.shape[-1], tuple(self.gumbel_temperatures),
            self.gumbel_anneal_steps, name="quantizer")(z, train=train, mask=real)
        quantizer_losses = {"commitment_loss": jnp.zeros(()),
                            "diversity_loss": aux["diversity_loss"]}
      else:
        quantized, codes, aux = rvq.ResidualVQ(
            1, self.num_targets, z.shape[-1], decay=self.codebook_decay,
            dead_code_threshold=2.0,  # The measured recipe's rule (3 vectors per code here).
            quantizer_dropout=False, name="quantizer")(z, train=train, mask=real)
        codes, aux["perplexity"] = codes[..., 0], aux["perplexity"][0]
        quantizer_losses = {"commitment_loss": aux["commitment_loss"],
                            "diversity_loss": jnp.zeros(())}
      context = transformer.Dense((self.final_dim,), ("embed", None), self.dtype,
                                  name="contrastive_head")(hidden[self.contrastive_layers])
      # wav2vec 2.0's project_q: the contrastive loss compares the context with a learned
      # projection of the quantized vectors, which can drop what all codes share (k-means
      # centroids of the projected features, or Gumbel codes drawn in [0, 1), share one
      # direction: cosine 0.75-1.0 between any two codes, too close for the softmax to tell).
      targets = transformer.Dense((self.final_dim,), (None, None), jnp.float32,
                                  name="target_projection")(quantized)
      extra = {"context": context.astype(jnp.float32), "quantized": quantized,
               "targets": targets,
               "codes": codes, "perplexity": aux["perplexity"], **quantizer_losses}
    if self.norm_first:  # Post-norm layers end normalised.
      x = nn.LayerNorm(epsilon=self.norm_epsilon, dtype=self.dtype, name="final_norm")(x)
      hidden[-1] = x
    x = transformer.Dense((self.final_dim,), ("embed", None), self.dtype, name="head")(x)
    labels = self.param("label_embeddings", nn.with_logical_partitioning(
        nn.initializers.normal(1.0), ("classes", None)), (self.num_targets, self.final_dim))
    normalize = lambda v: v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-6)
    cosine = jnp.einsum("btd,kd->btk", normalize(x.astype(jnp.float32)),
                        normalize(labels.astype(jnp.float32)))
    return hidden, {"logits": cosine / self.logit_temperature, **extra}

  def __call__(self, audio: jnp.ndarray, audio_mask: jnp.ndarray | None = None,
               frame_mask: jnp.ndarray | None = None, train: bool = False,
               warp: jnp.ndarray | None = None) -> dict:
    """audio: float [b, samples] (frame_mask: bool [b, frames], True = masked) ->
    {"logits": float32 [b, frames, num_targets], "hidden": [b, frames, D] per layer 0..L (0:
    the first layer's input), the last one after the final norm (norm_first)}; w2v_bert adds
    "context" [b, frames, final_dim] (the contrastive module's projected output), "quantized"
    [b, frames, final_dim] (the codes' vectors, straight-through), "targets" (their learned
    projection, what the context is contrasted with), "codes" int32 [b, frames],
    "commitment_loss" [] (kmeans), "diversity_loss" [] (gumbel; the other one 0) and the
    codebook's "perplexity" []. warp: [b] frequency-warp factors of the mel front end's input
    (`warp_mel`; the spin objective's views), in training and eval alike."""
    hidden, out = self._encode(audio, audio_mask, frame_mask, train, self.num_layers, True,
                               warp)
    return {**out, "hidden": hidden}

  def features(self, audio: jnp.ndarray, layer: int,
               audio_mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """Hidden state after transformer layer `layer` (1..num_layers; 0: the first layer's input,
    the projection of the front end after the positional embedding and encoder_norm if any),
    no masking, no dropout: [b, frames, embed_dim]. Layers above it are not run (the final
    norm is not applied: the last layer's output is taken before it)."""
    if not 0 <= layer <= self.num_layers:
      raise ValueError(f"layer {layer} is not in 0..{self.num_layers}")
    return self._encode(audio, audio_mask, None, False, layer, False)[0][-1]
