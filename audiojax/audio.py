"""Pure numeric audio transforms shared by models, data, samplers and metrics.

Waveforms are float arrays in [-1, 1]; mu-law classes are int32 in [0, mu]; linear levels are
int32 in [0, num_levels), level k at amplitude 2k / (num_levels - 1) - 1 (PixelCNN++'s grid:
both -1 and 1 are levels).
Works on numpy and jax arrays alike (functions use `jnp`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def mu_law_compress(audio: jnp.ndarray, mu: int = 255) -> jnp.ndarray:
  """f(x) = sign(x) ln(1 + mu|x|) / ln(1 + mu), for x in [-1, 1]."""
  audio = jnp.clip(audio, -1.0, 1.0)
  return jnp.sign(audio) * jnp.log1p(mu * jnp.abs(audio)) / jnp.log1p(mu)


def mu_law_expand(companded: jnp.ndarray, mu: int = 255) -> jnp.ndarray:
  """Inverse of `mu_law_compress`."""
  return jnp.sign(companded) * jnp.expm1(jnp.abs(companded) * jnp.log1p(mu)) / mu


def mu_law_encode(audio: jnp.ndarray, mu: int = 255) -> jnp.ndarray:
  """Waveform in [-1, 1] -> int32 classes in [0, mu] (mu + 1 classes)."""
  companded = mu_law_compress(audio, mu)
  return jnp.clip(jnp.round((companded + 1.0) / 2.0 * mu), 0, mu).astype(jnp.int32)


def mu_law_decode(classes: jnp.ndarray, mu: int = 255) -> jnp.ndarray:
  """int32 classes in [0, mu] -> waveform in [-1, 1] (bin centres)."""
  companded = 2.0 * classes.astype(jnp.float32) / mu - 1.0
  return mu_law_expand(companded, mu)


def mu_law_bins(classes: jnp.ndarray, mu: int = 255):
  """The amplitude interval each mu-law class quantises: (centre, below, above), each [...].

  The class holds (centre - below, centre + above]; the first and last classes absorb the tails
  (below, resp. above, is inf). centre = `mu_law_decode`.
  """
  companded = 2.0 * classes.astype(jnp.float32) / mu - 1.0
  centre = mu_law_expand(companded, mu)
  below = jnp.where(classes == 0, jnp.inf, centre - mu_law_expand(companded - 1.0 / mu, mu))
  above = jnp.where(classes == mu, jnp.inf, mu_law_expand(companded + 1.0 / mu, mu) - centre)
  return centre, below, above


def linear_encode(audio: jnp.ndarray, num_levels: int = 2**16) -> jnp.ndarray:
  """Waveform in [-1, 1] -> int32 levels in [0, num_levels), the nearest one."""
  level = jnp.round((jnp.clip(audio, -1.0, 1.0) + 1.0) / 2.0 * (num_levels - 1))
  return level.astype(jnp.int32)


def linear_decode(levels: jnp.ndarray, num_levels: int = 2**16) -> jnp.ndarray:
  """int32 levels -> their amplitudes 2k / (num_levels - 1) - 1."""
  return 2.0 * levels.astype(jnp.float32) / (num_levels - 1) - 1.0


def linear_bins(levels: jnp.ndarray, num_levels: int = 2**16):
  """(centre, below, above) of each level's bin, as `mu_law_bins`: half a step either side,
  the edge levels absorbing the tails beyond -1 and 1."""
  half_step = jnp.float32(1.0 / (num_levels - 1))
  below = jnp.where(levels == 0, jnp.inf, half_step)
  above = jnp.where(levels == num_levels - 1, jnp.inf, half_step)
  return linear_decode(levels, num_levels), below, above


def pre_emphasize(audio: jnp.ndarray, alpha: float) -> jnp.ndarray:
  """audio [..., samples] -> y[n] = x[n] - alpha x[n - 1] (x[-1] = 0): a first-order high-pass
  (LPCNet's pre-emphasis, alpha 0.85), so that noise a model adds in this domain comes out
  low-passed, under the speech's falling spectrum, after `de_emphasize`."""
  return audio - alpha * jnp.pad(audio[..., :-1], [(0, 0)] * (audio.ndim - 1) + [(1, 0)])


def de_emphasize(audio: np.ndarray, alpha: float) -> np.ndarray:
  """The inverse of `pre_emphasize`: x[n] = y[n] + alpha x[n - 1], float32 [..., samples]."""
  from scipy import signal

  return signal.lfilter([1.0], [1.0, -alpha], np.asarray(audio, np.float64),
                        axis=-1).astype(np.float32)


def log_spectrogram(audio: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
  """Log-magnitude STFT in dB, [freq_bins, frames], for plots (numpy, not jitted)."""
  audio = np.asarray(audio, np.float32)
  if audio.shape[0] < n_fft:
    audio = np.pad(audio, (0, n_fft - audio.shape[0]))
  frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop]
  spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T
  return 20.0 * np.log10(np.maximum(spec, 1e-5))


@functools.cache
def _lowpass_taps(factor: int, num_taps: int = 63) -> np.ndarray:
  """A Hamming-window FIR low-pass at 0.9 x the Nyquist frequency of the rate / factor."""
  from scipy import signal

  return signal.firwin(num_taps, 0.9 / factor).astype(np.float32)


def lowband(audio: jnp.ndarray, factor: int) -> jnp.ndarray:
  """audio [b, samples] -> the same signal at 1 / factor of the rate, [b, ceil(samples /
  factor)]: FIR low-pass (zero phase: centred taps, zeros beyond the ends) then every factor-th
  sample. What a low-rate recording of the audio looks like (super-resolution's input)."""
  taps = _lowpass_taps(factor)
  half = len(taps) // 2
  padded = jnp.pad(audio, ((0, 0), (half, half)))[:, :, None]  # [b, samples + 2 half, 1]
  filtered = jax.lax.conv_general_dilated(padded, jnp.asarray(taps[::-1])[:, None, None],
                                          (factor,), "VALID",
                                          dimension_numbers=("NWC", "WIO", "NWC"))
  return filtered[..., 0]


def frames_of(low: jnp.ndarray, samples_per_frame: int, num_frames: int) -> jnp.ndarray:
  """Low-rate audio [b, n] -> frames [b, num_frames, samples_per_frame] (zero-padded at the
  end): frame k holds low-rate samples [k * spf, (k + 1) * spf)."""
  need = num_frames * samples_per_frame
  low = jnp.pad(low, ((0, 0), (0, max(0, need - low.shape[1]))))[:, :need]
  return low.reshape(low.shape[0], num_frames, samples_per_frame)
