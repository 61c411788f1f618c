"""Optimizer from the config: AdamW, linear warmup + cosine decay, global-norm clipping."""

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


def make_optimizer(
    opt: ml_collections.ConfigDict, num_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optax transform, learning-rate schedule) for `config.optimizer`."""
  schedule = make_schedule(opt, num_steps)
  tx = optax.chain(
      optax.clip_by_global_norm(opt.clip_norm) if opt.clip_norm else optax.identity(),
      optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay),
  )
  return tx, schedule
