"""Reading, resampling and writing audio files, with errors that name the file.

Decoding uses libsndfile (soundfile: wav, flac, ogg/vorbis, opus, mp3) and falls back to
librosa's audioread backend for other containers; resampling uses soxr (VHQ).
"""

import logging
import os
import warnings

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
  """Audio that cannot be used: unreadable, corrupt, empty or malformed. Names the file."""


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
  """Band-limited resampling of mono float audio [samples] (soxr, very high quality)."""
  if from_hz == to_hz:
    return np.asarray(audio, np.float32)
  return soxr.resample(np.asarray(audio, np.float32), from_hz, to_hz, quality="VHQ")


def to_mono_float(audio: np.ndarray) -> np.ndarray:
  """int PCM or float, [samples] or [samples, channels] -> float32 mono in [-1, 1]."""
  audio = np.asarray(audio)
  if np.issubdtype(audio.dtype, np.integer):
    audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max + 1)
  audio = audio.astype(np.float32)
  if audio.ndim == 2:
    audio = audio.mean(axis=1)
  return audio


def check_audio(audio: np.ndarray, name: str) -> np.ndarray:
  """Raises AudioError for empty or non-finite audio; returns it unchanged otherwise."""
  if audio.size == 0:
    raise AudioError(f"{name}: the audio is empty (0 samples)")
  if not np.all(np.isfinite(audio)):
    raise AudioError(f"{name}: the audio contains NaN or infinite samples")
  return audio


def load_audio(path: str, sample_rate_hz: int) -> np.ndarray:
  """Reads any common audio file as float32 mono [samples] at `sample_rate_hz`.

  A file at another rate is resampled (and logged). Missing, unreadable, corrupt or empty
  files raise AudioError naming the file.
  """
  if not os.path.exists(path):
    raise AudioError(f"{path}: no such file")
  try:
    audio, file_rate = sf.read(path, dtype="float32", always_2d=False)
  except Exception as sf_error:  # noqa: BLE001 - libsndfile cannot read it; try audioread.
    try:
      import librosa

      with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio, file_rate = librosa.load(path, sr=None, mono=True)
    except Exception as err:  # noqa: BLE001
      raise AudioError(
          f"{path}: cannot decode audio (corrupt or unsupported format): {sf_error}"
      ) from err
  audio = check_audio(to_mono_float(audio), path)
  if file_rate != sample_rate_hz:
    logging.info("%s: resampling %d Hz -> %d Hz", path, file_rate, sample_rate_hz)
    audio = resample(audio, int(file_rate), sample_rate_hz)
  return audio


def write_wav(path: str, audio: np.ndarray, sample_rate_hz: int) -> None:
  """Writes float audio [samples] in [-1, 1] as 16-bit PCM wav, creating the folder.

  Atomic: the file appears complete or not at all.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  audio = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
  tmp = f"{path}.incomplete"
  sf.write(tmp, audio, sample_rate_hz, subtype="PCM_16", format="WAV")
  os.replace(tmp, path)
