"""Pure numeric audio transforms shared by models, data, samplers and metrics.

Waveforms are float arrays in [-1, 1]; mu-law classes are int32 in [0, mu].
Works on numpy and jax arrays alike (functions use `jnp`).
"""

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


def log_spectrogram(audio: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
  """Log-magnitude STFT in dB, [freq_bins, frames], for plots (numpy, not jitted)."""
  audio = np.asarray(audio, np.float32)
  if audio.shape[0] < n_fft:
    audio = np.pad(audio, (0, n_fft - audio.shape[0]))
  frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop]
  spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T
  return 20.0 * np.log10(np.maximum(spec, 1e-5))
