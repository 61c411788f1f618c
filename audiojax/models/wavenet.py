"""WaveNet (van den Oord et al., 2016) and its incremental decoder.

Parallel (training) path: `Model.__call__` maps inputs `[batch, time]` to next-sample outputs
`[batch, time, num_outputs]` with causal dilated convolutions.

Output distribution (`Model.output`):
  softmax  the paper's `num_classes`-way softmax over mu-law classes. Inputs are the int32
           mu-law classes of the previous samples, embedded; outputs are the class logits.
  mol      a discretized mixture of `num_mixtures` logistics over 2^16 linear bins on [-1, 1]
           (PixelCNN++, Parallel WaveNet; `mixture_log_prob`). Outputs are 3K params per step:
           component logits | means | log scales (clamped below at `log_scale_min`). Inputs are
           the previous samples' float amplitudes on the 16-bit grid, through a 1x1 conv (a
           Dense of the scalar). Not the mu-law class embedding: that would show the network
           an 8-bit view of the past while it must place the next sample on a 16-bit grid, and
           the low bits a waveform's past predicts (x_t ~ 2 x_{t-1} - x_{t-2} for smooth
           signals) would be lost: a mu-law class spans ~6 16-bit bins near 0 and ~1400 near
           full scale. The price is a first layer linear in the amplitude; the gated units
           make it nonlinear from there on.

Comparing bits per sample: each model's `bits_per_sample` (audiojax.train.tasks) is the NLL it
optimises, per 8-bit mu-law class (softmax) or per 16-bit bin (mol). The two are not comparable,
and not by a constant ("16-bit bits minus 8" would assume 256 equal bins per class, while a
class holds 6 to ~1400 bins). Both models therefore also report `mu_law_bits_per_sample`:
-log2 P(the mu-law class of the next sample), the same discrete event for both: for softmax it
is `bits_per_sample`; for mol it is the mixture's exact mass between the class's edges (its CDF
at the edges, `audio.mu_law_bins`).

Local conditioning (`condition_channels > 0`, as in the paper: W_f*x + V_f*y in both gates):
features `condition: [batch, frames, C]`, one frame per `condition_hop` samples, are upsampled
to the sample rate by repetition or by a stack of causal transposed convs (`condition_strides`,
product = hop; `layers.FrameUpsample`: kernel 2 x stride, output frame j mixes input frames j - 1
and j; linear, like an interpolation), then each layer adds its own 1x1 (no bias) of them to the
gates. With `condition_layers` = K > 0 a frame network comes first (WaveRNN's and LPCNet's
conditioning network): K non-causal convs over frames (kernel `condition_kernel`, width
`condition_width`, tanh; the first maps the C features to the width, the rest add to it), whose
output is appended to the features (the layers' 1x1s see [C + width] per frame): features of
each frame in its context (+-K frames at kernel 3) and not only linear in the log-mel.
Repeated frames are projected once per frame and the projections repeated (`FrameRows`,
`ConditionProjection`): the same terms as projecting every row, hop times fewer multiplies.
Alignment: the output at position t uses upsampled row n = t + condition_offset, so it
sees frame floor(n / hop) and (transposed) earlier frames, never a later one (the frame
network's K frames of lookahead excepted). A frame looks ahead within itself: sample n sees
the features of all its frame's hop samples (and log-mel windows reach further), which is
fine for a vocoder, whose features are given. The samplers draw sample n at position n
(offset 0); training predicts audio[:, t + 1] at position t (offset 1) with features
aligned to the audio (frame k <-> audio[:, k*hop:(k+1)*hop]).
With `excitation_channels` E > 0, each frame also carries hop x E features at the sample rate
(the pitch-synchronous excitation of `audiojax.data.pitch`), packed sample-major after its
`condition_channels`: the upsampler passes them through unchanged, so sample n's gates see
its own E values next to the upsampled frame features.

Pitch-lag input (`period_input`, after the long-term predictor of CELP codecs and the
pitch-dependent dilations of Quasi-Periodic WaveNet, Wu et al. 2019): with the excitation's
period channel (`audiojax.data.pitch`: E = 5), the step that draws sample n also embeds the
sample one period P(n) back, n - P(n) (and with `period_taps` = 2h + 1 the samples n - P + d,
|d| <= h, around it: a period is seldom a whole number of samples), each tap with its own
embedding added to the input's (its class num_classes, "none", where unvoiced or not yet
drawn). A model that leans on them continues its own last period, so what it draws stays
periodic: voiced.

Linear prediction from the features (`lpc_order` = P, with log-mel conditioning; LPCNet,
Valin and Skoglund 2019, which feeds its sample-rate network the prediction p_n = sum_k a_k
s_(n-k) of an all-pole filter computed from its own frame features): each frame's predictor
is fitted to the power spectrum its log-mel bands describe (`lpc_coefficients`:
autocorrelation, Levinson-Durbin), and the step that draws sample n embeds p_n, from the last
P inputs' amplitudes, as a class (its own table) plus a 1x1 of its amplitude. The spectral
envelope is then given rather than learned: what is left to the network is the excitation
(on the built-in corpus the predictor alone takes 16-22 dB out of the signal's power).
With `lpc_excitation`, as in LPCNet, the softmax is over the excitation rather than the sample:
the mu-law class of e_n = s_n - p_n (`excitation_classes`), and the samplers add the drawn
excitation back to the prediction (`sample_classes`): the network then models the residual's
pulses and noise, with mu-law's fine steps around 0, instead of shifting a distribution over
the sample by p_n. Its bits per sample are the excitation's (not comparable with the others).
Amplitude input (`amplitude_input`): each input class's embedding plus a 1x1 of its
amplitude and companded value, so the embeddings start linear in the amplitude.

Global conditioning: a speaker id (`num_speakers > 0`: a learned vector per speaker and
layer, the paper's V^T h for a one-hot h) or, for voice cloning (`speaker_embedding_dim > 0`),
a speaker vector computed from reference audio of the speaker: `speaker_encoder.SpeakerEncoder`
maps the reference's log-mel [batch, frames, M] to a unit-norm vector [batch, E], trained
jointly with the WaveNet on references from other utterances of the same speaker (or trained
alone and frozen: `audiojax/models/speaker_encoder.py`), and each layer adds its own 1x1 (no
bias) of it to the gates. Such a model takes as `speaker` the reference log-mel
(3-D) or an already computed vector (2-D: `speaker_vectors`), so an unseen voice is cloned
from a few seconds of it.

Context stack (`context_hop` > 0; the paper's section 2.6): a separate, smaller network over
the past audio at a lower rate widens what the WaveNet hears from its ~0.1 s to seconds (music
needs it: papers.md). Every `context_hop` samples a frame: the log power spectrum of the last
`context_window` inputs' amplitudes (Hann window; `frame_spectra`), phase-free, so a held
note looks the same frame after frame. The frames go through a Dense (tanh) and
`context_layers` = K valid dilated causal convs over frames (kernel 2, dilations 1 ..
2^(K-1), tanh, residual: `ContextStack`), R = 2^K frames per output; each layer adds its own
1x1 (no bias, initialised to zero: training starts from the plain WaveNet) of the output to its
gates, like local conditioning. The step that consumes input t sees the output over the R
frames ending with frame t // hop - 1, the last complete one before its own (frames before the
audio are silence, so frame 0's steps see the stack's output for R frames of silence):
nothing of frame t // hop's own inputs, hence causal. In training (`context_crop` > 0) the
stack runs over the whole window and the WaveNet over its last `context_crop` positions only
(the paper's "cropped at the end"): seconds of context for the cost of a short crop. The
incremental decoder keeps the last (R - 1) hop + window inputs' amplitudes and reruns the
stack over them once per frame (`DecodeState.context_inputs`).

Incremental (sampling) path, after Fast WaveNet (Paine et al., 2016): every layer keeps a queue of
its last `(kernel_size - 1) * dilation` inputs, so one new sample costs O(layers), not
O(receptive field). It reads the same params tree as `Model.__call__`:

  weights = decode_weights(model, params)                  # fused once, outside the loop
  state = init_decode_state(model, weights, batch_size, speaker)
  rows = sampler_condition(model, params, weights, condition)  # once, before the loop
  terms = condition_terms(model, weights, rows.rows.transpose(1, 0, 2),  # StepCondition
                          rows.frame_terms)
  state, outputs_t = decode_step(model, weights, state, inputs_t, terms[t])

`inputs_t`: int32 classes [batch] (softmax) or float amplitudes [batch] (mol). The local
conditioning enters a step as its precomputed gate term [L, batch, G] (and, with
`period_input`, its period [batch]: the state then also keeps the last `history_size` inputs);
the sampler computes the terms a chunk of steps at a time (`audiojax.sample.wavenet`): one
matmul per chunk instead of a small one in every step, without the whole clip's
[time, L, batch, G].

Params tree (`nn.meta.unbox(model.init(...)["params"])`; `init` returns each leaf in a
`nn.LogicallyPartitioned` box naming its axes for `audiojax.train.sharding`), L layers,
R/G/S/H = residual/gate/skip/head channels, C = condition channels, O = num_outputs:
  embed/embedding                  [num_classes, R]   (softmax: == 1x1 conv of the one-hot input)
  embed/kernel [1, R], bias [R]    (mol: 1x1 conv of the amplitude)
  embed_amplitude/kernel           [2, R]             (only with amplitude_input)
  period_embed/embedding           [(num_classes + 1) period_taps, R]  (only with period_input)
  period_amplitude                 [period_taps, 2, R]  (period_input and amplitude_input)
  lpc_embed/embedding [num_classes, R], lpc_amplitude/kernel [2, R]  (only with lpc_order)
  lpc_period_embed [(num_classes + 1) period_taps, R], lpc_period_amplitude [period_taps, 2, R]
                                   (only with lpc_period)
  excitation_embed/embedding [num_classes, R]  (only with excitation_input)
  condition_upsampler/frame_conv_{k}/kernel [condition_kernel, C or W, W], bias [W]
                                   (only with condition_layers; W = condition_width)
  condition_upsampler/stride_{i}/kernel [2 s_i, C', C'], bias [C']  (transposed upsampling only;
                                   C' = C, or C + W with condition_layers)
  layer_{l}/dilated_conv/kernel    [kernel_size, R, G], bias [G]
  layer_{l}/speaker/embedding      [num_speakers, G]  (only when num_speakers > 0)
  layer_{l}/speaker_vector/kernel  [E, G]             (only when speaker_embedding_dim > 0)
  speaker_encoder/conv_{i}/kernel [3, M or F, F], bias [F]; speaker_encoder/project/kernel
                                   [F, E], bias [E]   (only when speaker_embedding_dim > 0)
  speaker_classifier/kernel [E, K], bias [K]          (only with speaker_classes K > 0)
  layer_{l}/condition/kernel       [C', G]            (only when condition_channels > 0)
  context_stack/embed/kernel [window / 2 + 1, W], bias [W]; context_stack/conv_{k}/kernel
                                   [2, W, W], bias [W]; layer_{l}/context/kernel [W, G]
                                   (only with context_hop; W = context_width)
  layer_{l}/output/kernel          [G // 2, R + S], bias [R + S]  (residual | skip 1x1s)
  head_hidden/kernel [S, H], head_logits/kernel [H, O], with biases.
"""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from audiojax import audio
from audiojax.data import pitch
from audiojax.models import discriminators, layers, speaker_encoder
from audiojax.train import losses

OUTPUTS = ("softmax", "mol")
MOL_LEVELS = 2**16  # The mixture's bins: linear on [-1, 1] (`audio.linear_bins`).
_init, _constrain = layers.logical_init, layers.constrain  # Sharding names (module docstring).


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
  """Number of input samples one output depends on: (kernel_size - 1) * sum(dilations) + 1."""
  return (kernel_size - 1) * sum(dilations) + 1


def _check_speaker(model: "Model", speaker: jnp.ndarray | None) -> jnp.ndarray | None:
  """The speaker ids (or reference features / vectors) a globally conditioned model needs;
  None for an unconditional model."""
  if model.speaker_classes and not model.speaker_embedding_dim:
    raise ValueError(f"speaker_classes={model.speaker_classes} names speakers from speaker "
                     "vectors: set speaker_embedding_dim > 0 too (a voice-cloning model)")
  if model.speaker_embedding_dim:
    if speaker is None or speaker.ndim not in (2, 3):
      raise ValueError("model has speaker_embedding_dim > 0: pass reference log-mel features "
                       "[batch, frames, M] or speaker vectors [batch, E]")
    return speaker
  if not model.num_speakers:
    return None
  if speaker is None:
    raise ValueError(f"model has num_speakers={model.num_speakers}: pass speaker ids")
  return speaker


def _check_period_input(model: "Model") -> None:
  if model.period_input and model.period_taps % 2 != 1:
    raise ValueError(f"period_taps={model.period_taps}: use an odd number (taps centred on the "
                     "sample one period back)")
  if model.amplitude_input and model.output != "softmax":
    raise ValueError("amplitude_input adds amplitudes to mu-law class embeddings: "
                     "output='softmax' only (mol takes amplitudes already)")
  if model.period_input and (model.output != "softmax" or
                             model.excitation_channels <= pitch.PERIOD_CHANNEL):
    raise ValueError("period_input needs output='softmax' and the excitation's period channel "
                     f"(excitation_channels={pitch.EXCITATION_CHANNELS}); got output="
                     f"{model.output!r}, excitation_channels={model.excitation_channels}")


def amplitude_features(model: "Model", amplitude: jnp.ndarray) -> jnp.ndarray:
  """Amplitudes [...] (clipped to [-1, 1]) -> float32 [..., 2]: each and its mu-law companded
  value, what `amplitude_input` and `lpc_order` show the network of a sample."""
  amplitude = jnp.clip(amplitude.astype(jnp.float32), -1.0, 1.0)
  return jnp.stack([amplitude, audio.mu_law_compress(amplitude, model.num_classes - 1)], -1)


def class_features(model: "Model", classes: jnp.ndarray) -> jnp.ndarray:
  """int32 mu-law classes [...] -> float32 [..., 2]: `amplitude_features` of each class's
  amplitude (its bin centre), what `amplitude_input` adds to a class's embedding."""
  return amplitude_features(model, audio.mu_law_decode(classes, model.num_classes - 1))


def _tap_features(model: "Model", ids: jnp.ndarray) -> jnp.ndarray:
  """`period_embed` rows [..., taps] (`_tap_ids`) -> their classes' `class_features` [..., taps,
  2], zeros for a tap's "none"."""
  classes = ids - (model.num_classes + 1) * jnp.arange(model.period_taps)
  none = (classes == model.num_classes)[..., None]
  return jnp.where(none, 0.0, class_features(model, jnp.minimum(classes, model.num_classes - 1)))


def _check_lpc(model: "Model") -> None:
  if model.lpc_period and not (model.lpc_order and model.period_input):
    raise ValueError("lpc_period needs lpc_order > 0 and period_input")
  for field in ("excitation_input", "lpc_excitation"):
    if getattr(model, field) and not model.lpc_order:
      raise ValueError(f"{field} needs lpc_order > 0: the excitation is what the linear "
                       "prediction leaves")
  if model.lpc_order and (model.output != "softmax" or model.condition_source != "mel"
                          or not model.condition_channels):
    raise ValueError("lpc_order needs output='softmax' and log-mel conditioning "
                     f"(condition_source='mel', condition_channels > 0); got output="
                     f"{model.output!r}, condition_source={model.condition_source!r}, "
                     f"condition_channels={model.condition_channels}")


def _check_condition(model: "Model", condition: jnp.ndarray | None) -> jnp.ndarray | None:
  """The features a locally conditioned model needs; None for a model without them."""
  if not model.condition_channels:
    return None
  if condition is None:
    raise ValueError(f"model has condition_channels={model.condition_channels}: pass condition")
  return condition


def gated_unit(gates: jnp.ndarray) -> jnp.ndarray:
  """tanh(filter) * sigmoid(gate) for `gates: [..., 2C]` = [filter | gate] -> [..., C]."""
  filter_, gate = jnp.split(gates, 2, axis=-1)
  return jnp.tanh(filter_) * nn.sigmoid(gate)


class CausalConv(nn.Module):
  """Dilated causal conv as one matmul over the stacked taps (same params as `nn.Conv`).

  out[t] = sum_j x[t - (kernel_size - 1 - j) * dilation] @ kernel[j] + bias, zeros before t = 0.
  One [b*t, k*C] x [k*C, F] matmul runs on the matrix units in any dtype. On an H200 it trains
  the paper model 10x faster in float32 and 14x in bfloat16 than `nn.Conv`'s dilated conv
  (benchmarks/RESULTS.md).
  """
  features: int
  kernel_size: int
  dilation: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: [batch, time, C] -> [batch, time, features]."""
    kernel = self.param("kernel", _init(("conv_taps", "embed", "mlp")),
                        (self.kernel_size, x.shape[-1], self.features))  # [k, C, F]
    bias = self.param("bias", _init(("mlp",), nn.initializers.zeros), (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    x = jnp.pad(x, ((0, 0), ((self.kernel_size - 1) * self.dilation, 0), (0, 0)))
    return layers.conv_taps(x, kernel, dilation=self.dilation) + bias


class ContextStack(nn.Module):
  """Frame spectra [b, f + R - 1, bins] -> [b, f, width], R = 2^layers: output i sees frames
  i .. i + R - 1 (module docstring, context stack)."""
  layers: int
  width: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, frames: jnp.ndarray) -> jnp.ndarray:
    h = jnp.tanh(nn.Dense(self.width, dtype=self.dtype, name="embed",
                          kernel_init=_init((None, "mlp")),
                          bias_init=_init(("mlp",), nn.initializers.zeros))(
                              frames.astype(self.dtype)))
    for k in range(self.layers):
      dilation = 2**k
      y = nn.Conv(self.width, (2,), kernel_dilation=(dilation,), padding="VALID",
                  dtype=self.dtype, name=f"conv_{k}",
                  kernel_init=_init(("conv_taps", None, None)),
                  bias_init=_init((None,), nn.initializers.zeros))(h)
      h = h[:, dilation:] + jnp.tanh(y)  # [b, f_k - dilation, W]
    return h


def context_frames(model: "Model") -> int:
  """R: frames the context stack's output depends on (2^context_layers)."""
  return 2**model.context_layers


def input_amplitudes(model: "Model", inputs: jnp.ndarray) -> jnp.ndarray:
  """Inputs [...] (classes or amplitudes) -> float32 amplitudes [...]: what the context stack
  reads."""
  if model.output == "mol":
    return inputs.astype(jnp.float32)
  return audio.mu_law_decode(inputs, model.num_classes - 1)


def context_span(model: "Model") -> int:
  """Inputs one context output reads: R frames of hop, the first reaching a window back."""
  return (context_frames(model) - 1) * model.context_hop + model.context_window


def frame_spectra(model: "Model", amplitudes: jnp.ndarray) -> jnp.ndarray:
  """Log power spectra [b, frames, window / 2 + 1] of the windows amplitudes[:, k hop : k hop +
  window] that fit in amplitudes [b, n] (Hann: `discriminators.complex_stft`), ~[-1, 1]."""
  stft = discriminators.complex_stft(amplitudes, model.context_window, model.context_hop)
  return 0.1 * jnp.log(jnp.sum(stft**2, axis=-1) + 1e-5)


def _context_stack(model: "Model", **kwargs) -> ContextStack:
  return ContextStack(model.context_layers, model.context_width, model.dtype, **kwargs)


class ResidualLayer(nn.Module):
  """Dilated causal conv -> gated unit -> 1x1 to the residual and to the skip path."""
  residual_channels: int
  gate_channels: int
  skip_channels: int
  kernel_size: int
  dilation: int
  num_speakers: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, speaker: jnp.ndarray | None = None,
               condition: jnp.ndarray | None = None, context: "FrameRows | None" = None):
    """x: [batch, time, R], speaker: int32 [batch] or vectors [batch, E], condition: upsampled
    features [b, t, C] or `FrameRows`, context: the context stack's `FrameRows` ->
    (x + residual [b, t, R], skip [b, t, S])."""
    gates = CausalConv(self.gate_channels, self.kernel_size, self.dilation, self.dtype,
                       name="dilated_conv")(x)  # [b, t, G]
    if speaker is not None and speaker.ndim == 2:  # V^T h for a speaker vector h.
      gates += nn.Dense(self.gate_channels, use_bias=False, dtype=self.dtype,
                        name="speaker_vector", kernel_init=_init((None, "mlp")))(speaker)[:, None]
    elif speaker is not None:  # V_f^T h and V_g^T h for a one-hot speaker h.
      gates += nn.Embed(self.num_speakers, self.gate_channels, dtype=self.dtype, name="speaker",
                        embedding_init=_init((None, "mlp"), nn.linear.default_embed_init)
                        )(speaker)[:, None, :]
    if condition is not None:  # V_f * y and V_g * y for time-aligned features y.
      gates += ConditionProjection(self.gate_channels, self.dtype, name="condition")(
          condition, x.shape[1])
    if context is not None:  # The context stack's output, per frame (module docstring).
      gates += ConditionProjection(self.gate_channels, self.dtype, zero_init=True,
                                   name="context")(context, x.shape[1])
    z = gated_unit(gates)  # [b, t, G // 2]
    out = nn.Dense(self.residual_channels + self.skip_channels, dtype=self.dtype,
                   name="output", kernel_init=_init(("mlp", "embed")),
                   bias_init=_init(("embed",), nn.initializers.zeros))(z)
    residual, skip = jnp.split(out, [self.residual_channels], axis=-1)
    return _constrain(x + residual, ("batch", "time", None)), skip


class FrameRows(struct.PyTreeNode):
  """Repeat-upsampled features kept at the frame rate: row n is [frames[:, (n + offset) //
  hop], samples[:, n]] (the same rows as `condition_window` of the repeated frames)."""
  frames: jnp.ndarray  # [b, f, C']
  samples: jnp.ndarray | None  # [b, t, E]: sample-rate features, already windowed; or None.
  hop: int = struct.field(pytree_node=False)
  offset: int | jnp.ndarray = 0

  def window(self, time: int) -> "FrameRows":
    """The rows of positions 0 .. time - 1 (`condition_window`)."""
    samples = None
    if self.samples is not None:
      samples = condition_window(self.samples, self.offset, time)
    return FrameRows(self.frames, samples, self.hop, self.offset)


class ConditionProjection(nn.Module):
  """A layer's 1x1 (no bias) of its features, `kernel` [C', G]: of upsampled rows [b, t, C'],
  or of `FrameRows` (the frame part projected per frame, then repeated: hop times fewer
  multiplies)."""
  features: int
  dtype: Any = jnp.float32
  zero_init: bool = False  # The kernel starts at zero (the context stack's).

  @nn.compact
  def __call__(self, condition: "jnp.ndarray | FrameRows", time: int) -> jnp.ndarray:
    """-> [b, time, features]."""
    init = _init((None, "mlp"), nn.initializers.zeros if self.zero_init else
                 nn.linear.default_kernel_init)
    if not isinstance(condition, FrameRows):
      kernel = self.param("kernel", init, (condition.shape[-1], self.features))
      return condition.astype(self.dtype) @ kernel.astype(self.dtype)
    frame_channels = condition.frames.shape[-1]
    sample_channels = 0 if condition.samples is None else condition.samples.shape[-1]
    kernel = self.param("kernel", init,
                        (frame_channels + sample_channels, self.features)).astype(self.dtype)
    terms = jnp.repeat(condition.frames.astype(self.dtype) @ kernel[:frame_channels],
                       condition.hop, axis=1)  # [b, f hop, G]
    terms = condition_window(terms, condition.offset, time)
    if condition.samples is not None:
      terms += condition.samples.astype(self.dtype) @ kernel[frame_channels:]
    return terms


class ConditionUpsampler(nn.Module):
  """Frame-rate features [b, frames, C] -> sample rate [b, frames * hop, C] (module docstring).

  mode "repeat": row n is frame n // hop. "transposed": causal transposed convs with `strides`
  (default: one of `hop`), each `layers.FrameUpsample` (kernel 2 s) with a zero frame before
  the first; row n then depends on frame n // hop and earlier frames only. With
  `frame_layers` > 0 the frame network comes first (module docstring): C -> C + frame_width.
  """
  mode: str
  hop: int
  strides: tuple[int, ...] = ()
  sample_channels: int = 0  # E: each frame ends in hop x E sample-rate features, not upsampled.
  frame_layers: int = 0  # The frame network: convs over frames before upsampling.
  frame_width: int = 128
  frame_kernel: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, condition: jnp.ndarray, repeat_frames: bool = True):
    """condition [b, f, C (+ hop E)] -> upsampled rows [b, f hop, C' (+ E)]; or, repeat mode
    with `repeat_frames=False`, `FrameRows` (the frames before repeating, the samples as rows)."""
    x = condition.astype(self.dtype)
    samples = None
    if self.sample_channels:  # [b, f, C + hop E] -> frame part [b, f, C], samples [b, f hop, E]
      split = x.shape[-1] - self.hop * self.sample_channels
      x, samples = x[..., :split], x[..., split:]
      samples = samples.reshape(x.shape[0], x.shape[1] * self.hop, self.sample_channels)
    x = self._frame_network(x)
    if not repeat_frames and self.mode == "repeat":
      return FrameRows(x, samples, self.hop)
    x = self._upsample(x)
    return x if samples is None else jnp.concatenate([x, samples], axis=-1)

  def _frame_network(self, x: jnp.ndarray) -> jnp.ndarray:
    """Frames [b, f, C] -> [b, f, C + frame_width]: x and its frame network's features."""
    if not self.frame_layers:
      return x
    h = None
    for k in range(self.frame_layers):
      y = jnp.tanh(nn.Conv(self.frame_width, (self.frame_kernel,), padding="SAME", dtype=self.dtype,
                           name=f"frame_conv_{k}",
                           kernel_init=_init(("conv_taps", None, None)),
                           bias_init=_init((None,), nn.initializers.zeros))(
                               x if h is None else h))
      h = y if h is None else h + y  # [b, f, W]
    return jnp.concatenate([x, h], axis=-1)

  def _upsample(self, x: jnp.ndarray) -> jnp.ndarray:
    if self.mode == "repeat":
      return jnp.repeat(x, self.hop, axis=1)
    if self.mode != "transposed":
      raise ValueError(f"condition_upsample={self.mode!r}: use repeat or transposed")
    strides = tuple(self.strides) or (self.hop,)
    if math.prod(strides) != self.hop:
      raise ValueError(f"condition_strides {strides} multiply to {math.prod(strides)}, "
                       f"not condition_hop={self.hop}")
    for i, stride in enumerate(strides):
      x = layers.FrameUpsample(
          x.shape[-1], stride, self.dtype, name=f"stride_{i}",
          kernel_init=_init(("conv_taps", None, None)),
          bias_init=_init((None,), nn.initializers.zeros))(
          x, jnp.zeros_like(x[:, :1]))
    return x


def condition_window(upsampled: jnp.ndarray, offset: int | jnp.ndarray,
                     time: int) -> jnp.ndarray:
  """Rows offset .. offset + time - 1 of upsampled features [b, n, C] (zeros past the end).

  offset may be traced (the naive sampler's window start); a static one is checked.
  """
  if isinstance(offset, int) and offset + time > upsampled.shape[1]:
    raise ValueError(f"condition covers {upsampled.shape[1]} samples; positions need "
                     f"{offset} + {time}")
  padded = jnp.pad(upsampled, ((0, 0), (0, time), (0, 0)))
  return jax.lax.dynamic_slice_in_dim(padded, offset, time, axis=1)


def history_size(model: "Model") -> int:
  """Past inputs the decoder keeps (a power of 2), 0 when none: for `period_input`, more than
  the longest voiced period (`pitch.period_scale`; a longer period is treated as unvoiced, by
  both paths); for `lpc_order`, the predictor's taps."""
  reach = max(pitch.period_scale(model.sample_rate_hz) + 2 if model.period_input else 0,
              model.lpc_order)
  return 1 << math.ceil(math.log2(reach)) if reach else 0


LPC_NOISE_FLOOR = 1e-4  # White-noise correction of the autocorrelation (-40 dB): a stable fit.


def levinson(autocorrelation: jnp.ndarray, order: int) -> jnp.ndarray:
  """Autocorrelation [..., >= order + 1] -> predictor coefficients a [..., order] minimising
  E(x[n] - sum_k a[k - 1] x[n - k])^2 (Levinson-Durbin; r[0] > 0 assumed)."""
  r = autocorrelation.astype(jnp.float32)
  a = jnp.zeros(r.shape[:-1] + (order,), jnp.float32)
  error = r[..., 0]
  for i in range(order):
    acc = r[..., i + 1] - jnp.sum(a[..., :i] * r[..., i:0:-1], axis=-1)
    k = acc / error
    a = a.at[..., :i].add(-k[..., None] * a[..., i - 1::-1][..., :i]) if i else a
    a = a.at[..., i].set(k)
    error = error * (1.0 - k * k)
  return a


def _envelope_autocorrelation(model: "Model", condition: jnp.ndarray) -> jnp.ndarray:
  """Features [b, frames, C (+ hop E)] -> float32 [b, frames, lpc_order + 1]: lags 0..order of
  the autocorrelation of the power spectrum the log-mel bands describe
  (`losses.mel_features_power`; of the pre-emphasised audio with `pre_emphasis`), with
  LPC_NOISE_FLOOR added at lag 0."""
  power = losses.mel_features_power(condition[..., :model.condition_channels].astype(jnp.float32),
                                    model.sample_rate_hz, model.condition_hop)
  if model.pre_emphasis:  # The envelope of the pre-emphasised audio: x |1 - a e^-jw|^2.
    w = jnp.linspace(0.0, jnp.pi, power.shape[-1])
    power = power * (1.0 + model.pre_emphasis**2 - 2.0 * model.pre_emphasis * jnp.cos(w))
  r = jnp.fft.irfft(power, axis=-1)[..., :model.lpc_order + 1]
  return r.at[..., 0].set(r[..., 0] * (1.0 + LPC_NOISE_FLOOR) + 1e-12)


def lpc_coefficients(model: "Model", condition: jnp.ndarray) -> jnp.ndarray:
  """Features [b, frames, C (+ hop E)] -> each frame's linear predictor of order `lpc_order`
  [b, frames, order], float32: the all-pole fit (autocorrelation method) of the power
  spectrum its log-mel bands describe (`losses.mel_features_power`), as LPCNet derives its
  predictor from its features rather than from the audio, so sampling has it too."""
  return levinson(_envelope_autocorrelation(model, condition), model.lpc_order)


def excitation_levels(model: "Model", condition: jnp.ndarray) -> jnp.ndarray:
  """Features [b, frames, C (+ hop E)] -> float32 [b, frames]: the RMS that each frame's
  predictor (`lpc_coefficients`) leaves of the envelope it is fitted to, sqrt(r0 - a . r),
  in the features' scale: on the built-in corpus ~0.4x the RMS of the audio's own residual
  (`wavenet_sampler.sample`'s excitation_limit)."""
  r = _envelope_autocorrelation(model, condition)
  a = levinson(r, model.lpc_order)
  return jnp.sqrt(jnp.maximum(r[..., 0] - jnp.sum(a * r[..., 1:], axis=-1), 0.0))


def _with_lpc(model: "Model", upsampled: jnp.ndarray, condition: jnp.ndarray) -> jnp.ndarray:
  """Upsampled features [b, n, C'] -> with `lpc_order`, float32 [b, n, C' + order]: each row
  followed by its frame's predictor (`lpc_coefficients`); unchanged otherwise."""
  if not model.lpc_order:
    return upsampled
  rows = _lpc_rows(model, condition)
  return jnp.concatenate([upsampled.astype(jnp.float32), rows[:, :upsampled.shape[1]]], -1)


def linear_predictions(model: "Model", inputs: jnp.ndarray, condition: jnp.ndarray,
                       condition_offset: int | jnp.ndarray = 0) -> jnp.ndarray:
  """inputs [b, t] int32 classes, features [b, f, ...] -> float32 [b, t]: each position's
  `linear_prediction` of the sample it draws, with the predictors `Model.__call__` uses."""
  predictor = condition_window(_lpc_rows(model, condition), condition_offset, inputs.shape[1])
  return linear_prediction(model, inputs, predictor)


def excitation_classes(model: "Model", samples: jnp.ndarray,
                       predictions: jnp.ndarray) -> jnp.ndarray:
  """Amplitudes [...] and their linear predictions [...] -> int32 [...]: the mu-law classes of
  the excitation s - p (clipped to [-1, 1]), what `lpc_excitation` models."""
  return audio.mu_law_encode(jnp.clip(samples - predictions, -1.0, 1.0), model.num_classes - 1)


def sample_classes(model: "Model", excitation: jnp.ndarray,
                   predictions: jnp.ndarray) -> jnp.ndarray:
  """Drawn excitation classes [...] and predictions [...] -> the samples' mu-law classes [...]:
  p + e (clipped to [-1, 1]), the inverse of `excitation_classes` up to mu-law rounding."""
  mu = model.num_classes - 1
  return audio.mu_law_encode(jnp.clip(predictions + audio.mu_law_decode(excitation, mu),
                                      -1.0, 1.0), mu)


def _lpc_rows(model: "Model", condition: jnp.ndarray) -> jnp.ndarray:
  """Features [b, f, ...] -> each frame's predictor repeated over its samples [b, f hop, P]."""
  return jnp.repeat(lpc_coefficients(model, condition), model.condition_hop, axis=1)


def _split_lpc(model: "Model", rows: jnp.ndarray):
  """`_with_lpc` rows [..., C' (+ order)] -> (features [..., C'], predictors or None)."""
  if not model.lpc_order:
    return rows, None
  return rows[..., :-model.lpc_order], rows[..., -model.lpc_order:]


def _long_term_terms(model: "Model", table: jnp.ndarray, kernel: jnp.ndarray,
                     prediction: jnp.ndarray, residuals: jnp.ndarray,
                     valid: jnp.ndarray) -> jnp.ndarray:
  """`lpc_period`'s input term [..., R]: per period tap j, q_j = prediction [...] + the
  residual of the input at the tap (`residuals` [..., taps]: its amplitude minus what was
  predicted for it), embedded as a class (rows of `table` [(classes + 1) taps, R], its "none"
  where not `valid`) plus `kernel` [taps, 2, R] of its `amplitude_features`."""
  q = prediction[..., None] + residuals
  classes = jnp.where(valid, audio.mu_law_encode(q, model.num_classes - 1), model.num_classes)
  ids = classes + (model.num_classes + 1) * jnp.arange(model.period_taps)
  features = jnp.where(valid[..., None], amplitude_features(model, q), 0.0)
  return (table[ids].sum(axis=-2)
          + jnp.einsum("...jf,jfr->...r", features.astype(table.dtype), kernel.astype(table.dtype)))


def linear_prediction(model: "Model", inputs: jnp.ndarray,
                      coefficients: jnp.ndarray) -> jnp.ndarray:
  """inputs [b, t] int32 classes, coefficients [b, t, order] -> float32 [b, t]: position t's
  prediction of the sample it draws, sum_k a[k] x[t - k] over the inputs' amplitudes (input t
  is the sample before the drawn one; inputs before the first count as 0)."""
  order, time = model.lpc_order, inputs.shape[1]
  amplitude = jnp.pad(audio.mu_law_decode(inputs, model.num_classes - 1), ((0, 0), (order - 1, 0)))
  past = jnp.stack([amplitude[:, order - 1 - k:order - 1 - k + time] for k in range(order)], -1)
  return jnp.sum(coefficients.astype(jnp.float32) * past, axis=-1)


def condition_periods(model: "Model", upsampled: jnp.ndarray) -> jnp.ndarray | None:
  """Upsampled features [..., C + E] -> int32 periods in samples [...] (0 unvoiced) from the
  excitation's period channel; None for a model without `period_input`."""
  if not model.period_input:
    return None
  channel = upsampled.shape[-1] - model.excitation_channels + pitch.PERIOD_CHANNEL
  return pitch.periods(upsampled[..., channel], model.sample_rate_hz)


def condition_voiced(model: "Model", upsampled: jnp.ndarray) -> jnp.ndarray | None:
  """Upsampled features [..., C + E] -> bool [...]: the excitation's voiced flag (the pulses
  say a pitch period holds the sample); None for a model without an excitation."""
  if not model.excitation_channels:
    return None
  return upsampled[..., upsampled.shape[-1] - model.excitation_channels] > 0.5


def _period_taps(model: "Model", positions: jnp.ndarray, periods: jnp.ndarray):
  """Positions and periods (broadcastable) -> the input index of each period tap [..., taps]
  (position + 1 - P + d for d in -(taps // 2)..taps // 2) and whether it holds a past input."""
  half = model.period_taps // 2
  offsets = jnp.arange(-half, half + 1)
  index = (positions + 1 - periods)[..., None] + offsets
  periods = periods[..., None]
  valid = ((periods > 0) & (periods + half < history_size(model)) & (periods - offsets >= 1)
           & (index >= 0))
  return index, valid


def _tap_ids(model: "Model", classes: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
  """Classes [..., taps] -> `period_embed` rows: tap j's classes, or its "none", at j (C + 1)."""
  ids = jnp.where(valid, classes, model.num_classes)
  return ids + (model.num_classes + 1) * jnp.arange(model.period_taps)


def lagged_inputs(model: "Model", inputs: jnp.ndarray, periods: jnp.ndarray) -> jnp.ndarray:
  """inputs [batch, time] int32, periods [batch, time] -> the `period_embed` rows of the inputs
  about one period back of each position, [batch, time, period_taps]: position t (input:
  sample n - 1) takes the inputs at t + 1 - P + d (samples n - P + d), d in -(taps // 2)..
  taps // 2; the tap's "none" where P = 0, P + taps // 2 >= history_size, P - d < 1 (not yet
  drawn) or the index is before the first input."""
  index, valid = _period_taps(model, jnp.arange(inputs.shape[1])[None, :], periods)
  b, t, taps = index.shape
  lagged = jnp.take_along_axis(inputs, jnp.clip(index, 0, t - 1).reshape(b, t * taps), axis=1)
  return _tap_ids(model, lagged.reshape(b, t, taps), valid)


def drop_periods(model: "Model", condition: jnp.ndarray, keep: jnp.ndarray) -> jnp.ndarray:
  """Packed features [batch, frames, C + hop E] with the excitation's period channel zeroed in
  the rows where `keep` [batch] is False: to the period input, those rows are unvoiced."""
  b, f, channels = condition.shape
  split = channels - model.condition_hop * model.excitation_channels
  samples = condition[..., split:].reshape(b, f, model.condition_hop, model.excitation_channels)
  samples = samples.at[..., pitch.PERIOD_CHANNEL].multiply(keep[:, None, None])
  return jnp.concatenate([condition[..., :split], samples.reshape(b, f, -1)], axis=-1)


def _upsampler(model: "Model", **kwargs) -> ConditionUpsampler:
  """`model`'s conditioning upsampler (a submodule when built inside `Model.__call__`)."""
  return ConditionUpsampler(model.condition_upsample, model.condition_hop,
                            tuple(model.condition_strides), model.excitation_channels,
                            model.condition_layers, model.condition_width,
                            model.condition_kernel, model.dtype, **kwargs)


class Model(nn.Module):
  """WaveNet with a softmax over `num_classes` mu-law classes or a mixture of logistics.

  The dilated conv of each layer has `gate_channels` outputs, split into the tanh (filter) and
  sigmoid (gate) halves, so the gated unit has `gate_channels // 2` channels. `num_speakers > 0`
  adds global conditioning on a speaker id, `condition_channels > 0` local conditioning on
  features at `condition_hop` samples per frame (see the module docstring for both and for
  `output`). For mol, `num_classes` is the mu-law grid of the comparable
  `mu_law_bits_per_sample` only. `sample_rate_hz` is the rate of the log-mel features the
  training task computes when a batch brings no `condition`.
  """
  num_classes: int = 256
  residual_channels: int = 64
  gate_channels: int = 128
  skip_channels: int = 256
  head_channels: int = 256
  kernel_size: int = 2
  dilation_cycles: int = 3
  max_dilation: int = 512
  dilated: bool = True  # False: every layer dilation 1 (the receptive-field ablation).
  num_speakers: int = 0
  speaker_embedding_dim: int = 0  # E > 0: condition on a vector from reference audio instead.
  reference_mels: int = 40  # Log-mel bands of the reference audio (`SpeakerEncoder`).
  reference_hop: int = 160  # Samples per reference frame (10 ms at 16 kHz).
  # With speaker_embedding_dim, K > 0 (>= the dataset's speaker count): training also names
  # the reference's speaker from its vector (a linear head, sown as "speaker_logits"; the loss
  # weighs its cross entropy by speaker_loss_weight), as a d-vector encoder learns, so the
  # jointly trained encoder cannot give every voice the same vector.
  speaker_classes: int = 0
  speaker_loss_weight: float = 0.0
  output: str = "softmax"  # softmax | mol
  num_mixtures: int = 10  # mol: logistic components K.
  log_scale_min: float = -12.0  # mol: lower clamp of ln(scale); e^-12 ~ 0.2 16-bit bins.
  condition_channels: int = 0  # C of the local conditioning features; 0 = none.
  condition_hop: int = 1  # Samples per conditioning frame.
  condition_upsample: str = "repeat"  # repeat | transposed
  condition_strides: tuple[int, ...] = ()  # transposed: per-stage strides, product = hop.
  condition_layers: int = 0  # K > 0: a frame network before upsampling (module docstring).
  condition_width: int = 128
  condition_kernel: int = 3
  # What the task computes the features from the audio as (`tasks.condition_features`): "mel"
  # (a vocoder: condition_channels log-mel bands), "lowband" (super-resolution: the audio at
  # sample_rate_hz / lowband_factor, condition_hop / lowband_factor samples per frame), or
  # "phonemes" (text-to-speech: the data pipeline brings linguistic features, `data.phonemes`).
  condition_source: str = "mel"
  # E > 0: the features also carry E channels at the sample rate, packed hop x E at the end of
  # each frame (the pipeline's pitch-synchronous excitation, `audiojax.data.pitch`), used as
  # they are, not upsampled: `condition` is then [batch, frames, condition_channels + hop E].
  excitation_channels: int = 0
  # With excitation_channels = 5 (the period channel): also embed the input one pitch period
  # back (module docstring), and period_taps - 1 around it (odd). Softmax only.
  period_input: bool = False
  period_taps: int = 1
  # Softmax: add to each input's class embedding a 1x1 of its amplitude (and companded value,
  # `class_features`), the same for the period taps (a kernel per tap): the embeddings start
  # linear in the amplitude, as a waveform's linear prediction from its past needs, instead of
  # 256 unrelated vectors of which the rare loud classes are barely trained.
  amplitude_input: bool = False
  # P > 0 (softmax, log-mel conditioning): also embed a linear prediction of the sample being
  # drawn from the last P inputs, with a predictor of order P fitted per frame to the spectral
  # envelope of the log-mel features (`lpc_coefficients`; LPCNet, Valin and Skoglund 2019).
  lpc_order: int = 0
  # With lpc_order and period_input: also embed, per period tap, the prediction plus the
  # excitation one period back (the tap's input minus its own prediction): the short-term
  # predictor with CELP's adaptive codebook at unit gain, what a voiced sound repeats.
  lpc_period: bool = False
  # With lpc_order: the softmax models the excitation s - p, not the sample (LPCNet; module
  # docstring); the samplers draw e and emit p + e.
  lpc_excitation: bool = False
  # With lpc_order: also embed the input's own excitation e = s - p (the input minus the
  # prediction made for it: LPCNet's e_{t-1} input), mu-law classes, clipped to [-1, 1].
  excitation_input: bool = False
  # alpha > 0: the model's samples are the audio pre-emphasised, x[n] - alpha x[n - 1]
  # (`audio.pre_emphasize`; LPCNet: 0.85), and its linear predictor is fitted to the
  # pre-emphasised envelope; generated audio is de-emphasised (`tasks.wavenet_generate`), so
  # the white noise of 8-bit mu-law and of sampling comes out under the spectrum's slope.
  pre_emphasis: float = 0.0
  # Training only (`tasks.wavenet_loss`): the share of rows trained without their periods (the
  # period channel zeroed: no lagged samples), so that the model also follows its other
  # conditioning where its own last period is no guide (e.g. silence it fell into).
  period_dropout: float = 0.0
  lowband_factor: int = 2
  sample_rate_hz: int = 16000
  dtype: Any = jnp.float32
  remat: str = "none"  # Recompute layer activations in the backward pass: none | full | dots.
  # Training only (`tasks.wavenet_loss`): deviation, in mu-law classes, of the noise added to
  # the inputs (not the targets); 0 = clean inputs.
  input_noise: float = 0.0
  # Context stack (module docstring): samples per context frame (0 = none), its layers K
  # (R = 2^K frames of context) and width; `tasks.wavenet_loss`: the positions at the end of
  # each window the WaveNet runs on and the loss counts (0 = all; any model).
  context_hop: int = 0
  context_window: int = 1024  # Samples per frame spectrum (>= context_hop).
  context_layers: int = 6
  context_width: int = 64
  context_crop: int = 0

  @property
  def dilations(self) -> tuple[int, ...]:
    """1, 2, 4, ..., max_dilation, repeated dilation_cycles times (one entry per layer); with
    `dilated=False` (the paper's non-dilated baseline) as many layers, all of dilation 1."""
    cycle = tuple(2**i if self.dilated else 1 for i in range(self.max_dilation.bit_length()))
    return cycle * self.dilation_cycles

  @property
  def receptive_field(self) -> int:
    """Receptive field in samples (e.g. 3070 = 192 ms at 16 kHz for the paper stack)."""
    return receptive_field(self.kernel_size, self.dilations)

  @property
  def num_outputs(self) -> int:
    """Outputs per step: num_classes logits (softmax) or 3 num_mixtures params (mol)."""
    if self.output not in OUTPUTS:
      raise ValueError(f"output={self.output!r}: use one of {', '.join(OUTPUTS)}")
    return self.num_classes if self.output == "softmax" else 3 * self.num_mixtures

  @nn.compact
  def __call__(self, inputs: jnp.ndarray, speaker: jnp.ndarray | None = None,
               condition: jnp.ndarray | None = None,
               condition_offset: int | jnp.ndarray = 0, crop: int = 0) -> jnp.ndarray:
    """inputs: [batch, time] int32 classes (softmax) or float amplitudes (mol), speaker: int32
    [batch], condition: [batch, frames, C] -> outputs float32 [b, t, num_outputs].

    `outputs[:, t]` is the distribution of sample t + 1 given `inputs[:, :t + 1]` and the
    conditioning rows up to t + condition_offset (module docstring). With `crop` > 0 only
    the last `crop` positions' outputs [b, crop, ...]: a context stack reads all the inputs,
    the WaveNet the last `crop` (its own zero padding before them, as at a window's start).
    """
    assert self.gate_channels % 2 == 0, "gate_channels is split into filter and gate halves"
    assert self.max_dilation & (self.max_dilation - 1) == 0, "max_dilation is a power of 2"
    speaker = _check_speaker(self, speaker)
    if speaker is not None and speaker.ndim == 3:  # Reference log-mel -> speaker vector.
      speaker = _speaker_encoder(self, name="speaker_encoder")(speaker)
      if self.speaker_classes:  # [batch, K], for the training loss only.
        self.sow("intermediates", "speaker_logits", nn.Dense(
            self.speaker_classes, name="speaker_classifier", kernel_init=_init((None, None)),
            bias_init=_init((None,), nn.initializers.zeros))(speaker))
    condition = _check_condition(self, condition)
    channels = self.condition_channels + self.condition_hop * self.excitation_channels
    if condition is not None and condition.shape[-1] != channels:
      raise ValueError(f"condition has {condition.shape[-1]} channels per frame; the model takes "
                       f"{channels} (condition_channels + condition_hop x excitation_channels)")
    num_outputs = self.num_outputs  # Checks `output`.
    _check_period_input(self)
    _check_lpc(self)
    if self.context_hop and not 0 < self.context_hop <= self.context_window:
      raise ValueError(f"context_window={self.context_window} < context_hop="
                       f"{self.context_hop}: each frame's spectrum must cover its hop")
    # The context stack over all the inputs; then the WaveNet over the crop only.
    start = inputs.shape[1] - crop if 0 < crop < inputs.shape[1] else 0
    context = self._context(inputs, start, inputs.shape[1] - start) if self.context_hop else None
    inputs, condition_offset = inputs[:, start:], condition_offset + start
    features, layer_condition = condition, None  # features: the frames LPC is fitted to
    if condition is not None and self.condition_upsample == "repeat":
      # The layers project the frames before repeating them (`ConditionProjection`).
      rows = _upsampler(self, name="condition_upsampler")(condition, repeat_frames=False)
      layer_condition = FrameRows(rows.frames, rows.samples, rows.hop, condition_offset
                                  ).window(inputs.shape[1])
      condition = layer_condition.samples  # [b, t, E] (periods, voiced) or None
    elif condition is not None:
      upsampled = _upsampler(self, name="condition_upsampler")(condition)
      condition = condition_window(upsampled, condition_offset, inputs.shape[1])  # [b, t, C]
      layer_condition = condition
    if self.output == "mol":
      x = nn.Dense(self.residual_channels, dtype=self.dtype, name="embed",
                   kernel_init=_init((None, "embed")),
                   bias_init=_init(("embed",), nn.initializers.zeros))(inputs[..., None])
    else:
      x = nn.Embed(self.num_classes, self.residual_channels, dtype=self.dtype, name="embed",
                   embedding_init=_init(("classes", "embed"), nn.linear.default_embed_init)
                   )(inputs)  # [b, t, R]
      if self.amplitude_input:
        x += nn.Dense(self.residual_channels, use_bias=False, dtype=self.dtype,
                      name="embed_amplitude", kernel_init=_init((None, "embed"))
                      )(class_features(self, inputs))
    if self.period_input:  # The sample one period back: [b, t, R].
      periods = condition_periods(self, condition)
      lagged = lagged_inputs(self, inputs, periods)
      x += nn.Embed((self.num_classes + 1) * self.period_taps, self.residual_channels,
                    dtype=self.dtype, name="period_embed",
                    embedding_init=_init(("classes", "embed"), nn.linear.default_embed_init)
                    )(lagged).sum(axis=2)
      if self.amplitude_input:  # [taps, 2, R]
        kernel = self.param("period_amplitude", _init((None, None, "embed")),
                            (self.period_taps, 2, self.residual_channels))
        x += jnp.einsum("btjf,jfr->btr", _tap_features(self, lagged).astype(self.dtype),
                        kernel.astype(self.dtype))
    if self.lpc_order:  # The linear prediction of the sample being drawn: [b, t, R].
      prediction = linear_predictions(self, inputs, features, condition_offset)  # [b, t]
      x += nn.Embed(self.num_classes, self.residual_channels, dtype=self.dtype, name="lpc_embed",
                    embedding_init=_init(("classes", "embed"), nn.linear.default_embed_init)
                    )(audio.mu_law_encode(prediction, self.num_classes - 1))
      x += nn.Dense(self.residual_channels, use_bias=False, dtype=self.dtype,
                    name="lpc_amplitude", kernel_init=_init((None, "embed"))
                    )(amplitude_features(self, prediction))
    if self.excitation_input or self.lpc_period:
      # Input i's residual: its amplitude minus position i - 1's prediction (0 for input 0).
      residual = (audio.mu_law_decode(inputs, self.num_classes - 1)
                  - jnp.pad(prediction[:, :-1], ((0, 0), (1, 0))))  # [b, t]
    if self.excitation_input:  # [b, t, R]
      x += nn.Embed(self.num_classes, self.residual_channels, dtype=self.dtype,
                    name="excitation_embed",
                    embedding_init=_init(("classes", "embed"), nn.linear.default_embed_init)
                    )(excitation_classes(self, residual, 0.0))
    if self.lpc_period:  # [b, t, R]
      b, t = inputs.shape
      index, valid = _period_taps(self, jnp.arange(t)[None, :], periods)  # [b, t, taps]
      lagged = jnp.take_along_axis(residual, jnp.clip(index, 0, t - 1).reshape(b, -1), axis=1)
      table = self.param("lpc_period_embed", _init(("classes", "embed"),
                                                   nn.linear.default_embed_init),
                         ((self.num_classes + 1) * self.period_taps, self.residual_channels))
      kernel = self.param("lpc_period_amplitude", _init((None, None, "embed")),
                          (self.period_taps, 2, self.residual_channels))
      x += _long_term_terms(self, table.astype(self.dtype), kernel, prediction,
                            lagged.reshape(b, t, -1), valid)
    x = _constrain(x, ("batch", "time", None))
    layer = remat(ResidualLayer, self.remat)
    skips = 0.0
    for i, dilation in enumerate(self.dilations):
      x, skip = layer(self.residual_channels, self.gate_channels, self.skip_channels,
                      self.kernel_size, dilation, self.num_speakers, self.dtype,
                      name=f"layer_{i}")(x, speaker, layer_condition, context)
      skips += skip  # [b, t, S]
    h = nn.relu(skips)
    h = nn.relu(nn.Dense(self.head_channels, dtype=self.dtype, name="head_hidden",
                         kernel_init=_init(("embed", "mlp")),
                         bias_init=_init(("mlp",), nn.initializers.zeros))(h))
    logits = nn.Dense(num_outputs, dtype=self.dtype, name="head_logits",
                      kernel_init=_init(("mlp", "vocab")),
                      bias_init=_init(("vocab",), nn.initializers.zeros))(h)
    logits = _constrain(logits, ("batch", "time", "vocab"))
    return logits.astype(jnp.float32)  # [b, t, num_outputs]

  def _context(self, inputs: jnp.ndarray, start: int, time: int) -> FrameRows:
    """The context stack's rows of positions start .. start + time - 1 (module docstring):
    spectra of frames of the inputs' amplitudes (silence before them), output j (over the R
    frames ending with frame j - 1) kept at the frame rate for frame j's positions."""
    hop = self.context_hop
    first, last = start // hop, -(-(start + time) // hop)  # the frames positions fall in
    amplitudes = input_amplitudes(self, inputs[:, :max(last - 1, 0) * hop])
    # Silence before: window k of the padded amplitudes (k hop .. k hop + window) ends where
    # frame k - R of the inputs does.
    amplitudes = jnp.pad(amplitudes, ((0, 0), (context_span(self), 0)))
    spectra = frame_spectra(self, amplitudes[:, first * hop:])  # [b, R + last - first - 1, .]
    outputs = _context_stack(self, name="context_stack")(spectra)  # [b, last - first, W]
    return FrameRows(outputs, None, hop, start - first * hop)


# The mixture of logistics.


def split_mixture(outputs: jnp.ndarray, log_scale_min: float):
  """outputs [..., 3K] -> component logits, means, log scales (clamped below), each [..., K]."""
  logits, means, log_scales = jnp.split(outputs, 3, axis=-1)
  return logits, means, jnp.maximum(log_scales, log_scale_min)


def mixture_log_prob(outputs: jnp.ndarray, centre: jnp.ndarray, below: jnp.ndarray,
                     above: jnp.ndarray, log_scale_min: float) -> jnp.ndarray:
  """ln P(centre - below < X <= centre + above) under the mixture, exactly; shape [...].

  outputs: [..., 3K]; centre, below, above: [...] in amplitude, below/above >= 0 and inf for
  an edge bin that absorbs its tail (`audio.linear_bins`, `audio.mu_law_bins`). With
  a = (lower - mean) / s and b = (upper - mean) / s, sigmoid(b) - sigmoid(a) =
  sigmoid(b) sigmoid(-a) (1 - e^(a - b)), so the log is log_sigmoid(b) + log_sigmoid(-a) +
  log(-expm1(-(below + above) / s)): stable for tiny bins and far tails alike.
  """
  logits, means, log_scales = split_mixture(outputs, log_scale_min)  # [..., K]
  open_below, open_above = jnp.isinf(below)[..., None], jnp.isinf(above)[..., None]
  below = jnp.where(open_below, 0.0, below[..., None])  # finite: no inf * 0 in the gradient
  above = jnp.where(open_above, 0.0, above[..., None])
  inv_scale = jnp.exp(-log_scales)
  centred = centre[..., None] - means
  log_cdf_upper = jnp.where(open_above, 0.0, jax.nn.log_sigmoid((centred + above) * inv_scale))
  log_sf_lower = jnp.where(open_below, 0.0, jax.nn.log_sigmoid((below - centred) * inv_scale))
  width = jnp.where(open_below | open_above, 1.0, (below + above) * inv_scale)
  log_width = jnp.where(open_below | open_above, 0.0, jnp.log(-jnp.expm1(-width)))
  component = log_cdf_upper + log_sf_lower + log_width  # ln P(bin | component): [..., K]
  return jax.nn.logsumexp(jax.nn.log_softmax(logits) + component, axis=-1)


REMAT_POLICIES = {
    "full": None,  # Save nothing: recompute the whole layer.
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # Keep matmul outputs.
}


def remat(module: type[nn.Module], policy: str) -> type[nn.Module]:
  """`module`, recomputed in the backward pass under `policy` ('none' leaves it as it is)."""
  if policy == "none":
    return module
  if policy not in REMAT_POLICIES:
    raise ValueError(f"remat={policy!r}: use one of none, {', '.join(REMAT_POLICIES)}")
  return nn.remat(module, policy=REMAT_POLICIES[policy])


# Incremental decoding.


class DecodeWeights(struct.PyTreeNode):
  """`Model` params rearranged once for one-sample steps; L layers, shapes as in the params."""
  embedding: jax.Array  # [classes, R] (softmax) or [1, R] (mol: the amplitude's 1x1)
  embedding_bias: jax.Array | None  # [R] (mol only)
  period_embedding: jax.Array | None  # [(classes + 1) taps, R] (period_input only)
  lpc_embedding: jax.Array | None  # [classes, R] (lpc_order only)
  lpc_amplitude: jax.Array | None  # [2, R] (lpc_order only)
  excitation_embedding: jax.Array | None  # [classes, R] (excitation_input only)
  lpc_period_embedding: jax.Array | None  # [(classes + 1) taps, R] (lpc_period only)
  lpc_period_amplitude: jax.Array | None  # [taps, 2, R] (lpc_period only)
  past_kernel: jax.Array  # [L, k - 1, R, G]: conv taps at t - (k - 1) d, ..., t - d
  current_kernel: tuple[jax.Array, ...]  # L x [R, G]: conv tap at t
  gate_bias: jax.Array  # [L, G]
  speaker_embedding: jax.Array | None  # [L, num_speakers, G] (ids) or [L, E, G] (vectors)
  condition_kernel: jax.Array | None  # [C, L, G]: every layer's conditioning 1x1, one matmul
  residual_kernel: tuple[jax.Array, ...]  # L x [G // 2, R]
  residual_bias: tuple[jax.Array, ...]  # L x [R]
  skip_kernel: jax.Array  # [L * G // 2, S]: every layer's skip 1x1, summed by one matmul
  skip_bias: jax.Array  # [S]: sum of the layers' skip biases
  hidden_kernel: jax.Array  # [S, H]
  hidden_bias: jax.Array  # [H]
  logits_kernel: jax.Array  # [H, num_outputs]
  logits_bias: jax.Array  # [num_outputs]
  context_params: Any = None  # The context stack's params (context_hop only)
  context_kernel: jax.Array | None = None  # [W, L, G]: every layer's context 1x1 (context_hop)


class DecodeState(struct.PyTreeNode):
  """What one step needs from the past: every layer's queue of inputs and the time index."""
  queues: jax.Array  # [sum_l (k - 1) d_l, batch, R]: all layers' ring buffers, see `queue_layout`
  gate_context: jax.Array  # [L, batch, G]: gate biases + global conditioning, fixed in time
  step: jax.Array  # int32 []: time index of the next input
  history: jax.Array | None = None  # int32 [history_size, batch]: input s at row s % size
  # float32 [history_size, batch] (lpc_period): the prediction made for input s at row s % size
  predictions: jax.Array | None = None
  # float32 [batch] (lpc_order): the last step's prediction of the sample it draws
  prediction: jax.Array | None = None
  # context_hop: the last context_span inputs' amplitudes, float32 [span, batch] (input s at
  # row s % span), and the context stack's gate terms [L, batch, G] of the current frame.
  context_inputs: jax.Array | None = None
  context_terms: jax.Array | None = None


class StepCondition(struct.PyTreeNode):
  """A locally conditioned step's inputs from the features, for one step or stacked in time."""
  terms: jax.Array  # [..., L, batch, G]: every layer's conditioning gate term
  periods: jax.Array | None = None  # int32 [..., batch]: period_input's periods (samples)
  lpc: jax.Array | None = None  # float32 [..., batch, order]: lpc_order's predictors
  voiced: jax.Array | None = None  # bool [..., batch]: the excitation's voiced flag

  def __getitem__(self, index) -> "StepCondition":
    return jax.tree.map(lambda x: x[index], self)


def queue_layout(model: Model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Where each layer's ring buffer lives in `DecodeState.queues`.

  Layer l with dilation d keeps its last (k - 1) d inputs, input s at row
  offsets[l] + s % sizes[l]. Returns sizes [L], offsets [L] and lags [L, k - 1] (the conv's
  past taps, oldest first: (k - 1) d, ..., d).
  """
  dilations = np.array(model.dilations)
  sizes = (model.kernel_size - 1) * dilations
  offsets = np.cumsum(sizes) - sizes
  lags = dilations[:, None] * np.arange(model.kernel_size - 1, 0, -1)[None, :]
  return sizes, offsets, lags


def decode_weights(model: Model, params: Any) -> DecodeWeights:
  """Splits, stacks and casts `model`'s params for `decode_step` (do it once, outside loops)."""
  layers = [params[f"layer_{i}"] for i in range(len(model.dilations))]
  r, cast = model.residual_channels, lambda x: jnp.asarray(x, model.dtype)
  conv = [cast(p["dilated_conv"]["kernel"]) for p in layers]  # L x [k, R, G]
  out = [cast(p["output"]["kernel"]) for p in layers]  # L x [G // 2, R + S]
  out_bias = [cast(p["output"]["bias"]) for p in layers]  # L x [R + S]
  speaker = condition = embedding_bias = None
  if model.speaker_embedding_dim:
    speaker = jnp.stack([cast(p["speaker_vector"]["kernel"]) for p in layers])
  elif model.num_speakers:
    speaker = jnp.stack([cast(p["speaker"]["embedding"]) for p in layers])
  if model.condition_channels:
    condition = jnp.stack([cast(p["condition"]["kernel"]) for p in layers], axis=1)
  if model.output == "mol":
    embedding, embedding_bias = cast(params["embed"]["kernel"]), cast(params["embed"]["bias"])
  else:
    embedding = cast(params["embed"]["embedding"])
  period = cast(params["period_embed"]["embedding"]) if model.period_input else None
  if model.amplitude_input:  # Folded into the tables: row c += class_features(c) @ kernel.
    features = class_features(model, jnp.arange(model.num_classes))  # [classes, 2]
    embedding += cast(features @ params["embed_amplitude"]["kernel"])
    if period is not None:
      ids = jnp.arange(period.shape[0]).reshape(model.period_taps, model.num_classes + 1)
      period += cast(jnp.einsum("jcf,jfr->jcr", _tap_features(model, ids.T).transpose(1, 0, 2),
                                params["period_amplitude"]).reshape(period.shape))
  lpc = ((cast(params["lpc_embed"]["embedding"]), cast(params["lpc_amplitude"]["kernel"]))
         if model.lpc_order else (None, None))
  return DecodeWeights(
      embedding=embedding,
      embedding_bias=embedding_bias,
      period_embedding=period,
      lpc_embedding=lpc[0],
      lpc_amplitude=lpc[1],
      excitation_embedding=(cast(params["excitation_embed"]["embedding"])
                            if model.excitation_input else None),
      lpc_period_embedding=cast(params["lpc_period_embed"]) if model.lpc_period else None,
      lpc_period_amplitude=cast(params["lpc_period_amplitude"]) if model.lpc_period else None,
      past_kernel=jnp.stack([w[:-1] for w in conv]),
      current_kernel=tuple(w[-1] for w in conv),
      gate_bias=jnp.stack([cast(p["dilated_conv"]["bias"]) for p in layers]),
      speaker_embedding=speaker,
      condition_kernel=condition,
      residual_kernel=tuple(w[:, :r] for w in out),
      residual_bias=tuple(b[:r] for b in out_bias),
      skip_kernel=jnp.concatenate([w[:, r:] for w in out]),
      skip_bias=sum(b[r:] for b in out_bias),
      hidden_kernel=cast(params["head_hidden"]["kernel"]),
      hidden_bias=cast(params["head_hidden"]["bias"]),
      logits_kernel=cast(params["head_logits"]["kernel"]),
      logits_bias=cast(params["head_logits"]["bias"]),
      context_params=params["context_stack"] if model.context_hop else None,
      context_kernel=(jnp.stack([cast(p["context"]["kernel"]) for p in layers], axis=1)
                      if model.context_hop else None))


def _context_terms(model: Model, weights: DecodeWeights, context_inputs: jax.Array,
                   step: jax.Array) -> jax.Array:
  """The gate terms [L, batch, G] of the frame starting at input `step` (a multiple of hop):
  the context stack over the R frames before it, from the ring buffer [context_span, batch]."""
  size = context_inputs.shape[0]
  window = context_inputs[(step + jnp.arange(size)) % size]  # oldest first: [span, batch]
  spectra = frame_spectra(model, window.T)  # [batch, R, bins]
  outputs = _context_stack(model).apply({"params": weights.context_params}, spectra)[:, 0]
  return jnp.einsum("bw,wlg->lbg", outputs.astype(model.dtype), weights.context_kernel)


def init_decode_state(model: Model, weights: DecodeWeights, batch_size: int,
                      speaker: jnp.ndarray | None = None) -> DecodeState:
  """Empty queues (zeros, as the causal padding of `__call__`); speaker: int32 [batch], or
  speaker vectors [batch, E] (`speaker_vectors`) for a model with speaker_embedding_dim."""
  speaker = _check_speaker(model, speaker)
  sizes, _, _ = queue_layout(model)
  queues = jnp.zeros((sizes.sum(), batch_size, model.residual_channels), model.dtype)
  context = jnp.broadcast_to(weights.gate_bias[:, None, :],
                             (len(model.dilations), batch_size, model.gate_channels))
  if speaker is not None and model.speaker_embedding_dim:
    if speaker.ndim != 2:
      raise ValueError("the sampler conditions on speaker vectors [batch, E]: compute them "
                       "from the reference with `speaker_vectors`")
    context = context + jnp.einsum("be,leg->lbg", speaker.astype(model.dtype),
                                   weights.speaker_embedding)
  elif speaker is not None:
    context = context + weights.speaker_embedding[:, speaker, :]  # [L, batch, G]
  history = (jnp.zeros((history_size(model), batch_size), jnp.int32) if history_size(model)
             else None)
  predictions = (jnp.zeros((history_size(model), batch_size), jnp.float32) if model.lpc_period
                 else None)
  prediction = jnp.zeros((batch_size,), jnp.float32) if model.lpc_order else None
  step = jnp.zeros((), jnp.int32)
  context_inputs = context_terms = None
  if model.context_hop:  # Silence before the first input, as in `Model.__call__`.
    context_inputs = jnp.zeros((context_span(model), batch_size), jnp.float32)
    context_terms = _context_terms(model, weights, context_inputs, step)
  return DecodeState(queues=queues, gate_context=context, step=step,
                     history=history, predictions=predictions, prediction=prediction,
                     context_inputs=context_inputs, context_terms=context_terms)


def _speaker_encoder(model: Model, **kwargs) -> speaker_encoder.SpeakerEncoder:
  return speaker_encoder.SpeakerEncoder(model.speaker_embedding_dim, dtype=model.dtype, **kwargs)


def speaker_vectors(model: Model, params: Any, reference_mel: jnp.ndarray) -> jnp.ndarray:
  """Reference log-mel [batch, frames, reference_mels] -> speaker vectors [batch, E], as
  `Model.__call__` computes them (for the samplers: compute once, then condition on them)."""
  return _speaker_encoder(model).apply({"params": params["speaker_encoder"]}, reference_mel)


def upsample_condition(model: Model, params: Any, condition: jnp.ndarray) -> jnp.ndarray:
  """Features [batch, frames, C] -> [batch, frames * hop, C] as `Model.__call__` upsamples them
  (with `lpc_order`, each row followed by its predictor); row n is for the step that draws
  sample n. Do it once, before the loop."""
  upsampled = _upsampler(model).apply({"params": params.get("condition_upsampler", {})},
                                      condition)
  return _with_lpc(model, upsampled, condition)


class SamplerCondition(struct.PyTreeNode):
  """A clip's conditioning as the samplers take it: sample-rate rows [batch, n, C_r] and, in
  repeat mode, every frame's gate terms [frames, L, batch, G]. Transposed mode: the rows are
  the upsampled features (`upsample_condition`). Repeat mode: each frame is projected once
  (as `ConditionProjection` does in training), and the rows hold only the sample-rate
  channels (the excitation's E, or none). With `lpc_order` each row ends in its predictor."""
  rows: jnp.ndarray
  frame_terms: jnp.ndarray | None = None


def sampler_condition(model: Model, params: Any, weights: DecodeWeights,
                      condition: jnp.ndarray) -> SamplerCondition:
  """Features [batch, frames, C (+ hop E)] -> `SamplerCondition` (row n: the step that draws
  sample n). Do it once, before the loop."""
  if model.condition_upsample != "repeat":
    return SamplerCondition(upsample_condition(model, params, condition))
  rows = _upsampler(model).apply({"params": params.get("condition_upsampler", {})}, condition,
                                 repeat_frames=False)  # FrameRows
  frames = rows.frames.astype(model.dtype)  # [b, f, C']
  samples = rows.samples
  if samples is None:
    samples = jnp.zeros((frames.shape[0], frames.shape[1] * model.condition_hop, 0), frames.dtype)
  frame_terms = jnp.einsum("bfc,clg->flbg", frames,
                           weights.condition_kernel[:frames.shape[-1]])
  return SamplerCondition(_with_lpc(model, samples, condition), frame_terms)


def condition_terms(model: Model, weights: DecodeWeights, upsampled: jnp.ndarray,
                    frame_terms: jnp.ndarray | None = None,
                    start: int | jnp.ndarray = 0) -> StepCondition:
  """Sample-rate rows [time, batch, C_r] (time-major; `SamplerCondition.rows`) of steps start
  .. start + time - 1 -> every layer's gate term of each step, [time, L, batch, G] (all
  layers' conditioning 1x1s in one matmul, plus, in repeat mode, the step's frame's terms from
  `frame_terms`), and with `period_input` each step's period [time, batch], with `lpc_order`
  its predictor [time, batch, order], with an excitation whether it is voiced [time, batch]."""
  upsampled, lpc = _split_lpc(model, upsampled)
  kernel = weights.condition_kernel  # [C, L, G]: the frames' channels first
  if frame_terms is not None:
    kernel = kernel[kernel.shape[0] - upsampled.shape[-1]:]  # The sample-rate channels'.
  terms = jnp.einsum("tbc,clg->tlbg", upsampled.astype(model.dtype), kernel)
  if frame_terms is not None:  # (Past the last frame, as in padding, the index clamps.)
    steps = start + jnp.arange(upsampled.shape[0])
    terms = terms + frame_terms[steps // model.condition_hop]
  return StepCondition(terms, condition_periods(model, upsampled), lpc,
                       condition_voiced(model, upsampled))


def decode_step(model: Model, weights: DecodeWeights, state: DecodeState, inputs_t: jnp.ndarray,
                condition_t: StepCondition | None = None) -> tuple[DecodeState, jnp.ndarray]:
  """Consumes the input at time `state.step` -> outputs [batch, num_outputs] (`Model.__call__`).

  inputs_t: int32 classes [batch] (softmax) or float amplitudes [batch] (mol); condition_t:
  this step's conditioning for a locally conditioned model (row `state.step` of
  `condition_terms`). The conv taps on the past are already in the queues, so
  all layers' past taps go through one gather and one batched matmul before the sequential
  residual chain; the chain's layer inputs go back into the queues with one scatter at the end.
  With `lpc_order` the new state's `prediction` is this step's p_n (with `lpc_excitation` the
  outputs are the excitation's: the sample is p_n plus the drawn one, `sample_classes`).
  """
  sizes, offsets, lags = queue_layout(model)
  t = state.step
  in_bounds = dict(mode="promise_in_bounds", unique_indices=True)
  past = state.queues.at[offsets[:, None] + (t - lags) % sizes[:, None]].get(**in_bounds)
  # past: [L, k - 1, batch, R] -> gate pre-activations from the past: [L, batch, G]. Any
  # per-step term that does not depend on this step's layer inputs adds to `context` here.
  context = state.gate_context + jnp.einsum("ljbr,ljrg->lbg", past, weights.past_kernel)
  condition_t = _check_condition(model, condition_t)
  if condition_t is not None:  # Local conditioning, computed before the loop.
    context = context + condition_t.terms
  context_inputs, context_terms = state.context_inputs, state.context_terms
  if context_terms is not None:  # The context stack's; rerun for the next frame at its end.
    context = context + context_terms
    context_inputs = context_inputs.at[t % context_inputs.shape[0]].set(
        input_amplitudes(model, inputs_t))
    context_terms = jax.lax.cond(
        (t + 1) % model.context_hop == 0,
        lambda: _context_terms(model, weights, context_inputs, t + 1).astype(context_terms.dtype),
        lambda: context_terms)

  history, predictions, prediction = state.history, state.predictions, state.prediction
  if model.output == "mol":  # The amplitude's 1x1 conv: [batch, R].
    x = inputs_t[:, None].astype(model.dtype) * weights.embedding[0] + weights.embedding_bias
  else:
    x = weights.embedding[inputs_t]  # [batch, R]
  if history is not None:
    history = history.at[t % history.shape[0]].set(inputs_t)
  if model.period_input:  # The input one period back (`lagged_inputs`), from the history.
    index, valid = _period_taps(model, t, condition_t.periods)  # [batch, taps]
    taps = index  # The period taps' inputs (lpc_period reads there too).
    lagged = history[index % history.shape[0], jnp.arange(inputs_t.shape[0])[:, None]]
    x = x + weights.period_embedding[_tap_ids(model, lagged, valid)].sum(axis=1)
  if model.excitation_input:  # This input minus the prediction the last step made for it.
    residual_t = audio.mu_law_decode(inputs_t, model.num_classes - 1) - prediction
    x = x + weights.excitation_embedding[excitation_classes(model, residual_t, 0.0)]
  if model.lpc_order:  # `linear_prediction` from the last lpc_order inputs in the history.
    lags = t - jnp.arange(model.lpc_order)  # [order]: tap k reads input t - k
    past = audio.mu_law_decode(history[lags % history.shape[0]], model.num_classes - 1)
    past = jnp.where((lags >= 0)[:, None], past, 0.0)  # [order, batch]
    prediction = jnp.einsum("bk,kb->b", condition_t.lpc.astype(jnp.float32), past)
    x = (x + weights.lpc_embedding[audio.mu_law_encode(prediction, model.num_classes - 1)]
         + amplitude_features(model, prediction).astype(model.dtype) @ weights.lpc_amplitude)
  if model.lpc_period:  # The taps' residuals from the histories of inputs and predictions.
    rows = (taps % history.shape[0], jnp.arange(inputs_t.shape[0])[:, None])  # [batch, taps]
    residual = audio.mu_law_decode(history[rows], model.num_classes - 1) - predictions[rows]
    x = x + _long_term_terms(model, weights.lpc_period_embedding,
                             weights.lpc_period_amplitude, prediction, residual, valid)
    predictions = predictions.at[(t + 1) % predictions.shape[0]].set(prediction)
  layer_inputs, zs = [], []
  for i in range(len(model.dilations)):
    z = gated_unit(x @ weights.current_kernel[i] + context[i])  # [batch, G // 2]
    layer_inputs.append(x)
    x = x + z @ weights.residual_kernel[i] + weights.residual_bias[i]
    zs.append(z)
  queues = state.queues.at[offsets + t % sizes].set(jnp.stack(layer_inputs), **in_bounds)

  skips = jnp.concatenate(zs, axis=-1) @ weights.skip_kernel + weights.skip_bias  # [batch, S]
  h = nn.relu(nn.relu(skips) @ weights.hidden_kernel + weights.hidden_bias)  # [batch, H]
  logits = h @ weights.logits_kernel + weights.logits_bias  # [batch, num_outputs]
  return (state.replace(queues=queues, step=t + 1, history=history, predictions=predictions,
                        prediction=prediction, context_inputs=context_inputs,
                        context_terms=context_terms), logits.astype(jnp.float32))
