"""What each model family brings to the shared trainer: init, loss and audio generator.

`init_fn(model, rng, example_batch) -> variables` ({"params": ..., other collections}).
`loss_fn(model, variables, batch, rng, train) -> (scalar loss, (metrics, model_state))`, where
the batch holds `audio: [batch, samples]`, `mask: [batch, samples]`, `speaker: [batch]` (and
optionally `condition: [batch, frames, C]` for a locally conditioned WaveNet), the
gradient is taken with respect to `variables["params"]`, and `model_state` holds the updated
non-parameter collections (e.g. EMA codebooks; `{}` when there are none).
`generate(model, variables, rng, num_samples, num_audio_samples, speaker, temperature, mesh)`
-> float audio [num_samples, num_audio_samples]; with a mesh, the samples are split over it
(a locally conditioned WaveNet also needs `condition=`).
"""

import dataclasses
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from audiojax import audio as audio_lib
from audiojax.models import discriminators, soundstream, wavenet
from audiojax.sample import wavenet as wavenet_sampler
from audiojax.train import losses


@dataclasses.dataclass(frozen=True)
class Task:
  init_fn: Callable  # (model, rng, example_batch) -> variables
  loss_fn: Callable
  generate: Callable | None = None


def _speaker(model: nn.Module, batch: dict) -> jnp.ndarray | None:
  return batch["speaker"] if getattr(model, "num_speakers", 0) else None


def _condition(model: nn.Module, batch: dict) -> jnp.ndarray | None:
  """Features [batch, frames, C] of a locally conditioned WaveNet, aligned to the audio: frame k
  describes audio[:, k * hop:(k + 1) * hop]. `batch["condition"]` when the pipeline brings it,
  else the log-mel of the batch audio itself (`losses.mel_features`, C = condition_channels)."""
  if not getattr(model, "condition_channels", 0):
    return None
  if "condition" in batch:
    return batch["condition"]
  return losses.mel_features(batch["audio"], model.sample_rate_hz, model.condition_hop,
                             model.condition_channels)


def _wavenet_io(model: nn.Module, audio: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(inputs [b, samples - 1], targets [b, samples - 1]): mu-law classes (softmax) or, for a
  mixture, the amplitudes on the 16-bit grid and the target levels."""
  if model.output == "mol":
    levels = audio_lib.linear_encode(audio, wavenet.MOL_LEVELS)
    return audio_lib.linear_decode(levels[:, :-1], wavenet.MOL_LEVELS), levels[:, 1:]
  classes = audio_lib.mu_law_encode(audio, model.num_classes - 1)
  return classes[:, :-1], classes[:, 1:]


def wavenet_init(model: nn.Module, rng: jax.Array, batch: dict):
  inputs, _ = _wavenet_io(model, batch["audio"])
  return model.init(rng, inputs, _speaker(model, batch), _condition(model, batch), 1)


def wavenet_loss(model: nn.Module, variables, batch: dict, rng: jax.Array, train: bool = True):
  """Next-sample NLL in nats (loss) and bits.

  `bits_per_sample` is the NLL the model optimises: per mu-law class (softmax) or per 16-bit
  level (mol). `mu_law_bits_per_sample` scores every model on the next sample's mu-law class,
  the comparable figure (see `audiojax.models.wavenet`). Position t predicts audio[:, t + 1],
  hence the conditioning offset of 1.
  """
  del rng, train  # WaveNet has no dropout.
  mu = model.num_classes - 1
  inputs, targets = _wavenet_io(model, batch["audio"])
  outputs = model.apply(variables, inputs, _speaker(model, batch), _condition(model, batch), 1)
  mask = batch["mask"][:, 1:]
  count = jnp.maximum(mask.sum(), 1.0)
  mean = lambda x: (x * mask).sum() / count
  metrics = {"num_predictions": mask.sum()}
  if model.output == "mol":
    amplitude = audio_lib.linear_decode(targets, wavenet.MOL_LEVELS)
    log_prob = lambda bins: wavenet.mixture_log_prob(outputs, *bins, model.log_scale_min)
    loss = -mean(log_prob(audio_lib.linear_bins(targets, wavenet.MOL_LEVELS)))
    mu_law_nll = -mean(log_prob(audio_lib.mu_law_bins(audio_lib.mu_law_encode(amplitude, mu),
                                                      mu)))
  else:
    loss = mu_law_nll = mean(optax.softmax_cross_entropy_with_integer_labels(outputs, targets))
    metrics["accuracy"] = mean(outputs.argmax(-1) == targets)
  metrics.update(loss=loss, bits_per_sample=loss / math.log(2),
                 mu_law_bits_per_sample=mu_law_nll / math.log(2))
  return loss, (metrics, {})


def wavenet_generate(model: nn.Module, variables, rng: jax.Array, num_samples: int,
                     num_audio_samples: int, speaker: jnp.ndarray | None = None,
                     temperature: float = 1.0, mesh=None,
                     condition: jnp.ndarray | None = None) -> jnp.ndarray:
  """Autoregressive samples as audio [num_samples, num_audio_samples] floats (mu-law decoded
  for softmax). condition: [num_samples, frames, C] for a locally conditioned model, aligned
  as in `_condition` (frames * hop >= num_audio_samples)."""
  if not model.num_speakers:
    speaker = None
  drawn = wavenet_sampler.sample(
      model, variables["params"], num_samples=num_audio_samples, batch_size=num_samples, rng=rng,
      temperature=temperature, speaker=speaker, condition=condition, mesh=mesh)
  return drawn if model.output == "mol" else audio_lib.mu_law_decode(drawn, model.num_classes - 1)


def soundstream_init(model: nn.Module, rng: jax.Array, batch: dict):
  rngs = {"params": rng, "quantizer": jax.random.fold_in(rng, 1)}
  return model.init(rngs, batch["audio"], method=soundstream.Model.init_all)


def soundstream_loss(model: nn.Module, variables, batch: dict, rng: jax.Array,
                     train: bool = True):
  """Codec and discriminators in one loss whose gradient trains both.

  The scalar is generator_loss(codec, sg(disc)) + discriminator_loss(sg(codec), disc), so one
  gradient holds the codec's update (reconstruction, adversarial, feature matching and
  commitment terms) and the discriminators' (hinge) update. In eval, the loss is the
  multi-scale mel distance; SI-SNR (dB) is reported too.
  """
  params, sg = variables["params"], jax.lax.stop_gradient
  codec = {k: v for k, v in params.items() if k not in soundstream.DISCRIMINATORS}
  disc = {k: v for k, v in params.items() if k in soundstream.DISCRIMINATORS}
  audio = batch["audio"] * batch["mask"]
  codec_variables = {"params": codec, "codebooks": variables["codebooks"]}
  if train:
    (fake, _, aux), state = model.apply(codec_variables, audio, train=True,
                                        mutable=["codebooks"], rngs={"quantizer": rng})
  else:
    (fake, _, aux), state = model.apply(codec_variables, audio), {}
  mel = losses.multiscale_mel_loss(audio, fake, model.sample_rate_hz)
  snr = jnp.mean(losses.si_snr(audio, fake, batch["mask"]))
  metrics = {"mel_distance": mel, "si_snr_db": snr,
             "commitment": aux["commitment_loss"], "num_predictions": batch["mask"].sum()}
  if not train:
    return mel, ({**metrics, "loss": mel}, state)

  discriminate = lambda p, x: model.apply({"params": p}, x,
                                          method=soundstream.Model.discriminate)
  logits_and_features = discriminators.logits_and_features
  real_logits, real_features = logits_and_features(discriminate(disc, audio))
  fake_logits_d, _ = logits_and_features(discriminate(disc, sg(fake)))
  fake_logits_g, fake_features = logits_and_features(discriminate(sg(disc), fake))
  d_loss = losses.hinge_discriminator_loss(real_logits, fake_logits_d)
  adversarial = losses.hinge_generator_loss(fake_logits_g)
  feature = losses.feature_matching_loss(real_features, fake_features)
  g_loss = (model.reconstruction_weight * mel + model.adversarial_weight * adversarial
            + model.feature_weight * feature + model.commitment_weight * aux["commitment_loss"])
  metrics.update(loss=g_loss, generator_loss=g_loss, discriminator_loss=d_loss,
                 adversarial=adversarial, feature_matching=feature,
                 perplexity=jnp.mean(aux["perplexity"]))
  return g_loss + d_loss, (metrics, state)


TASKS = {
    "wavenet": Task(init_fn=wavenet_init, loss_fn=wavenet_loss, generate=wavenet_generate),
    "soundstream": Task(init_fn=soundstream_init, loss_fn=soundstream_loss),
}


def get_task(model_name: str) -> Task:
  if model_name not in TASKS:
    raise ValueError(f"no training task for model {model_name!r}; known: {sorted(TASKS)}")
  return TASKS[model_name]
