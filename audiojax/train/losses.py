"""Training losses shared by the audio models: spectral reconstruction and adversarial terms.

Shapes: audio [batch, samples]; discriminator outputs as lists of feature maps with the logits
last (see `audiojax.models.discriminators`).
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import librosa
import numpy as np

from audiojax.models import discriminators


@functools.cache
def mel_filterbank(sample_rate_hz: int, n_fft: int, n_mels: int) -> np.ndarray:
  """[n_fft // 2 + 1, n_mels] triangular mel filters (librosa's, Slaney scale).

  At the smallest windows a few low bands fall between FFT bins and stay empty; they add a
  constant to both spectrograms, so librosa's warning about them is silenced.
  """
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    bank = librosa.filters.mel(sr=sample_rate_hz, n_fft=n_fft, n_mels=n_mels)
  return bank.T.astype(np.float32)


def log_mel(audio: jnp.ndarray, sample_rate_hz: int, window: int, hop: int,
            n_mels: int) -> jnp.ndarray:
  """Log mel magnitude spectrogram [b, frames, n_mels] of audio [b, samples]."""
  stft = discriminators.complex_stft(audio, window, hop)
  magnitude = jnp.sqrt(jnp.sum(stft**2, -1) + 1e-9)  # [b, frames, bins]
  return jnp.log(magnitude @ mel_filterbank(sample_rate_hz, window, n_mels) + 1e-5)


def mel_features(audio: jnp.ndarray, sample_rate_hz: int, hop: int, num_mels: int,
                 window: int | None = None) -> jnp.ndarray:
  """Log-mel conditioning frames [b, ceil(samples / hop), num_mels] of audio [b, samples].

  Frame k describes audio[:, k * hop:(k + 1) * hop]: a Hann window of `window` (default
  4 * hop) samples centred on the frame's middle, so it also sees (window - hop) / 2 samples on
  either side (reflect-padded at the ends). Scaled so that the floor (ln 1e-5) maps to 0 and a
  full-scale band to about 1: (ln(mel + 1e-5) - ln 1e-5) / -ln 1e-5.
  """
  window = window or 4 * hop
  samples, frames = audio.shape[1], -(-audio.shape[1] // hop)
  left = (window - hop) // 2
  right = (frames - 1) * hop + window - left - samples
  padded = jnp.pad(audio, ((0, 0), (left, right)), mode="reflect")
  return (log_mel(padded, sample_rate_hz, window, hop, num_mels) - _MEL_FLOOR) / -_MEL_FLOOR


_MEL_FLOOR = np.log(1e-5)  # `mel_features`' floor: ln of `log_mel`'s offset.


def mel_features_power(features: jnp.ndarray, sample_rate_hz: int, hop: int,
                       window: int | None = None) -> jnp.ndarray:
  """`mel_features` [..., frames, M] -> an estimate of each frame's power spectrum [...,
  frames, window // 2 + 1] (FFT bins of the `window`): each bin's magnitude is the mean of
  the bands over it, weighted by their filters (bins under none take 0). A smooth envelope,
  not the harmonics: what linear prediction from the features needs (`wavenet.lpc_coefficients`).
  """
  window = window or 4 * hop
  bank = mel_filterbank(sample_rate_hz, window, features.shape[-1])  # [bins, M]
  spread = bank / np.maximum(bank.sum(axis=1, keepdims=True), 1e-8)
  mel = jnp.maximum(jnp.exp(features * -_MEL_FLOOR + _MEL_FLOOR) - 1e-5, 0.0)
  return jnp.square(mel @ spread.T)


def multiscale_mel_loss(real: jnp.ndarray, fake: jnp.ndarray, sample_rate_hz: int,
                        windows=(64, 128, 256, 512, 1024, 2048), n_mels: int = 64) -> jnp.ndarray:
  """SoundStream's reconstruction loss: sum over windows s (hop s/4) of
  L1(log mel) + sqrt(s / 2) * L2(log mel), means over frames and bins; windows longer than the
  audio are skipped."""
  total = 0.0
  for window in windows:
    if window > real.shape[-1]:
      continue
    mels = min(n_mels, window // 4)
    a = log_mel(real, sample_rate_hz, window, window // 4, mels)
    b = log_mel(fake, sample_rate_hz, window, window // 4, mels)
    total += jnp.mean(jnp.abs(a - b)) + jnp.sqrt(window / 2) * jnp.sqrt(
        jnp.mean((a - b) ** 2) + 1e-9)
  return total


def hinge_discriminator_loss(real_logits: list, fake_logits: list) -> jnp.ndarray:
  """mean(relu(1 - D(real))) + mean(relu(1 + D(fake))), averaged over discriminators."""
  terms = [jnp.mean(jax.nn.relu(1 - r)) + jnp.mean(jax.nn.relu(1 + f))
           for r, f in zip(real_logits, fake_logits, strict=True)]
  return sum(terms) / len(terms)


def hinge_generator_loss(fake_logits: list) -> jnp.ndarray:
  """mean(relu(1 - D(fake))), averaged over discriminators."""
  return sum(jnp.mean(jax.nn.relu(1 - f)) for f in fake_logits) / len(fake_logits)


def feature_matching_loss(real_features: list, fake_features: list) -> jnp.ndarray:
  """Mean over feature maps of L1(real - fake) / mean |real| (real features are constants)."""
  terms = [jnp.mean(jnp.abs(jax.lax.stop_gradient(r) - f))
           / (jnp.mean(jnp.abs(jax.lax.stop_gradient(r))) + 1e-5)
           for r, f in zip(real_features, fake_features, strict=True)]
  return sum(terms) / len(terms)


def si_snr(reference: jnp.ndarray, estimate: jnp.ndarray, mask: jnp.ndarray | None = None,
           eps: float = 1e-8) -> jnp.ndarray:
  """Scale-invariant SNR in dB per example: [b, samples] -> [b]."""
  mask = jnp.ones_like(reference) if mask is None else mask
  reference, estimate = reference * mask, estimate * mask
  n = jnp.maximum(mask.sum(-1, keepdims=True), 1.0)
  reference = reference - reference.sum(-1, keepdims=True) / n * mask
  estimate = estimate - estimate.sum(-1, keepdims=True) / n * mask
  scale = (jnp.sum(estimate * reference, -1, keepdims=True)
           / (jnp.sum(reference**2, -1, keepdims=True) + eps))
  target = scale * reference
  noise = estimate - target
  return 10 * jnp.log10((jnp.sum(target**2, -1) + eps) / (jnp.sum(noise**2, -1) + eps))


def contrastive_loss(context: jnp.ndarray, targets: jnp.ndarray, codes: jnp.ndarray,
                     masked: jnp.ndarray, rng: jax.Array, num_negatives: int,
                     temperature: float) -> tuple[jnp.ndarray, jnp.ndarray]:
  """wav2vec 2.0 / w2v-BERT's contrastive loss: at each masked frame, cross entropy (nats) of
  picking its own target among `num_negatives` targets of other masked frames of the same
  clip, drawn uniformly with replacement, by cosine similarity / temperature. A distractor
  with the frame's own code (the same target vector) is left out.

  context, targets: [b, T, D]; codes: int [b, T]; masked: bool [b, T], the frames scored and
  drawn from (w2v_bert_loss also scores the unmasked frames among themselves).
  Returns (mean loss over the masked frames of clips with 2 or more, accuracy of the argmax).
  """
  b, t, _ = context.shape
  # Not v / max(|v|, eps): the norm's gradient at a zero vector (padding frames) is NaN.
  unit = lambda v: v * jax.lax.rsqrt(jnp.maximum(jnp.sum(v * v, -1, keepdims=True), 1e-12))
  similarity = jnp.einsum("btd,bsd->bts", unit(context), unit(targets)) / temperature
  order = jnp.argsort(~masked, axis=1, stable=True)  # Masked frames first, in time order.
  rank = jnp.argsort(order, axis=1)  # Each frame's place in `order`.
  count = masked.sum(1)  # [b]
  draws = jax.random.randint(rng, (b, t, num_negatives), 0,
                             jnp.maximum(count - 1, 1)[:, None, None])
  draws = draws + (draws >= rank[:, :, None])  # Skip the frame itself.
  negatives = jnp.take_along_axis(order, draws.reshape(b, -1), axis=1).reshape(draws.shape)
  positive = jnp.diagonal(similarity, axis1=1, axis2=2)[..., None]  # [b, T, 1]
  negative = jnp.take_along_axis(similarity, negatives, axis=2)  # [b, T, K]
  same_code = jnp.take_along_axis(codes, negatives.reshape(b, -1), axis=1).reshape(
      draws.shape) == codes[:, :, None]
  logits = jnp.concatenate([positive, jnp.where(same_code, -jnp.inf, negative)], -1)
  nll = -jax.nn.log_softmax(logits, -1)[..., 0]
  where = masked & (count >= 2)[:, None]
  total = jnp.maximum(where.sum(), 1)
  accuracy = jnp.sum((logits.argmax(-1) == 0) * where) / total
  return jnp.sum(jnp.where(where, nll, 0.0)) / total, accuracy


def sinkhorn_assignments(scores: jnp.ndarray, where: jnp.ndarray, epsilon: float,
                         iterations: int = 3) -> jnp.ndarray:
  """SwAV's balanced soft assignment of rows to prototypes: exp(scores / epsilon) rescaled
  alternately so every prototype takes an equal share of the rows and every row sums to 1
  (Sinkhorn-Knopp, a fixed number of `iterations`, in the log domain). No gradient.

  scores: [N, K] (cosine similarities); where: bool [N], the rows that count (the others get
  0). Returns [N, K], each counted row a distribution over the K prototypes."""
  k = scores.shape[-1]
  log_q = jnp.where(where[:, None], jax.lax.stop_gradient(scores).astype(jnp.float32)
                    / epsilon, -jnp.inf)
  for _ in range(iterations):
    columns = jax.nn.logsumexp(log_q, axis=0, keepdims=True)  # [1, K]
    log_q = log_q - columns - jnp.log(k)  # Each prototype: 1 / K of the mass.
    row = jax.nn.logsumexp(log_q, axis=1, keepdims=True)  # [N, 1]
    log_q = jnp.where(where[:, None], log_q - row, -jnp.inf)  # Each row: 1.
  return jnp.where(where[:, None], jnp.exp(log_q), 0.0)


def swapped_prediction_loss(logits_a: jnp.ndarray, logits_b: jnp.ndarray,
                            cosine_a: jnp.ndarray, cosine_b: jnp.ndarray, where: jnp.ndarray,
                            epsilon: float) -> tuple[jnp.ndarray, jnp.ndarray]:
  """SwAV / SPIN: each view predicts the other's balanced assignment (`sinkhorn_assignments`
  over all counted frames of the batch). logits_*: [b, T, K] (cosine / temperature, what is
  trained); cosine_*: [b, T, K] (what is assigned); where: bool [b, T]. Returns (cross entropy
  in nats, mean over the counted frames and both directions; the share of frames whose two
  views' assignments have the same argmax)."""
  k = logits_a.shape[-1]
  flat = lambda x: x.reshape(-1, k)
  mask = where.reshape(-1)
  q_a = sinkhorn_assignments(flat(cosine_a), mask, epsilon)
  q_b = sinkhorn_assignments(flat(cosine_b), mask, epsilon)
  cross = lambda q, logits: -jnp.sum(q * jax.nn.log_softmax(flat(logits), -1), -1)
  total = jnp.maximum(mask.sum(), 1)
  loss = jnp.sum(jnp.where(mask, cross(q_b, logits_a) + cross(q_a, logits_b), 0.0)) / (2 * total)
  agree = jnp.sum((q_a.argmax(-1) == q_b.argmax(-1)) * mask) / total
  return loss, agree
