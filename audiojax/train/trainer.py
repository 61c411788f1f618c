"""The one training loop for every model family.

`train_and_evaluate(config, workdir)` trains `config.model` on `config.data`, resuming from
WORKDIR's latest checkpoint. A model family plugs in through `audiojax.train.tasks` (its
loss and sampler); the loop never knows which model it trains. A fresh run with
`config.train.init_from=RUN` starts from RUN's parameters where names and shapes match
(`params_from_run`; `train.init_exclude` names modules left at their initialisation), e.g.
SPIN fine-tuning a speech encoder; `optimizer.frozen` leaves modules untrained.

  WORKDIR/config.json        the config of the run
  WORKDIR/checkpoints/<step> orbax checkpoints (train state, data iterator, model meta)
  WORKDIR/tensorboard/       scalars, audio samples, spectrogram images
  WORKDIR/samples/step_<N>/  the periodic samples as .wav files
"""

import json
import logging
import math
import os
import signal
import time
from typing import Any

import flax
import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from audiojax import models
from audiojax.data import audio_io, pipeline
from audiojax.eval import voicing
from audiojax.train import checkpoint, optimizer, sharding, summary, tasks


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 []
  params: Any
  opt_state: Any
  rng: jax.Array  # uint32 [2]: base key; step s uses fold_in(rng, s).
  model_state: Any = flax.struct.field(default_factory=dict)  # Non-parameter collections.

  @property
  def variables(self) -> dict:
    """What `model.apply` takes: params and the other collections."""
    return {"params": self.params, **self.model_state}


def create_train_state(model, task: tasks.Task, tx: optax.GradientTransformation,
                       example_batch: dict, seed: int) -> TrainState:
  """Initial parameters and optimizer state, leaves still in their logical-axis boxes.

  Use under `jax.eval_shape` for the shardings, and under jit with `nn.meta.unbox` to place
  them (`init_state`).
  """
  rng = jax.random.PRNGKey(seed)
  variables = dict(task.init_fn(model, jax.random.fold_in(rng, 1), example_batch))
  params = variables.pop("params")
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    rng=rng, model_state=variables)


def _split_microbatches(batch: dict, microbatches: int, index: jax.Array) -> dict:
  """Microbatch `index` of `microbatches`: rows index, index + m, ... (every shard's rows)."""
  def take(x):
    rows = x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:])
    return jax.lax.dynamic_index_in_dim(rows, index, axis=1, keepdims=False)
  return jax.tree.map(take, batch)


def make_train_step(model, task: tasks.Task, tx: optax.GradientTransformation, schedule,
                    microbatches: int = 1, rng_impl: str = ""):
  """train_step(state, batch, rng) -> (state, metrics); pure, for jit.

  With `microbatches` > 1 the batch is split and the gradients accumulated, weighted by each
  microbatch's `num_predictions` (when the loss reports it), so the update equals one step on
  the whole batch with less activation memory; non-parameter state (e.g. EMA codebooks) is
  updated by each microbatch in turn.

  `rng_impl` (config `train.rng_impl`): the PRNG the step's randomness (dropout, masks) is
  drawn with, keyed by bits of `rng`: "" keeps `rng`'s own (threefry); "rbg" / "unsafe_rbg"
  use the hardware RNG generator, far cheaper on GPU/TPU where dropout draws a bit per
  activation (MaxText's default; on an H100, dropout's threefry bits took ~6.7 ms of an 80 ms
  AudioLM step: benchmarks/RESULTS.md). Still deterministic given the step, so resumes stay
  exact on the same backend.
  """

  def loss_of_params(params, model_state, batch, rng):
    return task.loss_fn(model, {"params": params, **model_state}, batch, rng, True)

  grad_fn = jax.value_and_grad(loss_of_params, has_aux=True)

  def grads_and_metrics(params, model_state, batch, rng):
    (_, (metrics, new_state)), grads = grad_fn(params, model_state, batch, rng)
    return grads, metrics, {**model_state, **new_state}

  def accumulate(params, model_state, batch, rng):
    def body(i, carry):
      grad_sum, metric_sum, weight_sum, model_state = carry
      grads, metrics, model_state = grads_and_metrics(
          params, model_state, _split_microbatches(batch, microbatches, i),
          jax.random.fold_in(rng, i))
      weight = metrics.get("num_predictions", jnp.float32(1.0))
      grad_sum = jax.tree.map(lambda a, g: a + weight * g, grad_sum, grads)
      metric_sum = jax.tree.map(lambda a, m: a + weight * m, metric_sum, metrics)
      return grad_sum, metric_sum, weight_sum + weight, model_state

    first = _split_microbatches(batch, microbatches, 0)
    metric_shapes = jax.eval_shape(lambda: grads_and_metrics(params, model_state, first, rng)[1])
    zeros = lambda tree: jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), tree)
    grad_sum, metric_sum, weight_sum, model_state = jax.lax.fori_loop(
        0, microbatches, body,
        (zeros(params), zeros(metric_shapes), jnp.float32(0.0), model_state))
    weight_sum = jnp.maximum(weight_sum, 1e-9)
    metrics = jax.tree.map(lambda m: m / weight_sum, metric_sum)
    if "num_predictions" in metrics:
      metrics["num_predictions"] = weight_sum
    return jax.tree.map(lambda g: g / weight_sum, grad_sum), metrics, model_state

  def train_step(state: TrainState, batch: dict, rng: jax.Array):
    if rng_impl:
      shape = jax.random.key_data(jax.random.key(0, impl=rng_impl)).shape
      rng = jax.random.wrap_key_data(jax.random.bits(rng, shape, jnp.uint32), impl=rng_impl)
    if microbatches > 1:
      grads, metrics, model_state = accumulate(state.params, state.model_state, batch, rng)
    else:
      grads, metrics, model_state = grads_and_metrics(state.params, state.model_state, batch,
                                                      rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {**metrics, "grad_norm": optax.tree.norm(grads),
               "learning_rate": schedule(state.step)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         model_state=model_state), metrics

  return train_step


def make_eval_step(model, task: tasks.Task):
  """eval_step(variables, batch) -> every metric times the batch's weight, and the weight.

  The weight is the metrics' `num_predictions` (e.g. unmasked samples), so sums over batches
  give exact means.
  """

  def eval_step(variables, batch: dict):
    _, (metrics, _) = task.loss_fn(model, variables, batch, jax.random.PRNGKey(0), False)
    weight = metrics.pop("num_predictions", jnp.float32(1.0))
    return {"sums": jax.tree.map(lambda m: m * weight, metrics), "weight": weight}

  return eval_step


def run_eval(eval_step, variables, data_config: ml_collections.ConfigDict, split: str,
             mesh, max_examples: int | None = None) -> dict[str, float]:
  """Means of the task's metrics over `split` (for WaveNet: loss in nats, bits per sample).

  With several processes, each evaluates its share of the split; hosts with fewer batches
  pad with empty (all-masked) ones, since every host must join every step's collectives.
  """
  batches = pipeline.eval_batches(data_config, split, max_examples=max_examples)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    batches = list(batches)
    most = int(np.max(multihost_utils.process_allgather(np.int32(len(batches)))))
    empty = pipeline.example_batch(data_config, data_config.batch_size // jax.process_count())
    batches += [empty] * (most - len(batches))
  sums, weight = {}, 0.0
  for batch in batches:
    out = jax.device_get(eval_step(variables, sharding.shard_batch(batch, mesh)))
    for key, value in out["sums"].items():
      sums[key] = sums.get(key, 0.0) + float(value)
    weight += float(out["weight"])
  if not weight:
    raise ValueError(f"split {split!r} of {data_config.name} gave no audio to evaluate")
  return {**{key: value / weight for key, value in sums.items()}, "num_predictions": weight}


def headline(metrics: dict) -> str:
  """The metric a progress line shows: bits/sample for likelihood models, else the loss (and a
  phone recognizer's phone error rate)."""
  if "bits_per_sample" in metrics:
    return f"{metrics['bits_per_sample']:.4f} bits/sample"
  if "phone_error_rate" in metrics:
    return f"loss {metrics['loss']:.4f}, phone error rate {metrics['phone_error_rate']:.4f}"
  return f"loss {metrics['loss']:.4f}"


class _StopRequested:
  """Set by SIGTERM: the loop saves a checkpoint and returns."""

  def __init__(self):
    self.requested = False

  def __call__(self, signum, frame):
    del frame
    logging.warning("signal %d: saving a checkpoint and stopping", signum)
    self.requested = True


def _check_finite(metrics: dict, step: int, last_saved: int | None, workdir: str) -> None:
  loss = float(metrics["loss"])
  if not (math.isfinite(loss) and math.isfinite(float(metrics["grad_norm"]))):
    kept = (f"the last good checkpoint (step {last_saved}) is kept in {workdir}/checkpoints"
            if last_saved is not None else "no checkpoint was written")
    raise FloatingPointError(
        f"non-finite loss ({loss}) or gradient at step {step}; stopping: {kept}")


def _write_samples(task, model, variables, config, workdir, writer, step, rng) -> None:
  """Samples of the model into WORKDIR/samples/step_N and TensorBoard: free-running clips (one
  per speaker id in turn), or, for a model conditioned on features of audio (a vocoder), its
  resyntheses of held-out clips of the eval split, each with its own speaker, next to the
  originals (`original_i.wav`). Their mean voicing (`audiojax.eval.voicing`: loud and voiced
  shares, spectral flatness) goes to TensorBoard as samples/*."""
  num, rate = config.train.num_samples_to_write, config.data.sample_rate_hz
  length = int(config.train.sample_seconds * rate)
  speaker = jnp.arange(num, dtype=jnp.int32) % max(1, config.model.get("num_speakers", 1))
  kwargs, originals = {}, []
  if config.model.get("condition_channels", 0):
    originals, speaker, kwargs["condition"] = tasks.resynthesis_inputs(
        model, config.data, config.data.eval_split, num, length)
  audio = task.generate(model, variables, rng, num, length, jnp.asarray(speaker),
                        config.train.get("sample_temperature", 1.0), **kwargs)
  audio = np.asarray(jax.device_get(audio))
  if jax.process_index() == 0:
    folder = os.path.join(workdir, "samples", f"step_{step}")
    for i, clip in enumerate(audio):
      audio_io.write_wav(os.path.join(folder, f"sample_{i}.wav"), clip, rate)
      writer.audio(step, f"samples/{i}", clip, rate)
    for i, clip in enumerate(originals):
      audio_io.write_wav(os.path.join(folder, f"original_{i}.wav"), clip, rate)
    if length >= voicing.frame_samples(rate):  # How voiced the samples are (pYIN), over time.
      writer.scalars(step, {f"samples/{k}": v
                            for k, v in voicing.mean_voicing(audio, rate).items()})


def _example_batch(config: ml_collections.ConfigDict) -> dict:
  return jax.tree.map(jnp.asarray, pipeline.example_batch(config.data))


def build(config: ml_collections.ConfigDict, mesh_config=None):
  """(model, task, optax transform, schedule, mesh, rules) for a config.

  The mesh follows `mesh_config` (default `config.mesh`); pass `{}` for every device on
  `data`, as a job that only reads parameters wants whatever mesh it trained on.
  """
  model = models.get_model(config.model)
  task = tasks.get_task(config.model.name)
  tx, schedule = optimizer.make_optimizer(config.optimizer, config.train.num_steps)
  mesh_config = config.get("mesh") if mesh_config is None else mesh_config
  mesh = sharding.make_mesh(mesh_config or None)
  return model, task, tx, schedule, mesh, sharding.rules_from_config(config)


def _boxed_state_shapes(config, model, task, tx):
  """Shapes of the train state, params still in their logical-axis boxes (no compute)."""
  return jax.eval_shape(
      lambda: create_train_state(model, task, tx, _example_batch(config), config.seed))


def state_shardings(config, model, task, tx, mesh, rules):
  """NamedShardings of the (unboxed) train state on `mesh`, from the params' logical axes."""
  return sharding.logical_shardings(_boxed_state_shapes(config, model, task, tx), mesh, rules)


def init_state(config, model, task, tx, mesh, rules) -> tuple[TrainState, Any]:
  """A freshly initialised train state, created sharded (no full copy on any one device)."""
  shardings = state_shardings(config, model, task, tx, mesh, rules)
  init = jax.jit(lambda: nn.meta.unbox(create_train_state(
      model, task, tx, _example_batch(config), config.seed)), out_shardings=shardings)
  return init(), shardings


def jit_in_mesh(fn, mesh, rules, **jit_kwargs):
  """`jax.jit(fn)` that traces with `mesh` and the logical axis `rules` in context, so the
  models' `nn.with_logical_constraint`s become sharding constraints."""
  jitted = jax.jit(fn, **jit_kwargs)

  def call(*args):
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
      return jitted(*args)

  return call


def with_phoneme_inventory(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config with the training split's phoneme inventory filled in where the run needs one
  and `config.data.phonemes` is empty: text-to-speech features (data.condition="phonemes")
  and a phone recognizer's targets (data.targets="phonemes", which also sets an unset
  `model.num_phonemes` to the inventory's size). The inventory is part of the model: it is
  saved with the run's config, so a loaded model maps its ids back to phonemes."""
  recognizer = config.data.get("targets") == "phonemes"
  if not (recognizer or config.data.get("condition") == "phonemes"):
    return config
  config = config.copy_and_resolve_references()
  if not config.data.phonemes:
    config.data.phonemes = " ".join(pipeline.phoneme_inventory(config.data))
  size = len(config.data.phonemes.split())
  if recognizer and not config.model.get("num_phonemes"):
    config.model.num_phonemes = size
  if recognizer and config.model.num_phonemes != size:
    raise ValueError(f"model.num_phonemes={config.model.num_phonemes}, but the inventory "
                     f"(data.phonemes) holds {size} phonemes: leave num_phonemes 0 (set by the "
                     "trainer)")
  return config


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (or resumes) to `config.train.num_steps`; returns the final train state."""
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  config = with_phoneme_inventory(config)
  model, task, tx, schedule, mesh, rules = build(config)
  microbatches = config.train.get("microbatches", 1)
  sharding.check_batch_size(config.data.batch_size, mesh, microbatches)
  meta = checkpoint.make_meta(config)
  manager = checkpoint.make_manager(workdir, keep=config.train.keep_checkpoints,
                                    async_save=config.train.async_checkpoints)

  state, shardings = init_state(config, model, task, tx, mesh, rules)
  counter = pipeline.BadExampleCounter()
  dataset = pipeline.train_dataset(config.data, seed=config.seed, counter=counter)
  data_iter = iter(dataset)
  restored = checkpoint.restore(manager, checkpoint.abstract(state), meta)
  start_step, last_saved = 0, None
  if restored:
    state, data_state, start_step = restored
    if data_state is not None:
      data_iter.set_state(data_state)
    last_saved = start_step
    logging.info("resumed from %s at step %d", manager.directory, start_step)
  else:
    if task.load_state:  # Fresh run: non-parameter state from files (e.g. k-means targets).
      loaded = task.load_state(model)
      placed = jax.device_put(loaded, {k: shardings.model_state[k] for k in loaded})
      state = state.replace(model_state={**state.model_state, **placed})
    # Frozen modules must come from another run: left at their initialisation, they would
    # stay random.
    frozen = optimizer.frozen_modules(config.optimizer, state.params)
    if frozen and not config.train.get("init_from"):
      raise ValueError(f"optimizer.frozen={config.optimizer.frozen!r} leaves "
                       f"{', '.join(frozen)} untrained: set train.init_from to the run whose "
                       "parameters they keep")
    if config.train.get("init_from"):  # Fine-tuning: start from another run's parameters.
      exclude = [n for n in config.train.get("init_exclude", "").split(",") if n]
      state = state.replace(params=params_from_run(config.train.init_from, state.params,
                                                   shardings.params, exclude, frozen))

  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info("model %s: %.2fM parameters%s", config.model.name, num_params / 1e6,
               f", receptive field {model.receptive_field} samples "
               f"({1000 * model.receptive_field / config.data.sample_rate_hz:.1f} ms)"
               if hasattr(model, "receptive_field") else "")

  logging.info("mesh %s over %d devices (%d processes)", dict(mesh.shape), mesh.size,
               jax.process_count())
  batch_sharding = sharding.batch_sharding(mesh)
  train_step = jit_in_mesh(make_train_step(model, task, tx, schedule, microbatches,
                                           config.train.get("rng_impl", "")), mesh, rules,
                           in_shardings=(shardings, batch_sharding, None),
                           out_shardings=(shardings, None), donate_argnums=0)
  eval_step = jit_in_mesh(make_eval_step(model, task), mesh, rules,
                          in_shardings=(shardings.variables, batch_sharding))
  writer = summary.Writer(workdir)
  stop = _StopRequested()
  previous_handler = signal.signal(signal.SIGTERM, stop)
  cfg = config.train
  num_steps = cfg.num_steps
  bar = tqdm.tqdm(total=num_steps, initial=start_step, disable=jax.process_index() != 0,
                  dynamic_ncols=True, desc="train")
  pending, interval_metrics, interval_start = None, [], time.perf_counter()
  try:
    for step in range(start_step + 1, num_steps + 1):  # `step` counts completed steps.
      batch = sharding.shard_batch(next(data_iter), mesh)
      rng = jax.random.fold_in(state.rng, step - 1)
      state, metrics = train_step(state, batch, rng)
      if pending is not None:  # Check the previous step while this one runs.
        _check_finite(jax.device_get(pending[1]), pending[0], last_saved, workdir)
      pending = (step, metrics)
      interval_metrics.append(metrics)
      bar.update(1)

      is_last = step == num_steps
      if step % cfg.log_every == 0 or is_last:
        means = jax.device_get(jax.tree.map(lambda *x: jnp.mean(jnp.stack(x)),
                                            *interval_metrics))
        _check_finite(means, step, last_saved, workdir)
        elapsed = time.perf_counter() - interval_start
        means["steps_per_sec"] = len(interval_metrics) / max(elapsed, 1e-9)
        means.pop("num_predictions", None)
        writer.scalars(step, {f"train/{k}": v for k, v in means.items()})
        bar.set_postfix({k: f"{means[k]:.3f}" for k in ("loss", "bits_per_sample")
                         if k in means})
        interval_metrics, interval_start = [], time.perf_counter()

      if step % cfg.checkpoint_every == 0 or is_last or stop.requested:
        _check_finite(jax.device_get(metrics), step, last_saved, workdir)
        checkpoint.save(manager, step, state, data_iter.get_state(), meta)
        last_saved = step

      if cfg.eval_every and (step % cfg.eval_every == 0 or is_last):
        result = run_eval(eval_step, state.variables, config.data, config.data.eval_split, mesh,
                          cfg.eval_max_examples)
        writer.scalars(step, {f"eval/{k}": v for k, v in result.items()})
        bar.write(f"step {step}: {config.data.eval_split} {headline(result)}")

      if task.generate and cfg.sample_every and (step % cfg.sample_every == 0 or is_last):
        _write_samples(task, model, state.variables, config, workdir, writer, step,
                       jax.random.fold_in(jax.random.split(state.rng)[1], step))
      writer.flush()
      if stop.requested:
        logging.warning("stopped by signal after step %d; checkpoint saved", step)
        break
  finally:
    bar.close()
    manager.wait_until_finished()
    writer.close()
    signal.signal(signal.SIGTERM, previous_handler)
    if counter.count:
      logging.warning("%d bad examples were skipped", counter.count)
  return state


def params_from_run(workdir: str, params: Any, shardings: Any,
                    exclude: list[str] | tuple[str, ...] = (),
                    required: list[str] | tuple[str, ...] = ()) -> Any:
  """`params` with each entry that `workdir`'s latest checkpoint holds at the same path and
  shape replaced by that run's value (big_vision's model_init), placed on `shardings`; the
  top-level modules named in `exclude` (e.g. a prediction head) keep their initialisation.
  Logs what stayed fresh; an error if nothing matched (a run of another model) or if a
  parameter of a top-level module named in `required` (frozen ones) did not."""
  other = load_config(workdir)
  _, _, variables, step = restore_variables(other, workdir)
  loaded = flax.traverse_util.flatten_dict(jax.device_get(variables["params"]))
  flat = flax.traverse_util.flatten_dict(params)
  fresh = []
  for path, value in flat.items():
    source = loaded.get(path)
    if path[0] in exclude or source is None or source.shape != value.shape:
      fresh.append("/".join(path))
    else:
      flat[path] = jnp.asarray(source, value.dtype)
  if len(fresh) == len(flat):
    raise ValueError(f"train.init_from={workdir}: its {other.model.name} model shares no "
                     "parameter (same name and shape) with this one")
  missing = [name for name in fresh if name.split("/")[0] in required]
  if missing:
    raise ValueError(f"train.init_from={workdir}: its {other.model.name} model has no "
                     f"parameter of the same name and shape for {', '.join(missing)}, which "
                     "this run keeps frozen (optimizer.frozen): compare the two configs' "
                     "sizes")
  logging.info("parameters from %s (step %d): %d of %d; fresh: %s", workdir, step,
               len(flat) - len(fresh), len(flat), ", ".join(fresh) or "none")
  return jax.device_put(flax.traverse_util.unflatten_dict(flat), shardings)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (from its latest checkpoint, else config.json)."""
  manager = checkpoint.make_manager(workdir, read_only=True)
  meta = checkpoint.read_meta(manager)
  if meta is None:
    raise FileNotFoundError(f"{workdir} holds no checkpoint: train first "
                            "(python -m launch.train --config=... --workdir=...)")
  return ml_collections.ConfigDict(meta["config"])


def restore_variables(config: ml_collections.ConfigDict, workdir: str,
                      step: int | None = None):
  """(model, task, variables, step) from a workdir's checkpoint, on this job's devices.

  `variables` = {"params": ..., other collections} for `model.apply`. Whatever mesh the run
  trained on, they are restored onto every local device along `data` (sharded by the logical
  rules, so replicated unless the mesh says otherwise).
  """
  model, task, tx, _, mesh, rules = build(config, mesh_config={})
  boxed = _boxed_state_shapes(config, model, task, tx)
  abstract_state = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      nn.meta.unbox(boxed), sharding.logical_shardings(boxed, mesh, rules))
  manager = checkpoint.make_manager(workdir, read_only=True)
  state, _, step = checkpoint.restore(manager, abstract_state, checkpoint.make_meta(config),
                                      step)
  return model, task, state.variables, step


def restore_model(workdir: str, model_name: str, description: str):
  """(config, model, variables) of a workdir's latest checkpoint, which must hold a
  `model_name` model (else a clear error naming `description`, e.g. "a soundstream codec")."""
  config = load_config(workdir)
  if config.model.name != model_name:
    raise ValueError(f"{workdir} holds a {config.model.name} model, not {description}")
  model, _, variables, _ = restore_variables(config, workdir)
  return config, model, variables


def evaluate(workdir: str, split: str = "test", max_examples: int | None = None,
             crop_samples: int | None = None, scored_samples: int | None = None) -> dict:
  """Test metrics of a workdir's latest checkpoint (WaveNet: NLL in bits per sample); also
  written to WORKDIR/eval_<split>.json.

  WaveNet only: `crop_samples` replaces the run's window (data.crop_samples), `scored_samples`
  its model.context_crop (the loss counts each window's last N positions), so that runs with
  and without a context stack are scored on the same positions; the result is then written to
  eval_<split>_crop<C>_last<N>.json."""
  config = load_config(workdir)
  name = f"eval_{split}"
  if crop_samples or scored_samples:
    if config.model.name != "wavenet":
      raise ValueError("crop_samples / scored_samples are for WaveNet runs")
    config.data.crop_samples = crop_samples or config.data.crop_samples
    with config.unlocked():
      config.model.context_crop = scored_samples or config.model.get("context_crop", 0)
    name += f"_crop{config.data.crop_samples}_last{config.model.context_crop}"
  model, task, variables, step = restore_variables(config, workdir)
  eval_step = jax.jit(make_eval_step(model, task))
  mesh = sharding.make_mesh()
  result = run_eval(eval_step, variables, config.data, split, mesh, max_examples)
  result = {"split": split, "step": step, "dataset": config.data.name, **result}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, name + ".json"), "w") as f:
      json.dump(result, f, indent=2)
  return result
