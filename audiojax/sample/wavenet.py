"""Autoregressive sampling from `audiojax.models.wavenet.Model`.

`sample` is the fast sampler: a jitted `lax.scan` over time carrying the per-layer queues of
`wavenet.decode_step`, O(layers) per sample. `naive_sample` recomputes the whole receptive field
through the parallel `Model.__call__` at every step: the slow reference it must agree with.
Both start from silence (the mu-law class of 0.0, or the amplitude 0.0 for a mixture model) and
draw sample t with the uniforms `step_uniforms(rng, num_samples, batch_size, model)[t]`, so equal
outputs give equal samples. (Uniforms drawn in bulk before the loop: per-step Gumbel noise over
all classes costs more on CPU than the rest of a batch-16 step's elementwise work.)

softmax: one uniform per row and step, inverted through the class CDF (`next_classes`); the
samples are int32 classes in [0, num_classes). mol: two per row and step (`next_amplitudes`):
the first picks the component by the same inverse CDF over its logits, the second draws from
that logistic by its inverse CDF; the samples are float amplitudes on the 16-bit grid.
Temperature T divides the (class or component) logits and, for mol, multiplies the logistic
scales; T = 0 takes the argmax (class, or component and then its mean).
With `lpc_excitation` the class drawn is the excitation's; the sample is the class of the
step's linear prediction plus it (`wavenet.sample_classes`).

Priming (`prompt: [batch, P]` classes or amplitudes): the first P samples are given, not drawn.
The decoder consumes them teacher-forced (filling its queues exactly as if it had drawn them),
then draws samples P..num_samples - 1 with the same uniforms `step_uniforms(...)[t]`, so a
prompt equal to the first P samples of an unprimed draw reproduces that draw.

A locally conditioned model takes `condition: [batch, frames, C]` with frames * hop >=
num_samples: sample n sees frame n // hop (`audiojax.models.wavenet`). The features are
upsampled once before the loop; the layers' conditioning terms [L, batch, G] of each step are
computed CHUNK_STEPS steps at a time, one matmul per chunk, by an outer scan around the per-step
scan (`_scan_steps`). Why chunks: precomputing the terms for the whole clip ([time, L, batch, G])
takes L G / C times the upsampled features' memory: ~250 MB per second of 16 kHz audio and row
for the paper stack (L G = 30 x 128, 48x that of 80 mels). One [batch, C] x [C, L G] matmul in
every step needs no memory but costs C L G multiply-adds per row and step, more than the past
taps' einsum ((k - 1) R L G) once C > (k - 1) R; on a CPU (2 cores, 12 layers, G = 64, 80
features, batch 2) it ran at 19k samples/s against 51k unconditioned. Chunked: 35-39k, whatever
C (the rest is the per-step add and the nested loop), with CHUNK_STEPS steps' terms in memory.
In repeat mode (frames repeated over their samples) each frame's terms are computed once,
[frames, L, batch, G] for the clip, hop times less than per step; a chunk then adds the
terms of its steps' frames to those of the sample-rate channels (the excitation's), as
training does (`wavenet.SamplerCondition`, `wavenet.ConditionProjection`).

A model with a context stack (`context_hop` > 0) needs nothing more: each step keeps its
input's amplitude in the decoder state, and the last step of a frame reruns the stack over the
inputs it reads (`wavenet.decode_step`, a `lax.cond`: once per context_hop steps).

`params` is the model's params tree (`variables["params"]`).
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


Temperature = float | jnp.ndarray  # One for all rows, or float32 [batch] (each > 0).


def _is_zero(temperature: Temperature) -> bool:
  return isinstance(temperature, float) and temperature == 0.0


def next_classes(uniform: jnp.ndarray, logits: jnp.ndarray, temperature: Temperature,
                 probability_floor: float = 0.0) -> jnp.ndarray:
  """Draws int32 [batch] from softmax(logits [batch, classes] / temperature).

  uniform: [batch] in [0, 1), inverted through the CDF. Temperature 0 takes the argmax.
  probability_floor c (below 1 / classes): LPCNet's cut of the tails, each probability p
  becomes max(p - c, 0), renormalised, so that classes under c are never drawn (the rare
  far-off draws that sound as clicks and hiss); the most likely class always keeps some.
  """
  if _is_zero(temperature):
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / (temperature[:, None] if jnp.ndim(temperature) else temperature)
  weights = jnp.exp(logits - logits.max(-1, keepdims=True))  # unnormalised probabilities
  if probability_floor:
    weights = jnp.maximum(weights - probability_floor * weights.sum(-1, keepdims=True), 0.0)
  # associative_scan: XLA:CPU lowers jnp.cumsum to a quadratic reduce-window (5x slower here).
  cdf = jax.lax.associative_scan(jnp.add, weights, axis=-1)
  below = jnp.sum(cdf <= uniform[:, None] * cdf[:, -1:], axis=-1, dtype=jnp.int32)
  return jnp.minimum(below, logits.shape[-1] - 1)  # u * total may round up to total


def next_amplitudes(uniforms: jnp.ndarray, outputs: jnp.ndarray, temperature: Temperature,
                    log_scale_min: float) -> jnp.ndarray:
  """Draws float [batch] on the 16-bit grid from the mixture outputs [batch, 3K].

  uniforms: [batch, 2] in [0, 1): the component by `next_classes` on its logits, then
  mean + T s ln(u / (1 - u)) (the logistic's inverse CDF), clipped to [-1, 1] and rounded to
  the nearest level: exactly a draw from the discretized mixture at T = 1.
  """
  logits, means, log_scales = wavenet.split_mixture(outputs, log_scale_min)
  component = next_classes(uniforms[:, 0], logits, temperature)[:, None]  # [batch, 1]
  x = jnp.take_along_axis(means, component, axis=-1)[:, 0]
  if not _is_zero(temperature):
    scale = temperature * jnp.exp(jnp.take_along_axis(log_scales, component, axis=-1)[:, 0])
    u = uniforms[:, 1]
    x = x + scale * (jnp.log(u) - jnp.log1p(-u))  # u = 0 gives -inf: clipped to -1
  levels = audio_lib.linear_encode(x, wavenet.MOL_LEVELS)  # clips to [-1, 1]
  return audio_lib.linear_decode(levels, wavenet.MOL_LEVELS)


def next_inputs(model: wavenet.Model, uniforms: jnp.ndarray, outputs: jnp.ndarray,
                temperature: Temperature, probability_floor: float = 0.0) -> jnp.ndarray:
  """The sample drawn from one step's outputs [batch, num_outputs]: classes or amplitudes
  (`probability_floor`: softmax only, `next_classes`)."""
  if model.output == "mol":
    return next_amplitudes(uniforms, outputs, temperature, model.log_scale_min)
  return next_classes(uniforms, outputs, temperature, probability_floor)


def step_uniforms(rng: jax.Array, num_samples: int, batch_size: int,
                  model: wavenet.Model | None = None) -> jnp.ndarray:
  """The uniforms [num_samples, batch_size] that `next_classes` inverts at each step, or
  [num_samples, batch_size, 2] for `next_amplitudes` when `model` outputs a mixture."""
  if model is not None and model.output == "mol":
    return jax.random.uniform(rng, (num_samples, batch_size, 2))
  return jax.random.uniform(rng, (num_samples, batch_size))  # [time, batch]


def first_inputs(model: wavenet.Model, batch_size: int) -> jnp.ndarray:
  """The input before the first sample, silence: [batch_size] classes or amplitudes."""
  if model.output == "mol":
    return jnp.zeros((batch_size,), jnp.float32)
  return jnp.full((batch_size,), silence_class(model), jnp.int32)


def _check_length(model: wavenet.Model, condition, num_samples: int) -> None:
  if condition is not None and condition.shape[1] * model.condition_hop < num_samples:
    raise ValueError(f"condition has {condition.shape[1]} frames of {model.condition_hop} "
                     f"samples: too few for num_samples={num_samples}")


EXCITATION_STEPS = 64  # excitation_limit's running mean square: over ~4 ms at 16 kHz.
CHUNK_STEPS = 256  # Steps whose conditioning terms one matmul computes (see module docstring).


def _scan_steps(model: wavenet.Model, weights: wavenet.DecodeWeights, step, carry, xs,
                condition: wavenet.SamplerCondition | None, start: int = 0, unroll: int = 1):
  """`jax.lax.scan(step, carry, (xs, terms))` over time, where `terms` are the conditioning
  (`wavenet.StepCondition`: gate terms [time, L, batch, G], periods) of steps start, start +
  1, ... from `condition`, its rows time-major [time, batch, C_r] (None: no conditioning),
  computed CHUNK_STEPS at a time. Returns (carry, ys) as `lax.scan` does."""
  if condition is None:
    return jax.lax.scan(step, carry, (xs, None), unroll=unroll)
  time = condition.rows.shape[0]
  size = min(CHUNK_STEPS, time)
  chunks = -(-time // size)

  def split(x):  # [time, ...] -> [chunks, size, ...], the last chunk padded
    x = jnp.pad(x, [(0, chunks * size - time)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape(chunks, size, *x.shape[1:])

  def chunk_step(carry, chunk):
    xs, rows, chunk_start = chunk
    terms = wavenet.condition_terms(model, weights, rows, condition.frame_terms, chunk_start)
    return jax.lax.scan(step, carry, (xs, terms), unroll=unroll)

  starts = start + size * jnp.arange(chunks)
  carry, ys = jax.lax.scan(chunk_step, carry,
                           (*jax.tree.map(split, (xs, condition.rows)), starts))
  return carry, jax.tree.map(lambda y: y.reshape(-1, *y.shape[2:])[:time], ys)


def _time_major(condition: wavenet.SamplerCondition, num_samples: int,
                mesh: Mesh | None) -> wavenet.SamplerCondition:
  """The first num_samples rows, time-major [time, batch, C_r], each device's rows its own."""
  rows = _split_batch(condition.rows[:, :num_samples].transpose(1, 0, 2), mesh,
                      P(None, "data", None))
  frame_terms = condition.frame_terms
  if frame_terms is not None:  # [frames, L, batch, G]
    frame_terms = _split_batch(frame_terms, mesh, P(None, None, "data", None))
  return wavenet.SamplerCondition(rows, frame_terms)


def _steps(condition: wavenet.SamplerCondition, start: int,
           stop: int) -> wavenet.SamplerCondition:
  """The rows of steps start .. stop - 1 (the frame terms stay whole: `start` indexes them)."""
  return condition.replace(rows=condition.rows[start:stop])


def _split_batch(x, mesh: Mesh | None, spec: P):
  """Constrains `x` to be split over the mesh's `data` axis as `spec` says (no-op without one)."""
  return x if mesh is None else jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


@functools.partial(jax.jit,
                   static_argnames=("model", "num_samples", "temperature", "voiced_temperature",
                                    "probability_floor", "excitation_limit", "unroll", "mesh"))
def _sample(model, params, rng, first, speaker, condition, prompt, *, num_samples, temperature,
            voiced_temperature, probability_floor, excitation_limit, unroll, mesh):
  weights = wavenet.decode_weights(model, params)
  state = wavenet.init_decode_state(model, weights, first.shape[0], speaker)
  # Each device carries the queues of its own rows: the scan then runs with no communication.
  rows = P(None, "data", None)
  state = state.replace(queues=_split_batch(state.queues, mesh, rows),
                        gate_context=_split_batch(state.gate_context, mesh, rows),
                        history=None if state.history is None
                        else _split_batch(state.history, mesh, P(None, "data")),
                        predictions=None if state.predictions is None
                        else _split_batch(state.predictions, mesh, P(None, "data")),
                        prediction=None if state.prediction is None
                        else _split_batch(state.prediction, mesh, P("data")),
                        context_inputs=None if state.context_inputs is None
                        else _split_batch(state.context_inputs, mesh, P(None, "data")),
                        context_terms=None if state.context_terms is None
                        else _split_batch(state.context_terms, mesh, rows))
  levels = None
  if excitation_limit:  # [time, batch]: each step's frame's excitation level.
    levels = jnp.repeat(wavenet.excitation_levels(model, condition), model.condition_hop,
                        axis=1)[:, :num_samples]
    levels = _split_batch(levels.T, mesh, P(None, "data"))
  if condition is not None:  # Upsampled (or the frames projected) once, before the loop.
    condition = _time_major(wavenet.sampler_condition(model, params, weights, condition),
                            num_samples, mesh)
  excitations = jnp.abs(audio_lib.mu_law_decode(jnp.arange(model.num_classes),
                                                model.num_classes - 1))  # [classes]

  def step(carry, xs):
    # power: excitation_limit's running mean square of the drawn excitation [batch], else None.
    (state, inputs_t, power), ((uniform, level_t), condition_t) = carry, xs
    state, outputs = wavenet.decode_step(model, weights, state, inputs_t, condition_t)
    if level_t is not None:  # Over the limit: only excitations within the level (or the least).
      cap = jnp.where(power > (excitation_limit * level_t) ** 2, level_t, jnp.inf)
      allowed = excitations <= jnp.maximum(cap, excitations.min())[:, None]
      outputs = jnp.where(allowed, outputs, -jnp.inf)
    temperature_t = temperature if voiced_temperature is None else jnp.where(
        condition_t.voiced, voiced_temperature, temperature)  # [batch]
    outputs_t = next_inputs(model, uniform, outputs, temperature_t, probability_floor)
    if level_t is not None:
      power = power + (excitations[outputs_t] ** 2 - power) / EXCITATION_STEPS
    if model.lpc_excitation:  # The drawn excitation plus the prediction: the sample.
      outputs_t = wavenet.sample_classes(model, outputs_t, state.prediction)
    return (state, outputs_t, power), outputs_t

  uniforms = step_uniforms(rng, num_samples, first.shape[0], model)
  uniforms = _split_batch(uniforms, mesh, P(None, "data", *[None] * (uniforms.ndim - 2)))
  given = 0 if prompt is None else prompt.shape[1]
  if given:  # Teacher-force the inputs before the prompt's last sample (module docstring).
    def force(state, xs):
      return wavenet.decode_step(model, weights, state, *xs)[0], None

    forced = jnp.concatenate([first[:, None], prompt[:, :-1]], axis=1).T  # [P, batch]
    state, _ = _scan_steps(model, weights, force, state, forced,
                           None if condition is None else _steps(condition, 0, given))
    first = prompt[:, -1]
  carry = (state, first, None if levels is None else jnp.zeros(first.shape, jnp.float32))
  _, drawn = _scan_steps(model, weights, step, carry,
                         (uniforms[given:], None if levels is None else levels[given:]),
                         None if condition is None else _steps(condition, given, num_samples),
                         given, unroll)
  drawn = drawn.T  # [batch, num_samples - P]
  return drawn if not given else jnp.concatenate([prompt.astype(drawn.dtype), drawn], axis=1)


def sample(model: wavenet.Model, params, *, num_samples: int, batch_size: int, rng: jax.Array,
           temperature: float = 1.0, speaker: jnp.ndarray | None = None,
           condition: jnp.ndarray | None = None, unroll: int = 1,
           mesh: Mesh | None = None, prompt: jnp.ndarray | None = None,
           voiced_temperature: float | None = None,
           probability_floor: float = 0.0, excitation_limit: float = 0.0) -> jnp.ndarray:
  """Draws [batch_size, num_samples] with the incremental (queue) decoder: int32 classes
  (softmax) or float amplitudes on the 16-bit grid (mol).

  prompt: [batch_size, P] (P < num_samples) first samples to continue from, in the samples'
  own form (classes or amplitudes); they are returned as the output's first P samples.

  speaker: int32 [batch_size] for a model with num_speakers > 0; condition: [batch_size,
  frames, C] for a model with condition_channels > 0. With a `mesh`, the batch is
  split over its `data` axis (batch_size must be a multiple of its size) and each device draws
  its own rows; the samples are identical to the unsplit ones. On a CPU this is how a batch uses
  every core: XLA:CPU runs one small step's ops one after another, but each device's step on
  its own thread (`jax_num_cpu_devices`, see `audiojax.train.sharding.use_cpu_cores`).

  voiced_temperature: for a model with an excitation (`excitation_channels > 0`), the
  temperature of the steps its voiced flag marks (LPCNet's lower temperature in voiced speech:
  a periodic waveform drawn with less noise); `temperature` is then the unvoiced steps'.
  probability_floor: softmax classes less likely than this are never drawn (`next_classes`).
  excitation_limit: K > 0, for a model of the excitation (`lpc_excitation`): a gain control.
  While the RMS of the drawn excitation (a running mean square over EXCITATION_STEPS steps)
  is above K times its frame's level (`wavenet.excitation_levels`: the residual the
  frame's log-mel envelope leaves), only excitations within the level are drawn, so the draws
  cannot run on far above what the features describe. On the built-in corpus the real
  residual's RMS is ~2.4 times the level; the quick start's runaway draws reach 19 times.
  """
  _check_length(model, condition, num_samples)
  if probability_floor and not (model.output == "softmax"
                                and 0 < probability_floor < 1 / model.num_classes):
    raise ValueError(f"probability_floor={probability_floor}: a softmax model's floor is in "
                     f"(0, 1 / num_classes = {1 / model.num_classes:.4f})")
  if excitation_limit and not (model.lpc_excitation and excitation_limit > 0):
    raise ValueError(f"excitation_limit={excitation_limit}: needs a model of the excitation "
                     "(lpc_excitation) and a limit > 0")
  if voiced_temperature is not None:
    if not model.excitation_channels:
      raise ValueError("voiced_temperature needs a model with an excitation "
                       "(excitation_channels > 0): nothing marks its voiced steps")
    if not (voiced_temperature > 0 and temperature > 0):
      raise ValueError(f"voiced_temperature={voiced_temperature} with temperature="
                       f"{temperature}: both must be > 0")
    voiced_temperature = float(voiced_temperature)
  first = first_inputs(model, batch_size)
  if prompt is not None:
    prompt = jnp.asarray(prompt, first.dtype)
    if prompt.shape[0] != batch_size or not 0 < prompt.shape[1] < num_samples:
      raise ValueError(f"prompt {prompt.shape}: need [batch_size={batch_size}, P] with "
                       f"0 < P < num_samples={num_samples}")
  if mesh is not None:
    if batch_size % mesh.shape["data"]:
      raise ValueError(f"batch_size={batch_size} must be a multiple of the mesh's "
                       f"{mesh.shape['data']} data shards")
    rows = NamedSharding(mesh, P("data"))
    first = jax.device_put(first, rows)
    speaker = None if speaker is None else jax.device_put(jnp.asarray(speaker), rows)
    condition = None if condition is None else jax.device_put(jnp.asarray(condition), rows)
    prompt = None if prompt is None else jax.device_put(prompt, rows)
    params = jax.device_put(params, NamedSharding(mesh, P()))
  return _sample(model, params, rng, first, speaker, condition, prompt, num_samples=num_samples,
                 temperature=float(temperature), voiced_temperature=voiced_temperature,
                 probability_floor=float(probability_floor),
                 excitation_limit=float(excitation_limit), unroll=unroll, mesh=mesh)


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "temperature"))
def _naive_sample(model, params, rng, first, speaker, condition, *, num_samples, temperature):
  # The inputs an output depends on: its receptive field, which with period_input (lpc_order)
  # reaches back from each position's input one period (lpc_order - 1 inputs) further too,
  # and with both (lpc_period) the tap's own prediction lpc_order before the tap.
  rf = model.receptive_field + wavenet.history_size(model) + model.lpc_order
  if model.context_hop:  # The context stack's frames start at input 0: every window does.
    rf = num_samples + 1
  batch_size = first.shape[0]
  # inputs[:, t] is the input at time t: silence, then the samples drawn so far.
  inputs = jnp.zeros((batch_size, max(rf, num_samples + 1)), first.dtype).at[:, 0].set(first)

  def step(inputs, t_and_uniform):
    t, uniform = t_and_uniform
    # The last rf inputs up to t; before time rf - 1 the window starts at 0 and its tail (not
    # yet drawn) cannot reach logits[:, t] by causality, so the model's own zero padding holds.
    start = jnp.maximum(t - rf + 1, 0)
    window = jax.lax.dynamic_slice_in_dim(inputs, start, rf, axis=1)  # [batch, rf]
    # Position i of the window draws sample start + i: its conditioning row.
    outputs = model.apply({"params": params}, window, speaker, condition, start)
    outputs_t = jax.lax.dynamic_index_in_dim(outputs, t - start, axis=1, keepdims=False)
    outputs_t = next_inputs(model, uniform, outputs_t, temperature)
    if model.lpc_excitation:
      prediction = wavenet.linear_predictions(model, window, condition, start)
      outputs_t = wavenet.sample_classes(
          model, outputs_t, jax.lax.dynamic_index_in_dim(prediction, t - start, 1, False))
    inputs = jax.lax.dynamic_update_index_in_dim(inputs, outputs_t, t + 1, axis=1)
    return inputs, None

  uniforms = step_uniforms(rng, num_samples, batch_size, model)
  inputs, _ = jax.lax.scan(step, inputs, (jnp.arange(num_samples), uniforms))
  return inputs[:, 1:num_samples + 1]


def naive_sample(model: wavenet.Model, params, *, num_samples: int, batch_size: int,
                 rng: jax.Array, temperature: float = 1.0, speaker: jnp.ndarray | None = None,
                 condition: jnp.ndarray | None = None) -> jnp.ndarray:
  """Like `sample`, but each step reruns `Model.__call__` on the last receptive_field inputs
  (with `period_input` or `lpc_order`, history_size + lpc_order more; with a context stack,
  all of them)."""
  _check_length(model, condition, num_samples)
  return _naive_sample(model, params, rng, first_inputs(model, batch_size), speaker, condition,
                       num_samples=num_samples, temperature=float(temperature))


@functools.partial(jax.jit, static_argnames=("model",))
def teacher_forced_logits(model: wavenet.Model, params, inputs: jnp.ndarray,
                          speaker: jnp.ndarray | None = None,
                          condition: jnp.ndarray | None = None) -> jnp.ndarray:
  """Outputs [batch, time, num_outputs] for given inputs [batch, time], one step at a time.

  Equals `model.apply({"params": params}, inputs, speaker, condition)` up to float rounding.
  """
  weights = wavenet.decode_weights(model, params)
  state = wavenet.init_decode_state(model, weights, inputs.shape[0], speaker)
  if condition is not None:
    condition = _time_major(wavenet.sampler_condition(model, params, weights, condition),
                            inputs.shape[1], None)

  def step(state, xs):
    return wavenet.decode_step(model, weights, state, *xs)

  _, outputs = _scan_steps(model, weights, step, state, inputs.T, condition)  # [t, b, outputs]
  return outputs.transpose(1, 0, 2)
