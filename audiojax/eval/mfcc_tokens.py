"""The MFCC k-means baseline tokens (HuBERT's first-iteration targets).

39-D features per frame: 13 MFCCs (40 mel bands, log power) with their deltas and
delta-deltas, at `frame_rate_hz` (hop = sample_rate_hz / frame_rate_hz samples, window
max(25 ms, hop)); frame t is centred on the middle of [t, t + 1) / frame_rate_hz seconds, as in
`token_metrics.frame_phoneme_labels`. Tokens are their k-means clusters (`models.kmeans`).
"""

from collections.abc import Sequence

import jax
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


def mfcc_features(audio: np.ndarray, sample_rate_hz: int, frame_rate_hz: float) -> np.ndarray:
  """float audio [samples] -> float32 [frames, 39], frames = `token_metrics.num_frames`."""
  import librosa

  hop = hop_samples(frame_rate_hz, sample_rate_hz)
  win = max(round(0.025 * sample_rate_hz), hop)
  n_fft = 1 << (win - 1).bit_length()
  frames = token_metrics.num_frames(audio.shape[0], frame_rate_hz, sample_rate_hz)
  # Frame t's window is centred on sample t * hop + hop / 2.
  left = n_fft // 2 - hop // 2
  padded = np.zeros(left + frames * hop + n_fft, np.float32)
  padded[left:left + audio.shape[0]] = audio
  mfcc = librosa.feature.mfcc(y=padded, sr=sample_rate_hz, n_mfcc=NUM_MFCC, n_fft=n_fft,
                              hop_length=hop, win_length=win, center=False, n_mels=NUM_MELS)
  mfcc = mfcc[:, :frames]  # [13, frames]
  deltas = [librosa.feature.delta(mfcc, order=k, mode="nearest") for k in (1, 2)]
  return np.concatenate([mfcc, *deltas]).T.astype(np.float32)


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
