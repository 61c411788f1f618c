"""What each model family brings to the shared trainer: init, loss and audio generator.

`init_fn(model, rng, example_batch) -> variables` ({"params": ..., other collections}).
`loss_fn(model, variables, batch, rng, train) -> (scalar loss, (metrics, model_state))`, where
the batch holds `audio: [batch, samples]`, `mask: [batch, samples]`, `speaker: [batch]` (and
optionally `condition: [batch, frames, C]` for a locally conditioned WaveNet, `phoneme_ids:
[batch, max_phonemes]` and `phoneme_lengths: [batch]` for a phone recognizer), the
gradient is taken with respect to `variables["params"]`, and `model_state` holds the updated
non-parameter collections (e.g. EMA codebooks; `{}` when there are none).
`generate(model, variables, rng, num_samples, num_audio_samples, speaker, temperature, mesh)`
-> float audio [num_samples, num_audio_samples]; with a mesh, the samples are split over it
(a locally conditioned WaveNet also needs `condition=`).
"""

import dataclasses
import math
import os
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from audiojax import audio as audio_lib
from audiojax.data import pipeline, pitch
from audiojax.eval import mfcc_tokens
from audiojax.models import (
  discriminators,
  hubert,
  kmeans,
  phone_recognizer,
  rvq,
  soundstream,
  wavenet,
)
from audiojax.sample import wavenet as wavenet_sampler
from audiojax.train import losses


@dataclasses.dataclass(frozen=True)
class Task:
  init_fn: Callable  # (model, rng, example_batch) -> variables
  loss_fn: Callable
  generate: Callable | None = None
  # (model) -> {collection: arrays}: non-parameter state read from files when a run starts
  # fresh (HuBERT's k-means targets), placed over what `init_fn` made; a resumed run keeps
  # its checkpoint's.
  load_state: Callable | None = None


def _speaker(model: nn.Module, batch: dict) -> jnp.ndarray | None:
  """Speaker ids [batch], or for a voice-cloning model the log-mel of the batch's reference
  audio [batch, frames, reference_mels] (`reference_features`); None when unconditional."""
  if getattr(model, "speaker_embedding_dim", 0):
    return reference_features(model, batch["reference"])
  return batch["speaker"] if getattr(model, "num_speakers", 0) else None


def reference_features(model: nn.Module, reference: jnp.ndarray) -> jnp.ndarray:
  """Reference audio [batch, samples] -> the speaker encoder's log-mel input
  [batch, ceil(samples / reference_hop), reference_mels]."""
  return losses.mel_features(reference, model.sample_rate_hz, model.reference_hop,
                             model.reference_mels)


def speaker_vectors(model: nn.Module, variables, reference: jnp.ndarray) -> jnp.ndarray:
  """Reference audio [batch, samples] of a voice-cloning WaveNet's speakers -> the vectors
  [batch, E] its samplers condition on (pass them as `speaker` to `wavenet_generate`).
  Raises ValueError for a reference shorter than 0.5 s or silent."""
  seconds = reference.shape[1] / model.sample_rate_hz
  if seconds < 0.5:
    raise ValueError(f"the reference audio is {seconds:.2f} s: give at least 0.5 s of the voice")
  if float(jnp.max(jnp.abs(jnp.asarray(reference)))) < 1e-4:
    raise ValueError("the reference audio is silent")
  mel = reference_features(model, jnp.asarray(reference, jnp.float32))
  return wavenet.speaker_vectors(model, variables["params"], mel)


LABEL_SOURCES = ("phonemes", "notes")  # Features the data pipeline makes from labels.


def condition_features(model: nn.Module, audio: jnp.ndarray,
                       excitation: jnp.ndarray | None = None) -> jnp.ndarray:
  """A locally conditioned WaveNet's features computed from audio [b, samples], frames
  [b, ceil(samples / hop), C]: log-mel bands (`condition_source="mel"`, a vocoder;
  `losses.mel_features`), or the audio's low band at 1 / lowband_factor of the rate
  ("lowband", super-resolution; `audio.lowband`), hop / factor low-rate samples per frame.

  A model with `excitation_channels` also takes the audio's pitch-synchronous excitation
  [b, frames, hop E] (`pitch.excitation_frames`, appended to each frame): pass it (the data
  pipeline's `condition`), or leave it None to compute it here from concrete audio."""
  frames = -(-audio.shape[1] // model.condition_hop)
  if model.condition_source == "lowband":
    features = lowband_features(model, audio_lib.lowband(audio, model.lowband_factor), frames)
  elif model.condition_source == "phonemes":
    raise ValueError("a text-to-speech model's features come from text (launch.synthesize) or "
                     "the data pipeline's phoneme labels, not from audio")
  elif model.condition_source == "notes":
    raise ValueError("a score-conditioned model's features come from note events (the data "
                     "pipeline's, or launch.sample --score), not from audio")
  elif model.condition_source == "mel":
    features = losses.mel_features(audio, model.sample_rate_hz, model.condition_hop,
                                   model.condition_channels)
  else:
    raise ValueError(f"condition_source={model.condition_source!r}: use mel, lowband, "
                     "phonemes or notes")
  if not model.excitation_channels:
    return features
  if excitation is None:
    excitation = np.stack([pitch.excitation_frames(np.asarray(row), model.sample_rate_hz,
                                                   model.condition_hop,
                                                   channels=model.excitation_channels)
                           for row in audio])
  return jnp.concatenate([features, jnp.asarray(excitation, features.dtype)], axis=-1)


def resynthesis_inputs(model: nn.Module, data_config, split: str, num_clips: int,
                       num_samples: int) -> tuple[np.ndarray, np.ndarray, jnp.ndarray]:
  """What a locally conditioned model resynthesises to show itself: `num_clips` held-out clips
  of `num_samples` (`pipeline.held_out_examples`: speakers in turn) -> (originals float32
  [n, samples], their speaker ids int32 [n], features [n, frames, C]): of the audio (a
  vocoder), or the pipeline's of the clips' labels (`LABEL_SOURCES`: a score's notes...)."""
  examples = pipeline.held_out_examples(data_config, split, num_clips, num_samples)
  originals, speakers = pipeline.clips_of(examples, num_samples)
  if model.condition_source not in LABEL_SOURCES:
    return originals, speakers, condition_features(model, jnp.asarray(originals))
  features = pipeline.condition_fn(data_config, strict=True)
  rows = [pipeline.condition_rows(features(e), 0, num_samples, model.condition_hop)
          for e in examples]
  return originals, speakers, jnp.asarray(np.stack(rows))


def lowband_features(model: nn.Module, low: jnp.ndarray, num_frames: int) -> jnp.ndarray:
  """Low-rate audio [b, n] (at sample_rate_hz / lowband_factor) -> super-resolution features
  [b, num_frames, hop / factor]."""
  per_frame = model.condition_hop // model.lowband_factor
  if per_frame * model.lowband_factor != model.condition_hop or \
      per_frame != model.condition_channels:
    raise ValueError(f"lowband conditioning needs condition_hop={model.condition_hop} = "
                     f"lowband_factor={model.lowband_factor} x condition_channels="
                     f"{model.condition_channels}")
  return audio_lib.frames_of(low, per_frame, num_frames)


def _condition(model: nn.Module, batch: dict) -> jnp.ndarray | None:
  """Features [batch, frames, C] of a locally conditioned WaveNet, aligned to the audio: frame k
  describes audio[:, k * hop:(k + 1) * hop]. `batch["condition"]` when the pipeline brings it,
  else the log-mel of the batch audio itself (`condition_features`)."""
  if not getattr(model, "condition_channels", 0):
    return None
  if model.excitation_channels:  # The pipeline brings the excitation ("condition").
    if "condition" not in batch:
      raise ValueError("model.excitation_channels > 0 needs the pipeline's excitation: set "
                       "data.condition='excitation' (and data.condition_hop = model's)")
    if model.condition_source in LABEL_SOURCES:  # Label features and source, as they are.
      return batch["condition"]
    return condition_features(model, batch["audio"], batch["condition"])
  if "condition" in batch:
    return batch["condition"]
  return condition_features(model, batch["audio"])


def _model_audio(model: nn.Module, audio: jnp.ndarray) -> jnp.ndarray:
  """Audio [b, samples] as the model's samples: pre-emphasised with `model.pre_emphasis`."""
  return audio_lib.pre_emphasize(audio, model.pre_emphasis) if model.pre_emphasis else audio


def _wavenet_io(model: nn.Module, audio: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(inputs [b, samples - 1], targets [b, samples - 1]) of audio [b, samples]: mu-law classes
  (softmax) or, for a mixture, the amplitudes on the 16-bit grid and the target levels; of
  the pre-emphasised audio with `model.pre_emphasis`."""
  audio = _model_audio(model, audio)
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
  the comparable figure (see `audiojax.models.wavenet`), except with `model.lpc_excitation`:
  both are then the excitation's class NLL. Position t predicts audio[:, t + 1],
  hence the conditioning offset of 1.

  With `model.input_noise > 0` (softmax), training inputs are the mu-law classes plus rounded
  Gaussian noise of that many classes' deviation, the targets stay clean (LPCNet's noise
  injection: the model learns not to trust its own drawn past too much, as it must when
  sampling). With `model.lpc_excitation`, the targets are the excitation's classes (the sample
  minus its prediction from the, noisy, inputs: LPCNet). With `model.period_dropout > 0`, that
  share of the rows trains with no periods (`wavenet.drop_periods`). With
  `model.speaker_classes` (a voice-cloning model), the loss adds `speaker_loss_weight` x the
  cross entropy of naming the reference's speaker from its vector (`speaker_loss`,
  `speaker_accuracy`); the bits are the samples' alone.
  """
  mu = model.num_classes - 1
  inputs, targets = _wavenet_io(model, batch["audio"])
  if train and model.input_noise:
    if model.output != "softmax":
      raise ValueError("input_noise perturbs mu-law classes: output='softmax' only")
    noise = jnp.round(model.input_noise * jax.random.normal(rng, inputs.shape))
    inputs = jnp.clip(inputs + noise.astype(inputs.dtype), 0, mu)
  condition = _condition(model, batch)
  if train and model.period_dropout:  # Some rows without their periods.
    keep = jax.random.uniform(jax.random.fold_in(rng, 1), condition.shape[:1])
    condition = wavenet.drop_periods(model, condition, keep >= model.period_dropout)
  # `wavenet.Model.context_crop`: only the window's last positions (a context stack's crop).
  crop = model.context_crop if 0 < model.context_crop < inputs.shape[1] else 0
  if crop and model.lpc_excitation:
    raise ValueError("context_crop with lpc_excitation is not supported")
  args = (variables, inputs, _speaker(model, batch), condition, 1, crop)
  if model.speaker_classes:  # The model checks it has a speaker encoder to classify from.
    outputs, state = model.apply(*args, mutable=["intermediates"])
  else:
    outputs, state = model.apply(*args), {}
  if model.lpc_excitation:  # The excitation's classes: the sample minus its prediction.
    targets = wavenet.excitation_classes(model, _model_audio(model, batch["audio"])[:, 1:],
                                         wavenet.linear_predictions(model, inputs, condition, 1))
  mask = batch["mask"][:, 1:]
  if crop:
    targets, mask = targets[:, -crop:], mask[:, -crop:]
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
  metrics.update(bits_per_sample=loss / math.log(2),
                 mu_law_bits_per_sample=mu_law_nll / math.log(2))
  if model.speaker_classes:  # The reference's speaker named from its vector.
    logits = state["intermediates"]["speaker_logits"][0]
    speaker_nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["speaker"])
    metrics.update(speaker_loss=speaker_nll.mean(),
                   speaker_accuracy=(logits.argmax(-1) == batch["speaker"]).mean())
    loss += model.speaker_loss_weight * speaker_nll.mean()
  metrics["loss"] = loss
  return loss, (metrics, {})


def wavenet_generate(model: nn.Module, variables, rng: jax.Array, num_samples: int,
                     num_audio_samples: int, speaker: jnp.ndarray | None = None,
                     temperature: float = 1.0, mesh=None,
                     condition: jnp.ndarray | None = None,
                     prompt: jnp.ndarray | None = None,
                     voiced_temperature: float | None = None,
                     probability_floor: float = 0.0,
                     excitation_limit: float = 0.0) -> jnp.ndarray:
  """Autoregressive samples as audio [num_samples, num_audio_samples] floats (mu-law decoded
  for softmax). condition: [num_samples, frames, C] for a locally conditioned model, aligned
  as in `_condition` (frames * hop >= num_audio_samples); prompt: audio [num_samples, P] the
  clips start with (continued, not drawn); voiced_temperature: the voiced steps' temperature,
  probability_floor: classes less likely are not drawn, excitation_limit: the excitation's
  gain control (`wavenet_sampler.sample`)."""
  if not (model.num_speakers or model.speaker_embedding_dim):
    speaker = None
  if prompt is not None:  # Audio -> the model's inputs: mu-law classes or 16-bit amplitudes.
    prompt, _ = _wavenet_io(model, jnp.pad(jnp.asarray(prompt, jnp.float32), ((0, 0), (0, 1))))
  drawn = wavenet_sampler.sample(
      model, variables["params"], num_samples=num_audio_samples, batch_size=num_samples, rng=rng,
      temperature=temperature, speaker=speaker, condition=condition, mesh=mesh, prompt=prompt,
      voiced_temperature=voiced_temperature, probability_floor=probability_floor,
      excitation_limit=excitation_limit)
  drawn = drawn if model.output == "mol" else audio_lib.mu_law_decode(drawn, model.num_classes - 1)
  if model.pre_emphasis:  # Back from the model's samples to audio.
    return jnp.asarray(audio_lib.de_emphasize(jax.device_get(drawn), model.pre_emphasis))
  return drawn


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


def _without_head(params: dict) -> dict:
  """A teacher's params as `features` uses them: no prediction head (its K may differ)."""
  return {k: v for k, v in params.items() if k not in (
      "final_norm", "head", "label_embeddings", "quantizer_input", "contrastive_head")}


def _hubert_target_dim(model: nn.Module) -> int:
  return mfcc_tokens.FEATURE_DIM if model.targets == "mfcc" else model.embed_dim


def hubert_init(model: nn.Module, rng: jax.Array, batch: dict):
  """Params, and the "targets" collection at its shapes (zeros until `hubert_load_targets`):
  the k-means model {centroids [K, d], mean [d], std [d]} and, for targets="teacher", the
  teacher's params."""
  audio = batch["audio"]
  frames = hubert.num_frames(audio.shape[1], model.hop_samples)
  variables = dict(model.init(rng, audio, batch["mask"], jnp.zeros((audio.shape[0], frames),
                                                                     bool)))
  if model.objective in ("w2v_bert", "spin"):  # Targets from the model itself.
    return variables
  dim = _hubert_target_dim(model)
  targets = {"kmeans": {"centroids": jnp.zeros((model.num_targets, dim), jnp.float32),
                        "mean": jnp.zeros((dim,), jnp.float32),
                        "std": jnp.ones((dim,), jnp.float32)}}
  if model.targets == "teacher":
    targets["teacher"] = _without_head(variables["params"])
  return {**variables, "targets": targets}


def hubert_targets(model: nn.Module, targets: dict, audio: jnp.ndarray,
                   audio_mask: jnp.ndarray) -> jnp.ndarray:
  """int32 [b, frames]: the k-means cluster of each frame's target features (MFCCs, or the
  teacher's layer `teacher_layer`)."""
  if model.targets == "mfcc":
    features = mfcc_tokens.mfcc(audio, model.sample_rate_hz, model.frame_rate_hz)
  else:
    features = model.apply({"params": targets["teacher"]}, audio, model.teacher_layer,
                           audio_mask, method="features")
  return kmeans.predict(jax.lax.stop_gradient(features).astype(jnp.float32),
                        kmeans.KMeans(**targets["kmeans"]))


def _masked_frames(model: nn.Module, batch: dict, mask_rng: jax.Array):
  """(audio [b, samples] with padding zeroed, valid frames bool [b, frames], masked frames:
  HuBERT / wav2vec 2.0 spans among the valid ones) of a speech-encoder batch."""
  valid = model.valid_frames(batch["mask"])
  masked = hubert.span_mask(mask_rng, valid.shape, model.mask_prob, model.mask_length) & valid
  return batch["audio"] * batch["mask"], valid, masked


def _masked_mean(x: jnp.ndarray, where: jnp.ndarray) -> jnp.ndarray:
  """Mean of x over the entries where `where` is set (0 if none)."""
  return jnp.sum(x * where) / jnp.maximum(where.sum(), 1)


def hubert_loss(model: nn.Module, variables, batch: dict, rng: jax.Array, train: bool = True):
  """HuBERT's masked prediction: alpha * (cross entropy, nats, of the k-means targets at masked
  frames) + (1 - alpha) * (the same at unmasked frames), alpha = `masked_loss_weight` (the
  paper's 1: unmasked frames carry no loss); accuracies on masked and unmasked frames. Eval
  masks with a fixed key, so its figures are comparable across steps. The w2v_bert objective:
  `w2v_bert_loss`."""
  if model.objective == "w2v_bert":
    return w2v_bert_loss(model, variables, batch, rng, train)
  if model.objective == "spin":
    return spin_loss(model, variables, batch, rng, train)
  mask_rng, dropout_rng = jax.random.split(rng)
  audio, valid, masked = _masked_frames(model, batch, mask_rng)
  targets = hubert_targets(model, variables["targets"], audio, batch["mask"])
  out = model.apply({"params": variables["params"]}, audio, batch["mask"], masked, train,
                    rngs={"dropout": dropout_rng})
  nll = optax.softmax_cross_entropy_with_integer_labels(out["logits"], targets)
  correct = out["logits"].argmax(-1) == targets
  unmasked = valid & ~masked
  alpha = model.masked_loss_weight
  loss = alpha * _masked_mean(nll, masked) + (1.0 - alpha) * _masked_mean(nll, unmasked)
  metrics = {"loss": loss, "masked_loss": _masked_mean(nll, masked),
             "masked_accuracy": _masked_mean(correct, masked),
             "unmasked_accuracy": _masked_mean(correct, unmasked),
             "unmasked_loss": _masked_mean(nll, unmasked),
             "masked_fraction": _masked_mean(masked, valid),
             "num_predictions": masked.sum().astype(jnp.float32)}
  return loss, (metrics, {})


def w2v_bert_loss(model: nn.Module, variables, batch: dict, rng: jax.Array, train: bool = True):
  """w2v-BERT: contrastive loss of the contrastive module (`losses.contrastive_loss`) + cross
  entropy (nats) of the MLM head predicting the frames' codes, each alpha x (at masked frames)
  + (1 - alpha) x (at unmasked frames, distractors drawn among those), alpha =
  `masked_loss_weight` (w2v-BERT's 1: masked frames only), + W2V_BERT_COMMITMENT_WEIGHT x the
  k-means quantizer's commitment loss (not with the fixed log-mel features: nothing upstream
  learns) + `diversity_weight` x the Gumbel quantizer's diversity loss. In training the k-means
  codebook follows its EMA and the Gumbel temperature its schedule (the returned "codebooks"
  state)."""
  mask_rng, dropout_rng, quantizer_rng, negative_rng = jax.random.split(rng, 4)
  audio, valid, masked = _masked_frames(model, batch, mask_rng)
  out, state = model.apply(variables, audio, batch["mask"], masked, train,
                           mutable=["codebooks"] if train else [],
                           rngs={"dropout": dropout_rng, "quantizer": quantizer_rng})
  codes = jax.lax.stop_gradient(out["codes"])
  unmasked = valid & ~masked
  alpha = model.masked_loss_weight
  contrastive, contrastive_accuracy = losses.contrastive_loss(
      out["context"], out["targets"], codes, masked, negative_rng, model.num_negatives,
      model.contrastive_temperature)
  unmasked_contrastive, unmasked_contrastive_accuracy = losses.contrastive_loss(
      out["context"], out["targets"], codes, unmasked, jax.random.fold_in(negative_rng, 1),
      model.num_negatives, model.contrastive_temperature)
  nll = optax.softmax_cross_entropy_with_integer_labels(out["logits"], codes)
  correct = out["logits"].argmax(-1) == codes
  mlm, unmasked_mlm = _masked_mean(nll, masked), _masked_mean(nll, unmasked)
  loss = alpha * (contrastive + mlm) + (1 - alpha) * (unmasked_contrastive + unmasked_mlm)
  commitment = 0.0 if model.quantizer_features == "mel" else W2V_BERT_COMMITMENT_WEIGHT
  loss += commitment * out["commitment_loss"] + model.diversity_weight * out["diversity_loss"]
  metrics = {"loss": loss, "contrastive_loss": contrastive, "mlm_loss": mlm,
             "unmasked_contrastive_loss": unmasked_contrastive, "unmasked_mlm_loss": unmasked_mlm,
             "contrastive_accuracy": contrastive_accuracy,
             "unmasked_contrastive_accuracy": unmasked_contrastive_accuracy,
             "masked_accuracy": _masked_mean(correct, masked),
             "unmasked_accuracy": _masked_mean(correct, unmasked),
             "commitment_loss": out["commitment_loss"], "diversity_loss": out["diversity_loss"],
             "codebook_perplexity": out["perplexity"],
             "masked_fraction": _masked_mean(masked, valid),
             "num_predictions": masked.sum().astype(jnp.float32)}
  return loss, (metrics, dict(state))


W2V_BERT_COMMITMENT_WEIGHT = 0.25  # VQ-VAE's beta.


def spin_loss(model: nn.Module, variables, batch: dict, rng: jax.Array, train: bool = True):
  """SPIN's speaker-invariant clustering: the batch encoded twice, unmasked: as it is and, when
  the data brings it (`data.perturb_voice`), in other voices ("perturbed",
  `audiojax.data.voice_perturbation`); with `mel_warp`, each view also under its own frequency
  warp drawn in [1 - mel_warp, 1 + mel_warp]. Each view predicts the other's Sinkhorn-balanced
  assignment of its frames to the head's prototypes (`losses.swapped_prediction_loss`, nats).
  Eval draws its warps with the step's fixed key, so its loss is comparable across steps;
  "view_agreement" is the share of frames both views assign to the same prototype."""
  if not model.mel_warp and "perturbed" not in batch:
    raise ValueError("spin needs views that differ: data.perturb_voice=True (other voices) "
                     "and/or model.mel_warp > 0 (frequency warps)")
  warp_rng, dropout_rng = jax.random.split(rng)
  audio, valid = batch["audio"] * batch["mask"], model.valid_frames(batch["mask"])
  views = (audio, batch.get("perturbed", audio) * batch["mask"])
  factors = [None, None]
  if model.mel_warp:
    factors = jax.random.uniform(warp_rng, (2, audio.shape[0]), minval=1 - model.mel_warp,
                                 maxval=1 + model.mel_warp)
  a, b = (model.apply({"params": variables["params"]}, views[i], batch["mask"], None, train,
                      factors[i], rngs={"dropout": jax.random.fold_in(dropout_rng, i)})
          for i in range(2))
  cosine = lambda out: out["logits"] * model.logit_temperature
  loss, agreement = losses.swapped_prediction_loss(a["logits"], b["logits"], cosine(a),
                                                   cosine(b), valid, model.sinkhorn_epsilon)
  usage = jnp.sum(jax.nn.one_hot(a["logits"].argmax(-1), model.num_targets) * valid[..., None],
                  (0, 1)) / jnp.maximum(valid.sum(), 1)
  metrics = {"loss": loss, "view_agreement": agreement,
             "prototype_perplexity": rvq.perplexity(usage),
             "num_predictions": valid.sum().astype(jnp.float32)}
  return loss, (metrics, {})


def hubert_load_targets(model: nn.Module) -> dict:
  """{"targets": ...} for a fresh HuBERT run: the k-means of `model.target_kmeans` and, for
  targets="teacher", the params of `model.teacher_workdir`'s latest checkpoint. Nothing for
  the w2v_bert and spin objectives (their targets come from the model itself)."""
  if model.objective in ("w2v_bert", "spin"):
    return {}
  if not model.target_kmeans:
    raise ValueError(
        "hubert needs target_kmeans: fit the targets' k-means first, e.g. "
        "python -m launch.fit_kmeans --features=mfcc --num_clusters=100 --output=targets.npz "
        "(iteration 1) or --workdir=PREVIOUS_RUN --layer=6 (iteration n), then "
        "--config.model.target_kmeans=targets.npz")
  if not os.path.exists(model.target_kmeans):
    raise FileNotFoundError(f"target_kmeans {model.target_kmeans} does not exist")
  fitted = kmeans.load(model.target_kmeans)
  dim = _hubert_target_dim(model)
  if fitted.centroids.shape != (model.num_targets, dim):
    raise ValueError(
        f"{model.target_kmeans} holds {fitted.centroids.shape[0]} centroids of "
        f"{fitted.centroids.shape[1]}-D features; this model predicts num_targets="
        f"{model.num_targets} clusters of {dim}-D {model.targets} features")
  targets = {"kmeans": fitted._asdict()}
  if model.targets == "teacher":
    from audiojax.train import trainer  # The trainer imports this module.

    if not model.teacher_workdir:
      raise ValueError("targets='teacher' needs teacher_workdir (the previous iteration's run)")
    teacher_config = trainer.load_config(model.teacher_workdir)
    teacher, _, variables, _ = trainer.restore_variables(teacher_config, model.teacher_workdir)
    if not isinstance(teacher, hubert.Model) or any(
        getattr(teacher, f) != getattr(model, f) for f in HUBERT_ARCHITECTURE):
      raise ValueError(f"the teacher in {model.teacher_workdir} is not a hubert model of this "
                       f"architecture ({', '.join(HUBERT_ARCHITECTURE)} must match)")
    targets["teacher"] = _without_head(variables["params"])
  return {"targets": targets}


# The fields a teacher (targets="teacher") must share with its student.
HUBERT_ARCHITECTURE = ("sample_rate_hz", "frontend", "conv_channels", "conv_kernels",
                       "conv_strides", "num_mels", "mel_subsampling", "hop_samples",
                       "num_layers", "embed_dim", "num_heads", "mlp_dim", "num_buckets",
                       "max_distance", "position", "conv_pos_kernel", "conv_pos_groups",
                       "norm_first", "use_bias", "conv_norm", "frontend_padding", "exact_gelu",
                       "normalize_audio", "norm_epsilon")


def phone_recognizer_init(model: nn.Module, rng: jax.Array, batch: dict):
  return model.init(rng, batch["audio"], batch["mask"])


def phone_recognizer_loss(model: nn.Module, variables, batch: dict, rng: jax.Array,
                          train: bool = True):
  """CTC loss (`optax.ctc_loss`, blank 0) of a phone recognizer on the batch's phone targets
  (`phoneme_ids` [b, max_phonemes], `phoneme_lengths` [b]; audiojax.data.pipeline), in nats per
  target phone (summed over the crops, divided by their phones); logits of frames past the
  audio are padding. Also the phone error rate of greedy decoding (edits / target phones) and
  the share of frames whose best class is blank. In training, spans of frames are masked
  (`model.mask_prob`, SpecAugment-like) and noise is added to some crops (`model.noise_prob`,
  `phone_recognizer.add_noise`); eval sees every frame of the clean audio."""
  mask_rng, dropout_rng, noise_rng = jax.random.split(rng, 3)
  valid = model.valid_frames(batch["mask"])
  masked = None
  if train and model.mask_prob > 0:
    masked = hubert.span_mask(mask_rng, valid.shape, model.mask_prob, model.mask_length) & valid
  audio = batch["audio"] * batch["mask"]
  if train and model.noise_prob > 0:
    audio = phone_recognizer.add_noise(noise_rng, audio, batch["mask"], model.noise_prob,
                                       tuple(model.noise_snr_db))
  logits = model.apply(variables, audio, batch["mask"], masked, train,
                       rngs={"dropout": dropout_rng})
  labels, lengths = batch["phoneme_ids"], batch["phoneme_lengths"]
  label_paddings = (jnp.arange(labels.shape[1]) >= lengths[:, None]).astype(jnp.float32)
  per_crop = optax.ctc_loss(logits, 1.0 - valid.astype(jnp.float32), labels, label_paddings,
                            blank_id=phone_recognizer.BLANK)
  num_phones = lengths.sum().astype(jnp.float32)
  loss = per_crop.sum() / jnp.maximum(num_phones, 1.0)
  classes, emit = phone_recognizer.greedy_path(logits, valid)
  edits = phone_recognizer.edit_distances(classes, emit, labels, lengths)
  metrics = {"loss": loss, "phone_error_rate": edits.sum() / jnp.maximum(num_phones, 1.0),
             "blank_fraction": _masked_mean(classes == phone_recognizer.BLANK, valid),
             "num_predictions": num_phones}
  return loss, (metrics, {})


def acoustic_init(model: nn.Module, rng: jax.Array, batch: dict):
  return model.init(rng, batch["condition"], _speaker(model, batch))


def acoustic_loss(model: nn.Module, variables, batch: dict, rng: jax.Array,
                  train: bool = True):
  """L1 + L2 between a text-to-speech acoustic model's log-mel frames and those of the batch
  audio (`losses.mel_features` at the model's hop and bands: a vocoder's conditioning), over
  the frames that start inside the utterance (`mask` at each frame's first sample)."""
  target = losses.mel_features(batch["audio"], model.sample_rate_hz, model.hop, model.num_mels)
  predicted = model.apply(variables, batch["condition"], _speaker(model, batch), train,
                          rngs={"dropout": rng})  # [b, frames, mels]
  error = predicted - target
  frames = batch["mask"][:, ::model.hop]  # [b, frames]
  valid = jnp.broadcast_to(frames[..., None], error.shape)
  l1, l2 = _masked_mean(jnp.abs(error), valid), _masked_mean(jnp.square(error), valid)
  loss = l1 + l2
  return loss, ({"loss": loss, "mel_l1": l1, "mel_l2": l2,
                 "num_predictions": frames.sum().astype(jnp.float32)}, {})


def speaker_encoder_init(model: nn.Module, rng: jax.Array, batch: dict):
  return model.init(rng, reference_features(model, batch["audio"]))


def speaker_encoder_loss(model: nn.Module, variables, batch: dict, rng: jax.Array,
                         train: bool = True):
  """AM-softmax cross entropy (nats) of naming each crop's speaker from its vector
  (`audiojax.models.speaker_encoder`: the margin in training only); accuracy of the argmax."""
  del rng
  _, logits = model.apply(variables, reference_features(model, batch["audio"]))
  labels = batch["speaker"]
  if train:
    logits = logits - model.scale * model.margin * jax.nn.one_hot(labels, logits.shape[-1])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  accuracy = (logits.argmax(-1) == labels).mean()
  return loss, ({"loss": loss, "accuracy": accuracy}, {})


def lm_init(model: nn.Module, rng: jax.Array, batch: dict):
  return model.init(rng, batch["tokens"])


def lm_loss(model: nn.Module, variables, batch: dict, rng: jax.Array, train: bool = True):
  """Next-token cross entropy (nats) of an AudioLM stage at the positions its `loss_mask`
  marks as targets (`audiojax.data.audiolm_tokens`); accuracy of the argmax there."""
  tokens = batch["tokens"]
  logits = model.apply(variables, tokens[:, :-1], train, rngs={"dropout": rng})
  targets, mask = tokens[:, 1:], batch["loss_mask"][:, 1:]
  count = jnp.maximum(mask.sum(), 1.0)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  loss = jnp.sum(nll * mask) / count
  accuracy = jnp.sum((logits.argmax(-1) == targets) * mask) / count
  return loss, ({"loss": loss, "accuracy": accuracy, "bits_per_token": loss / math.log(2),
                 "num_predictions": mask.sum()}, {})


TASKS = {
    "wavenet": Task(init_fn=wavenet_init, loss_fn=wavenet_loss, generate=wavenet_generate),
    "soundstream": Task(init_fn=soundstream_init, loss_fn=soundstream_loss),
    "transformer": Task(init_fn=lm_init, loss_fn=lm_loss),
    "hubert": Task(init_fn=hubert_init, loss_fn=hubert_loss, load_state=hubert_load_targets),
    "phone_recognizer": Task(init_fn=phone_recognizer_init, loss_fn=phone_recognizer_loss),
    "acoustic": Task(init_fn=acoustic_init, loss_fn=acoustic_loss),
    "speaker_encoder": Task(init_fn=speaker_encoder_init, loss_fn=speaker_encoder_loss),
}


def get_task(model_name: str) -> Task:
  if model_name not in TASKS:
    raise ValueError(f"no training task for model {model_name!r}; known: {sorted(TASKS)}")
  return TASKS[model_name]
