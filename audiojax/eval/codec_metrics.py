"""How close a codec's reconstruction is to its reference: spectral distances, SI-SNR, PESQ, STOI.

Every metric takes a reference and an estimate of the same length, mono floats in [-1, 1]
(`[samples]`) at `sample_rate_hz`, and returns a float:
  mel_distance  mean over windows 64 ... 2048 (hop window / 4) of the mean |log-mel difference|
                (`train.losses.log_mel`: the L1 term of the codec's multi-scale mel training
                loss, without its L2 term). 0 = equal.
  mr_stft       multi-resolution STFT distance (Parallel WaveGAN): spectral convergence plus
                mean |log magnitude difference|, averaged over FFT 512 / 1024 / 2048. 0 = equal.
  si_snr_db     scale-invariant SNR in dB (`train.losses.si_snr`). Higher is better.
  pesq          wide-band PESQ (ITU-T P.862.2, MOS-LQO 1.0 ... 4.64) at 16 kHz (the audio is
                resampled); NaN where PESQ cannot score the clip (no speech, too short).
  stoi          short-time objective intelligibility, 0 ... 1; NaN where it cannot score.
  log_spectral_distance  (super-resolution; Kuleshov et al., 2017) mean over STFT frames of
                sqrt(mean over bins of (log10 |X|^2 - log10 |Y|^2)^2), optionally only bins
                at or above `min_hz` (the band a super-resolution model adds). 0 = equal.
PESQ and STOI need the `eval` extra (`pip install audiojax[eval]`: `pesq`, `pystoi`).
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import librosa
import numpy as np

from audiojax.data import audio_io
from audiojax.train import losses

MEL_WINDOWS = (64, 128, 256, 512, 1024, 2048)
MEL_BANDS = 64
# (FFT size, hop, window length) as in Parallel WaveGAN's multi-resolution STFT loss.
STFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))
PESQ_RATE_HZ = 16000
METRICS = ("mel_distance", "mr_stft", "si_snr_db", "pesq", "stoi")
_si_snr = jax.jit(losses.si_snr)


def _check(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  reference = np.asarray(reference, np.float32)
  estimate = np.asarray(estimate, np.float32)
  if reference.ndim != 1 or reference.shape != estimate.shape:
    raise ValueError(f"expected two mono clips [samples] of one length, got shapes "
                     f"{reference.shape} and {estimate.shape}")
  return reference, estimate


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate_hz: int,
                          min_hz: float = 0.0, n_fft: int = 2048, hop: int = 512) -> float:
  """LSD (module docstring), power floored at 1e-10."""
  reference, estimate = _check(reference, estimate)
  power = lambda x: np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop)) ** 2  # [bins, frames]
  bins = librosa.fft_frequencies(sr=sample_rate_hz, n_fft=n_fft) >= min_hz
  diff = np.log10(power(reference)[bins] + 1e-10) - np.log10(power(estimate)[bins] + 1e-10)
  return float(np.mean(np.sqrt(np.mean(diff**2, axis=0))))


def _padded_length(num_samples: int) -> int:
  """Clips are zero-padded to a power of two (>= the largest mel window), so the jitted metrics
  compile once per length bucket, not once per clip; masks keep the padding out."""
  return max(MEL_WINDOWS[-1], 1 << (num_samples - 1).bit_length())


def _pad(audio: np.ndarray) -> np.ndarray:
  return np.pad(audio, (0, _padded_length(audio.shape[0]) - audio.shape[0]))


@functools.partial(jax.jit, static_argnames="sample_rate_hz")
def _mel_l1(reference: jax.Array, estimate: jax.Array, num_samples: jax.Array,
            sample_rate_hz: int) -> jax.Array:
  """Per window of MEL_WINDOWS: mean |log-mel difference| over the frames that lie within the
  first `num_samples` of the zero-padded clips [padded samples]."""
  out = []
  for window in MEL_WINDOWS:
    hop = window // 4
    a, b = (losses.log_mel(x[None], sample_rate_hz, window, hop, min(MEL_BANDS, hop))[0]
            for x in (reference, estimate))  # [frames, bands]
    frames = (num_samples - window) // hop + 1
    mask = (jnp.arange(a.shape[0]) < frames)[:, None]
    out.append(jnp.sum(jnp.abs(a - b) * mask) / (jnp.maximum(frames, 1) * a.shape[1]))
  return jnp.stack(out)


def mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate_hz: int) -> float:
  """Mean over `MEL_WINDOWS` (those no longer than the clip) of mean |log-mel difference|."""
  reference, estimate = _check(reference, estimate)
  num_samples = reference.shape[0]
  if num_samples < MEL_WINDOWS[0]:
    raise ValueError(f"a clip of {num_samples} samples is shorter than the smallest mel "
                     f"window ({MEL_WINDOWS[0]})")
  per_window = np.asarray(_mel_l1(_pad(reference), _pad(estimate), num_samples,
                                  sample_rate_hz=sample_rate_hz))
  return float(np.mean(per_window[np.asarray(MEL_WINDOWS) <= num_samples]))


def mr_stft_distance(reference: np.ndarray, estimate: np.ndarray) -> float:
  """Spectral convergence |S - S'|_F / |S|_F plus mean |log S - log S'| (S, S': STFT
  magnitudes of reference and estimate, Hann window), averaged over `STFT_RESOLUTIONS`."""
  reference, estimate = _check(reference, estimate)
  total = 0.0
  for n_fft, hop, window in STFT_RESOLUTIONS:
    s, s_hat = (np.sqrt(np.maximum(np.abs(librosa.stft(
        x, n_fft=n_fft, hop_length=hop, win_length=window, window="hann",
        pad_mode="constant")) ** 2, 1e-7)) for x in (reference, estimate))
    convergence = np.linalg.norm(s - s_hat) / np.linalg.norm(s)
    total += convergence + np.mean(np.abs(np.log(s) - np.log(s_hat)))
  return float(total / len(STFT_RESOLUTIONS))


def si_snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
  """Scale-invariant SNR in dB (means removed); large (~100+) for identical clips."""
  reference, estimate = _check(reference, estimate)
  mask = _pad(np.ones_like(reference))
  return float(_si_snr(_pad(reference)[None], _pad(estimate)[None], mask[None])[0])


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate_hz: int) -> float:
  """Wide-band PESQ (MOS-LQO) at 16 kHz; NaN when PESQ cannot score the clip."""
  try:
    from pesq import PesqError, pesq
  except ImportError as err:
    raise ImportError(f"{err}: PESQ needs pip install 'audiojax[eval]'") from err
  reference, estimate = _check(reference, estimate)
  if not np.any(reference):
    return float("nan")  # A silent reference has no utterance to score.
  reference = audio_io.resample(reference, sample_rate_hz, PESQ_RATE_HZ)
  estimate = audio_io.resample(estimate, sample_rate_hz, PESQ_RATE_HZ)
  try:
    return float(pesq(PESQ_RATE_HZ, reference, estimate, "wb"))
  except (PesqError, ValueError):  # No utterances detected, too short, a silent estimate.
    return float("nan")


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate_hz: int) -> float:
  """STOI (pystoi, classic not extended); NaN for a silent reference, a clip shorter than
  one of its frames, or when too few non-silent frames remain."""
  try:
    from pystoi import stoi as pystoi_stoi
    from pystoi.stoi import FS, N_FRAME
  except ImportError as err:
    raise ImportError(f"{err}: STOI needs pip install 'audiojax[eval]'") from err
  reference, estimate = _check(reference, estimate)
  if not np.any(reference) or reference.shape[0] * FS < N_FRAME * sample_rate_hz:
    return float("nan")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    score = float(pystoi_stoi(reference, estimate, sample_rate_hz, extended=False))
  if any("Not enough STFT frames" in str(w.message) for w in caught):
    return float("nan")  # pystoi's placeholder 1e-5: nothing to score.
  return score


def compute(reference: np.ndarray, estimate: np.ndarray, sample_rate_hz: int,
            speech: bool = True) -> dict[str, float]:
  """Every metric in `METRICS`; PESQ and STOI are NaN unless `speech`."""
  nan = float("nan")
  return {
      "mel_distance": mel_distance(reference, estimate, sample_rate_hz),
      "mr_stft": mr_stft_distance(reference, estimate),
      "si_snr_db": si_snr_db(reference, estimate),
      "pesq": pesq_wb(reference, estimate, sample_rate_hz) if speech else nan,
      "stoi": stoi(reference, estimate, sample_rate_hz) if speech else nan,
  }
