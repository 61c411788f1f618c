"""Autoregressive sampling from `audiojax.models.wavenet.Model`.

`sample` is the fast sampler: a jitted `lax.scan` over time carrying the per-layer queues of
`wavenet.decode_step`, O(layers) per sample. `naive_sample` recomputes the whole receptive field
through the parallel `Model.__call__` at every step: the slow reference it must agree with.
Both start from the mu-law class of silence and draw sample t by inverse-CDF sampling with the
uniform `jax.random.uniform(rng, (num_samples, batch_size))[t]`, so equal logits give equal
samples. (One uniform per row and step, drawn in bulk before the loop: per-step Gumbel noise
over all classes costs more on CPU than the rest of a batch-16 step's elementwise work.)

`params` is the model's params tree (`variables["params"]`); classes are int32 in
[0, num_classes).
"""

import functools

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from audiojax import audio as audio_lib
from audiojax.models import wavenet


def silence_class(model: wavenet.Model) -> int:
  """The mu-law class of 0.0, the input before the first sample."""
  return int(audio_lib.mu_law_encode(jnp.float32(0.0), model.num_classes - 1))


def next_classes(uniform: jnp.ndarray, logits: jnp.ndarray, temperature: float) -> jnp.ndarray:
  """Draws int32 [batch] from softmax(logits [batch, classes] / temperature).

  uniform: [batch] in [0, 1), inverted through the CDF. Temperature 0 takes the argmax.
  """
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / temperature
  weights = jnp.exp(logits - logits.max(-1, keepdims=True))  # unnormalised probabilities
  # associative_scan: XLA:CPU lowers jnp.cumsum to a quadratic reduce-window (5x slower here).
  cdf = jax.lax.associative_scan(jnp.add, weights, axis=-1)
  below = jnp.sum(cdf <= uniform[:, None] * cdf[:, -1:], axis=-1, dtype=jnp.int32)
  return jnp.minimum(below, logits.shape[-1] - 1)  # u * total may round up to total


def step_uniforms(rng: jax.Array, num_samples: int, batch_size: int) -> jnp.ndarray:
  """The uniforms [num_samples, batch_size] that `next_classes` inverts at each step."""
  return jax.random.uniform(rng, (num_samples, batch_size))  # [time, batch]


def _split_batch(x, mesh: Mesh | None, spec: P):
  """Constrains `x` to be split over the mesh's `data` axis as `spec` says (no-op without one)."""
  return x if mesh is None else jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


@functools.partial(jax.jit,
                   static_argnames=("model", "num_samples", "temperature", "unroll", "mesh"))
def _sample(model, params, rng, first, speaker, *, num_samples, temperature, unroll, mesh):
  weights = wavenet.decode_weights(model, params)
  state = wavenet.init_decode_state(model, weights, first.shape[0], speaker)
  # Each device carries the queues of its own rows: the scan then runs with no communication.
  state = state.replace(queues=_split_batch(state.queues, mesh, P(None, "data", None)),
                        gate_context=_split_batch(state.gate_context, mesh, P(None, "data", None)))

  def step(carry, uniform):
    state, inputs_t = carry
    state, logits = wavenet.decode_step(model, weights, state, inputs_t)
    outputs_t = next_classes(uniform, logits, temperature)
    return (state, outputs_t), outputs_t

  uniforms = _split_batch(step_uniforms(rng, num_samples, first.shape[0]), mesh, P(None, "data"))
  _, classes = jax.lax.scan(step, (state, first), uniforms, unroll=unroll)  # [time, batch]
  return classes.T


def sample(model: wavenet.Model, params, *, num_samples: int, batch_size: int, rng: jax.Array,
           temperature: float = 1.0, speaker: jnp.ndarray | None = None,
           unroll: int = 1, mesh: Mesh | None = None) -> jnp.ndarray:
  """Draws int32 classes [batch_size, num_samples] with the incremental (queue) decoder.

  speaker: int32 [batch_size] for a model with num_speakers > 0. With a `mesh`, the batch is
  split over its `data` axis (batch_size must be a multiple of its size) and each device draws
  its own rows; the samples are identical to the unsplit ones. On a CPU this is how a batch uses
  every core: XLA:CPU runs one small step's ops one after another, but each device's step on
  its own thread (`jax_num_cpu_devices`, see `audiojax.train.sharding.use_cpu_cores`).
  """
  first = jnp.full((batch_size,), silence_class(model), jnp.int32)
  if mesh is not None:
    if batch_size % mesh.shape["data"]:
      raise ValueError(f"batch_size={batch_size} must be a multiple of the mesh's "
                       f"{mesh.shape['data']} data shards")
    rows = NamedSharding(mesh, P("data"))
    first = jax.device_put(first, rows)
    speaker = None if speaker is None else jax.device_put(jnp.asarray(speaker), rows)
    params = jax.device_put(params, NamedSharding(mesh, P()))
  return _sample(model, params, rng, first, speaker, num_samples=num_samples,
                 temperature=float(temperature), unroll=unroll, mesh=mesh)


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "temperature"))
def _naive_sample(model, params, rng, first, speaker, *, num_samples, temperature):
  rf, batch_size = model.receptive_field, first.shape[0]
  # inputs[:, t] is the input at time t: silence, then the samples drawn so far.
  inputs = jnp.zeros((batch_size, max(rf, num_samples + 1)), jnp.int32).at[:, 0].set(first)

  def step(inputs, t_and_uniform):
    t, uniform = t_and_uniform
    # The last rf inputs up to t; before time rf - 1 the window starts at 0 and its tail (not
    # yet drawn) cannot reach logits[:, t] by causality, so the model's own zero padding holds.
    start = jnp.maximum(t - rf + 1, 0)
    window = jax.lax.dynamic_slice_in_dim(inputs, start, rf, axis=1)  # [batch, rf]
    logits = model.apply({"params": params}, window, speaker)  # [batch, rf, classes]
    logits_t = jax.lax.dynamic_index_in_dim(logits, t - start, axis=1, keepdims=False)
    outputs_t = next_classes(uniform, logits_t, temperature)
    inputs = jax.lax.dynamic_update_index_in_dim(inputs, outputs_t, t + 1, axis=1)
    return inputs, None

  uniforms = step_uniforms(rng, num_samples, batch_size)
  inputs, _ = jax.lax.scan(step, inputs, (jnp.arange(num_samples), uniforms))
  return inputs[:, 1:num_samples + 1]


def naive_sample(model: wavenet.Model, params, *, num_samples: int, batch_size: int,
                 rng: jax.Array, temperature: float = 1.0,
                 speaker: jnp.ndarray | None = None) -> jnp.ndarray:
  """Like `sample`, but each step reruns `Model.__call__` on the last receptive_field inputs."""
  first = jnp.full((batch_size,), silence_class(model), jnp.int32)
  return _naive_sample(model, params, rng, first, speaker, num_samples=num_samples,
                       temperature=float(temperature))


@functools.partial(jax.jit, static_argnames=("model",))
def teacher_forced_logits(model: wavenet.Model, params, inputs: jnp.ndarray,
                          speaker: jnp.ndarray | None = None) -> jnp.ndarray:
  """Logits [batch, time, classes] for given inputs int32 [batch, time], one step at a time.

  Equals `model.apply({"params": params}, inputs, speaker)` up to float rounding.
  """
  weights = wavenet.decode_weights(model, params)
  state = wavenet.init_decode_state(model, weights, inputs.shape[0], speaker)
  step = functools.partial(wavenet.decode_step, model, weights)
  _, logits = jax.lax.scan(step, state, inputs.T)  # [time, batch, classes]
  return logits.transpose(1, 0, 2)
