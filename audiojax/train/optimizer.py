"""Optimizer from the config: AdamW, linear warmup + cosine decay, global-norm clipping; with
`frozen`, some parameters are left as they are (fine-tuning part of a model)."""

import re

import jax
import ml_collections
import optax


def make_schedule(opt: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """Learning rate per step: linear warmup to `learning_rate`, then cosine (or constant)."""
  if opt.schedule == "constant":
    return optax.warmup_constant_schedule(0.0, opt.learning_rate, max(opt.warmup_steps, 1))
  if opt.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=opt.learning_rate,
        warmup_steps=opt.warmup_steps,
        decay_steps=max(num_steps, opt.warmup_steps + 1),
        end_value=opt.learning_rate * opt.final_lr_fraction,
    )
  raise ValueError(f"optimizer.schedule={opt.schedule!r}: use 'cosine' or 'constant'")


def _frozen_patterns(opt: ml_collections.ConfigDict) -> list[re.Pattern]:
  try:
    return [re.compile(p) for p in opt.get("frozen", "").split(",") if p]
  except re.error as err:
    raise ValueError(f"optimizer.frozen={opt.frozen!r}: not a list of regular expressions "
                     f"({err})") from err


def frozen_modules(opt: ml_collections.ConfigDict, names) -> list[str]:
  """The top-level module `names` that `opt.frozen` leaves untrained (`make_optimizer`)."""
  patterns = _frozen_patterns(opt)
  return [n for n in names if any(p.fullmatch(n) for p in patterns)]


def make_optimizer(
    opt: ml_collections.ConfigDict, num_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optax transform, learning-rate schedule) for `config.optimizer`. `opt.frozen`: comma-
  separated regular expressions; the parameters under a top-level module whose name matches
  one in full get no update (nor weight decay) and take no part in the clipping norm."""
  schedule = make_schedule(opt, num_steps)
  patterns = _frozen_patterns(opt)

  def frozen(params, value: bool):  # Per leaf: frozen (or trained, value False).
    marks = {name: any(p.fullmatch(name) for p in patterns) == value for name in params}
    return {name: jax.tree.map(lambda _, mark=marks[name]: mark, tree)
            for name, tree in params.items()}

  # Frozen gradients are zeroed first (Adam's update of a zero gradient stays 0), by masks
  # that keep the optimizer state free of optax.MaskedNode leaves (the sharding rules want
  # arrays); without frozen modules the chain (and so the checkpoints' state) is as before.
  zero_frozen = [optax.masked(optax.set_to_zero(), lambda p: frozen(p, True))] if patterns else []
  tx = optax.chain(
      *zero_frozen,
      optax.clip_by_global_norm(opt.clip_norm) if opt.clip_norm else optax.identity(),
      optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay,
                  mask=(lambda p: frozen(p, False)) if patterns else None),
  )
  return tx, schedule
