"""The MFCC k-means baseline tokens (HuBERT's first-iteration targets).

39-D features per frame: 13 MFCCs (40 mel bands, log power) with their deltas and
delta-deltas, at `frame_rate_hz` (hop = sample_rate_hz / frame_rate_hz samples, window
max(25 ms, hop)); frame t is centred on the middle of [t, t + 1) / frame_rate_hz seconds, as in
`token_metrics.frame_phoneme_labels`. Tokens are their k-means clusters (`models.kmeans`).
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.eval import token_metrics
from audiojax.models import kmeans

NUM_MFCC = 13
NUM_MELS = 40
FEATURE_DIM = 3 * NUM_MFCC


def hop_samples(frame_rate_hz: float, sample_rate_hz: int) -> int:
  hop = sample_rate_hz / frame_rate_hz
  if hop != int(hop) or hop < 1:
    raise ValueError(f"frame_rate_hz={frame_rate_hz} must divide the sample rate "
                     f"{sample_rate_hz} Hz into whole hops")
  return int(hop)


def _delta_filter(order: int, width: int = 9) -> np.ndarray:
  """librosa.feature.delta's Savitzky-Golay filter (polyorder = deriv = order), as weights
  applied to x[t - width // 2 .. t + width // 2]."""
  from scipy import signal

  return signal.savgol_coeffs(width, order, deriv=order, use="dot").astype(np.float32)


def mfcc(audio: jnp.ndarray, sample_rate_hz: int, frame_rate_hz: float) -> jnp.ndarray:
  """float audio [b, samples] -> float32 MFCC frames [b, frames, 39] (jittable).

  librosa's recipe, so a frame equals `librosa.feature.mfcc` + `librosa.feature.delta`
  (mode="nearest") on the same window: power STFT (periodic Hann of `win` samples centred in
  n_fft), 40 Slaney mel bands, 10 log10 floored at 1e-10 and at the utterance's maximum - 80 dB
  (per example: pad a batch with silence, not with other speech), orthonormal DCT-II (13),
  then 9-frame Savitzky-Golay deltas and delta-deltas, edge frames repeated.
  """
  from audiojax.train import losses

  hop = hop_samples(frame_rate_hz, sample_rate_hz)
  win = max(round(0.025 * sample_rate_hz), hop)
  n_fft = 1 << (win - 1).bit_length()
  frames = token_metrics.num_frames(audio.shape[1], frame_rate_hz, sample_rate_hz)
  # Frame t's window is centred on sample t * hop + hop / 2.
  left = n_fft // 2 - hop // 2
  padded = jnp.pad(audio.astype(jnp.float32),
                   ((0, 0), (left, (frames - 1) * hop + n_fft - left - audio.shape[1])))
  starts = jnp.arange(frames)[:, None] * hop
  window = np.zeros(n_fft, np.float32)
  offset = (n_fft - win) // 2
  window[offset:offset + win] = np.hanning(win + 1)[:-1]
  spectrum = jnp.fft.rfft(padded[:, starts + jnp.arange(n_fft)[None, :]] * window, axis=-1)
  power = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2  # [b, frames, bins]
  mel = jnp.matmul(power, losses.mel_filterbank(sample_rate_hz, n_fft, NUM_MELS),
                   precision=jax.lax.Precision.HIGHEST)
  db = 10.0 * jnp.log10(jnp.maximum(mel, 1e-10))
  db = jnp.maximum(db, db.max(axis=(1, 2), keepdims=True) - 80.0)
  cepstra = jax.scipy.fft.dct(db, type=2, norm="ortho", axis=-1)[..., :NUM_MFCC]
  edge = jnp.pad(cepstra, ((0, 0), (4, 4), (0, 0)), mode="edge")
  deltas = [sum(float(w) * edge[:, j:j + frames] for j, w in enumerate(_delta_filter(k)))
            for k in (1, 2)]
  return jnp.concatenate([cepstra, *deltas], axis=-1)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _mfcc_jit(audio, sample_rate_hz, frame_rate_hz):
  return mfcc(audio, sample_rate_hz, frame_rate_hz)


def mfcc_features(audio: np.ndarray, sample_rate_hz: int, frame_rate_hz: float) -> np.ndarray:
  """float audio [samples] -> float32 [frames, 39], frames = `token_metrics.num_frames`.

  One utterance through `mfcc`, zero-padded to a power-of-two number of frames so that lengths
  share compilations (the padding adds silent frames after the last, dropped here; the last 4
  frames' deltas see them instead of repeats of the last frame)."""
  hop = hop_samples(frame_rate_hz, sample_rate_hz)
  frames = token_metrics.num_frames(audio.shape[0], frame_rate_hz, sample_rate_hz)
  padded = np.zeros(max(1 << (frames - 1).bit_length(), 1) * hop, np.float32)
  padded[:audio.shape[0]] = audio
  return np.asarray(_mfcc_jit(padded[None], sample_rate_hz, frame_rate_hz))[0, :frames]


def fit(audio: Sequence[np.ndarray], sample_rate_hz: int, frame_rate_hz: float,
        num_clusters: int, seed: int = 0, **kmeans_kwargs) -> kmeans.KMeans:
  """k-means of the MFCC frames of every utterance (`kmeans.fit` arguments pass through)."""
  features = np.concatenate([mfcc_features(a, sample_rate_hz, frame_rate_hz) for a in audio])
  return kmeans.fit(features, num_clusters, jax.random.key(seed), **kmeans_kwargs)


def tokenize(audio: Sequence[np.ndarray], model: kmeans.KMeans, sample_rate_hz: int,
             frame_rate_hz: float) -> list[np.ndarray]:
  """float audio [samples] per utterance -> int32 tokens [frames] per utterance."""
  features = [mfcc_features(a, sample_rate_hz, frame_rate_hz) for a in audio]
  tokens = kmeans.assign(np.concatenate(features), model)
  return np.split(tokens, np.cumsum([len(f) for f in features])[:-1])
