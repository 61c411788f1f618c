"""Does audio play a score's notes? The share of its spectral energy at the notes' partials.

`score_energy` looks at the frames where the score holds at least one note and asks what share
of the audio's energy there lies within a quarter tone (or one bin) of the first `harmonics`
partials of the held notes. Audio that plays those notes with harmonic tones scores high
(the built-in chorales' own renderings: 0.8-0.9 for the organ), noise scores about the share of
the spectrum the partials cover (`score_coverage`, the chance level), and other notes score
lower. Energy-weighted over frames, so silence counts for nothing.
"""

import librosa
import numpy as np

from audiojax.data import notes as notes_lib

N_FFT = 2048  # 128 ms at 16 kHz: bins of 7.8 Hz.
TOLERANCE_CENTS = 50.0


def _masks(piano_roll: np.ndarray, hop: int, num_frames: int, sample_rate_hz: int,
           harmonics: int) -> tuple[np.ndarray, np.ndarray]:
  """Held pitches per STFT frame -> (partial mask [frames, bins] bool, frames with a note)."""
  freqs = librosa.fft_frequencies(sr=sample_rate_hz, n_fft=N_FFT)  # [bins]
  bin_hz = freqs[1]
  centres = np.arange(num_frames) * (N_FFT // 4)  # librosa's centred frames, hop N_FFT / 4.
  rows = np.minimum(centres // hop, piano_roll.shape[0] - 1)
  held = piano_roll[rows] > 0  # [frames, pitches]
  mask = np.zeros((num_frames, freqs.shape[0]), bool)
  ratio = 2 ** (TOLERANCE_CENTS / 1200)
  for pitch in np.flatnonzero(held.any(axis=0)):
    f0 = notes_lib.midi_to_hz(float(pitch + notes_lib.LOWEST))
    near = np.zeros(freqs.shape[0], bool)
    for h in range(1, harmonics + 1):
      f = h * f0
      if f >= 0.45 * sample_rate_hz:
        break
      near |= np.abs(freqs - f) <= max(f * (ratio - 1), bin_hz)
    mask[held[:, pitch]] |= near
  return mask, held.any(axis=1)


def score_energy(audio: np.ndarray, piano_roll: np.ndarray, hop: int, sample_rate_hz: int,
                 harmonics: int = 8) -> float:
  """audio [samples], piano_roll [frames, NUM_PITCHES] (> 0 where the score holds the pitch,
  frame k = samples [k * hop, (k + 1) * hop), as `notes.frame_features`' first half) -> the
  share of the energy of the frames with a held note that lies at the held notes' partials;
  NaN when no frame holds a note or those frames are silent."""
  power = np.abs(librosa.stft(np.asarray(audio, np.float32), n_fft=N_FFT,
                              hop_length=N_FFT // 4)).T ** 2  # [frames, bins]
  mask, sounding = _masks(np.asarray(piano_roll), hop, power.shape[0], sample_rate_hz, harmonics)
  total = power[sounding].sum()
  if not sounding.any() or total <= 0:
    return float("nan")
  return float(power[sounding][mask[sounding]].sum() / total)


def score_coverage(piano_roll: np.ndarray, hop: int, num_samples: int, sample_rate_hz: int,
                   harmonics: int = 8) -> float:
  """The chance level of `score_energy`: the share of the spectrum (bins, over the frames with a
  held note) that the partial masks cover, what white noise would score."""
  num_frames = 1 + num_samples // (N_FFT // 4)
  mask, sounding = _masks(np.asarray(piano_roll), hop, num_frames, sample_rate_hz, harmonics)
  return float(mask[sounding].mean()) if sounding.any() else float("nan")
