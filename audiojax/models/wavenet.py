"""WaveNet (van den Oord et al., 2016) over mu-law classes, and its incremental decoder.

Parallel (training) path: `Model.__call__` maps input classes `[batch, time]` to next-sample
logits `[batch, time, num_classes]` with causal dilated convolutions.

Incremental (sampling) path, after Fast WaveNet (Paine et al., 2016): every layer keeps a queue of
its last `(kernel_size - 1) * dilation` inputs, so one new sample costs O(layers), not
O(receptive field). It reads the same params tree as `Model.__call__`:

  weights = decode_weights(model, params)                  # fused once, outside the loop
  state = init_decode_state(model, weights, batch_size, speaker)
  state, logits_t = decode_step(model, weights, state, inputs_t)   # inputs_t: int32 [batch]

Params tree (`nn.meta.unbox(model.init(...)["params"])`; `init` returns each leaf in a
`nn.LogicallyPartitioned` box naming its axes for `audiojax.train.sharding`), L layers,
R/G/S/H = residual/gate/skip/head channels:
  embed/embedding                  [num_classes, R]   (== 1x1 conv of the one-hot input)
  layer_{l}/dilated_conv/kernel    [kernel_size, R, G], bias [G]
  layer_{l}/speaker/embedding      [num_speakers, G]  (only when num_speakers > 0)
  layer_{l}/output/kernel          [G // 2, R + S], bias [R + S]  (residual | skip 1x1s)
  head_hidden/kernel [S, H], head_logits/kernel [H, num_classes], with biases.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


def _init(names: tuple[str | None, ...], init=nn.linear.default_kernel_init):
  """`init` with the logical axis names of its output, for sharding (see module docstring)."""
  return nn.with_logical_partitioning(init, names)


def _constrain(x: jnp.ndarray, names: tuple[str | None, ...]) -> jnp.ndarray:
  """Activation sharding by logical names (a no-op outside `nn.logical_axis_rules`)."""
  return nn.with_logical_constraint(x, names)


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
  """Number of input samples one output depends on: (kernel_size - 1) * sum(dilations) + 1."""
  return (kernel_size - 1) * sum(dilations) + 1


def _check_speaker(model: "Model", speaker: jnp.ndarray | None) -> jnp.ndarray | None:
  """The speaker ids a conditional model needs; None for an unconditional model."""
  if not model.num_speakers:
    return None
  if speaker is None:
    raise ValueError(f"model has num_speakers={model.num_speakers}: pass speaker ids")
  return speaker


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
    time = x.shape[1]
    lags = [(self.kernel_size - 1 - j) * self.dilation for j in range(self.kernel_size)]
    taps = [jnp.pad(x, ((0, 0), (lag, 0), (0, 0)))[:, :time] for lag in lags]  # k x [b, t, C]
    stacked = jnp.concatenate(taps, axis=-1)  # [b, t, k * C]
    return stacked @ kernel.reshape(-1, self.features) + bias


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
  def __call__(self, x: jnp.ndarray, speaker: jnp.ndarray | None = None):
    """x: [batch, time, R], speaker: int32 [batch] -> (x + residual [b, t, R], skip [b, t, S])."""
    gates = CausalConv(self.gate_channels, self.kernel_size, self.dilation, self.dtype,
                       name="dilated_conv")(x)  # [b, t, G]
    if speaker is not None:  # V_f^T h and V_g^T h for a one-hot speaker h.
      gates += nn.Embed(self.num_speakers, self.gate_channels, dtype=self.dtype, name="speaker",
                        embedding_init=_init((None, "mlp"), nn.linear.default_embed_init)
                        )(speaker)[:, None, :]
    z = gated_unit(gates)  # [b, t, G // 2]
    out = nn.Dense(self.residual_channels + self.skip_channels, dtype=self.dtype,
                   name="output", kernel_init=_init(("mlp", "embed")),
                   bias_init=_init(("embed",), nn.initializers.zeros))(z)
    residual, skip = jnp.split(out, [self.residual_channels], axis=-1)
    return _constrain(x + residual, ("batch", "time", None)), skip


class Model(nn.Module):
  """WaveNet with a softmax over `num_classes` mu-law classes.

  The dilated conv of each layer has `gate_channels` outputs, split into the tanh (filter) and
  sigmoid (gate) halves, so the gated unit has `gate_channels // 2` channels. `num_speakers > 0`
  adds global conditioning on a speaker id.
  """
  num_classes: int = 256
  residual_channels: int = 64
  gate_channels: int = 128
  skip_channels: int = 256
  head_channels: int = 256
  kernel_size: int = 2
  dilation_cycles: int = 3
  max_dilation: int = 512
  num_speakers: int = 0
  dtype: Any = jnp.float32
  remat: str = "none"  # Recompute layer activations in the backward pass: none | full | dots.

  @property
  def dilations(self) -> tuple[int, ...]:
    """1, 2, 4, ..., max_dilation, repeated dilation_cycles times (one entry per layer)."""
    cycle = tuple(2**i for i in range(self.max_dilation.bit_length()))
    return cycle * self.dilation_cycles

  @property
  def receptive_field(self) -> int:
    """Receptive field in samples (e.g. 3070 = 192 ms at 16 kHz for the paper stack)."""
    return receptive_field(self.kernel_size, self.dilations)

  @nn.compact
  def __call__(self, inputs: jnp.ndarray, speaker: jnp.ndarray | None = None) -> jnp.ndarray:
    """inputs: int32 [batch, time], speaker: int32 [batch] -> logits float32 [b, t, classes].

    `logits[:, t]` is the distribution of sample t + 1 given `inputs[:, :t + 1]`.
    """
    assert self.gate_channels % 2 == 0, "gate_channels is split into filter and gate halves"
    assert self.max_dilation & (self.max_dilation - 1) == 0, "max_dilation is a power of 2"
    speaker = _check_speaker(self, speaker)
    x = nn.Embed(self.num_classes, self.residual_channels, dtype=self.dtype, name="embed",
                 embedding_init=_init(("classes", "embed"), nn.linear.default_embed_init)
                 )(inputs)  # [b, t, R]
    x = _constrain(x, ("batch", "time", None))
    layer = remat(ResidualLayer, self.remat)
    skips = 0.0
    for i, dilation in enumerate(self.dilations):
      x, skip = layer(self.residual_channels, self.gate_channels, self.skip_channels,
                      self.kernel_size, dilation, self.num_speakers, self.dtype,
                      name=f"layer_{i}")(x, speaker)
      skips += skip  # [b, t, S]
    h = nn.relu(skips)
    h = nn.relu(nn.Dense(self.head_channels, dtype=self.dtype, name="head_hidden",
                         kernel_init=_init(("embed", "mlp")),
                         bias_init=_init(("mlp",), nn.initializers.zeros))(h))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head_logits",
                      kernel_init=_init(("mlp", "vocab")),
                      bias_init=_init(("vocab",), nn.initializers.zeros))(h)
    logits = _constrain(logits, ("batch", "time", "vocab"))
    return logits.astype(jnp.float32)  # [b, t, classes]


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
  embedding: jax.Array  # [classes, R]
  past_kernel: jax.Array  # [L, k - 1, R, G]: conv taps at t - (k - 1) d, ..., t - d
  current_kernel: tuple[jax.Array, ...]  # L x [R, G]: conv tap at t
  gate_bias: jax.Array  # [L, G]
  speaker_embedding: jax.Array | None  # [L, num_speakers, G]
  residual_kernel: tuple[jax.Array, ...]  # L x [G // 2, R]
  residual_bias: tuple[jax.Array, ...]  # L x [R]
  skip_kernel: jax.Array  # [L * G // 2, S]: every layer's skip 1x1, summed by one matmul
  skip_bias: jax.Array  # [S]: sum of the layers' skip biases
  hidden_kernel: jax.Array  # [S, H]
  hidden_bias: jax.Array  # [H]
  logits_kernel: jax.Array  # [H, classes]
  logits_bias: jax.Array  # [classes]


class DecodeState(struct.PyTreeNode):
  """What one step needs from the past: every layer's queue of inputs and the time index."""
  queues: jax.Array  # [sum_l (k - 1) d_l, batch, R]: all layers' ring buffers, see `queue_layout`
  gate_context: jax.Array  # [L, batch, G]: gate biases + global conditioning, fixed in time
  step: jax.Array  # int32 []: time index of the next input


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
  speaker = None
  if model.num_speakers:
    speaker = jnp.stack([cast(p["speaker"]["embedding"]) for p in layers])
  return DecodeWeights(
      embedding=cast(params["embed"]["embedding"]),
      past_kernel=jnp.stack([w[:-1] for w in conv]),
      current_kernel=tuple(w[-1] for w in conv),
      gate_bias=jnp.stack([cast(p["dilated_conv"]["bias"]) for p in layers]),
      speaker_embedding=speaker,
      residual_kernel=tuple(w[:, :r] for w in out),
      residual_bias=tuple(b[:r] for b in out_bias),
      skip_kernel=jnp.concatenate([w[:, r:] for w in out]),
      skip_bias=sum(b[r:] for b in out_bias),
      hidden_kernel=cast(params["head_hidden"]["kernel"]),
      hidden_bias=cast(params["head_hidden"]["bias"]),
      logits_kernel=cast(params["head_logits"]["kernel"]),
      logits_bias=cast(params["head_logits"]["bias"]))


def init_decode_state(model: Model, weights: DecodeWeights, batch_size: int,
                      speaker: jnp.ndarray | None = None) -> DecodeState:
  """Empty queues (zeros, as the causal padding of `__call__`); speaker: int32 [batch]."""
  speaker = _check_speaker(model, speaker)
  sizes, _, _ = queue_layout(model)
  queues = jnp.zeros((sizes.sum(), batch_size, model.residual_channels), model.dtype)
  context = jnp.broadcast_to(weights.gate_bias[:, None, :],
                             (len(model.dilations), batch_size, model.gate_channels))
  if speaker is not None:
    context = context + weights.speaker_embedding[:, speaker, :]  # [L, batch, G]
  return DecodeState(queues=queues, gate_context=context, step=jnp.zeros((), jnp.int32))


def decode_step(model: Model, weights: DecodeWeights, state: DecodeState,
                inputs_t: jnp.ndarray) -> tuple[DecodeState, jnp.ndarray]:
  """Consumes the input at time `state.step`; inputs_t: int32 [batch] -> logits [batch, classes].

  The conv taps on the past are already in the queues, so all layers' past taps go through one
  gather and one batched matmul before the sequential residual chain; the chain's layer inputs
  go back into the queues with one scatter at the end.
  """
  sizes, offsets, lags = queue_layout(model)
  t = state.step
  in_bounds = dict(mode="promise_in_bounds", unique_indices=True)
  past = state.queues.at[offsets[:, None] + (t - lags) % sizes[:, None]].get(**in_bounds)
  # past: [L, k - 1, batch, R] -> gate pre-activations from the past: [L, batch, G]. Any
  # per-step term that does not depend on this step's layer inputs (e.g. local conditioning:
  # one matmul for all layers) adds to `context` here.
  context = state.gate_context + jnp.einsum("ljbr,ljrg->lbg", past, weights.past_kernel)

  x = weights.embedding[inputs_t]  # [batch, R]
  layer_inputs, zs = [], []
  for i in range(len(model.dilations)):
    z = gated_unit(x @ weights.current_kernel[i] + context[i])  # [batch, G // 2]
    layer_inputs.append(x)
    x = x + z @ weights.residual_kernel[i] + weights.residual_bias[i]
    zs.append(z)
  queues = state.queues.at[offsets + t % sizes].set(jnp.stack(layer_inputs), **in_bounds)

  skips = jnp.concatenate(zs, axis=-1) @ weights.skip_kernel + weights.skip_bias  # [batch, S]
  h = nn.relu(nn.relu(skips) @ weights.hidden_kernel + weights.hidden_bias)  # [batch, H]
  logits = h @ weights.logits_kernel + weights.logits_bias  # [batch, classes]
  return state.replace(queues=queues, step=t + 1), logits.astype(jnp.float32)
