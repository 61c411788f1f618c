"""Is generated audio voiced speech or noise? Pitch tracking (pYIN), harmonics-to-noise ratio
(Praat) and spectral flatness.

Used to check samples (e.g. the quick start's) against real speech and white noise with numbers
rather than by ear: voiced speech has a pitch track on a good part of its loud frames, periods
that repeat (a high harmonics-to-noise ratio) and a peaky (harmonic) spectrum; noise has none.
pYIN's voiced flag is all or nothing and drops noisy voicing (a periodic waveform under noise
~0-3 dB below it); the HNR grades it.

For music (does a sample hold one tone or move between notes?) `pitch_range` is the spread of
the voiced loud frames' pitch, in semitones between its 5th and 95th percentiles: a held tone,
even one that wavers, spans about one; a melody its ambitus, more where pYIN jumps between a
chord's voices (the built-in corpus' organ test clips: 12-19 over their first 6 s). pYIN
follows one pitch, the strongest line of a chord, so this describes that line.
"""

import dataclasses

import librosa
import numpy as np
import scipy.signal


@dataclasses.dataclass(frozen=True)
class Voicing:
  loud_fraction: float  # Frames loud enough to judge (see `voicing`) / all frames.
  voiced_fraction: float  # pYIN-voiced frames / loud frames (see `voicing`).
  flatness: float  # Median spectral flatness of those frames (0 = pure tones, 1 = white noise).
  median_f0_hz: float  # Median pitch of the voiced frames (nan when none).
  # Median harmonics-to-noise ratio (dB, Praat's cross-correlation method) of the loud frames
  # Praat finds periodic (nan when none): 9-15 dB for the built-in corpus's speech.
  hnr_db: float = float("nan")
  pitch_range: float = float("nan")  # Semitones, 5th to 95th percentile (module docstring).

  def __str__(self) -> str:
    if not self.loud_fraction:
      return "silent (no frame above -50 dBFS)"
    return (f"{self.loud_fraction:.0%} of frames loud, voiced {self.voiced_fraction:.0%} of "
            f"those, spectral flatness {self.flatness:.3f}, median f0 {self.median_f0_hz:.0f} Hz, "
            f"HNR {self.hnr_db:.1f} dB, pitch range {self.pitch_range:.1f} semitones")


def frame_samples(sample_rate_hz: int) -> int:
  """Analysis frame (~64 ms, a power of two): the shortest clip `voicing` accepts."""
  return 2 ** int(np.round(np.log2(0.064 * sample_rate_hz)))


def voicing(audio: np.ndarray, sample_rate_hz: int, fmin_hz: float = 60.0,
            fmax_hz: float = 400.0) -> Voicing:
  """Voicing statistics of a mono clip `audio: [samples]` (floats in [-1, 1]).

  The clip is DC-blocked first. Frames are 64 ms with a 16 ms hop. Only loud frames count (RMS
  within 30 dB of the loudest frame and above -50 dBFS), so pauses and near-silent drift count
  neither way. `fmin_hz..fmax_hz` is the pitch range searched (by pYIN and by Praat).
  """
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 1:
    raise ValueError(f"expected a mono clip [samples], got shape {audio.shape}")
  frame = frame_samples(sample_rate_hz)
  hop = frame // 4
  if audio.size < frame:
    raise ValueError(f"clip of {audio.size} samples is shorter than one {frame}-sample frame")
  # A DC blocker (pole at 0.995): a constant or slowly drifting output is not sound.
  b, a = [1.0, -1.0], [1.0, -0.995]
  audio, _ = scipy.signal.lfilter(b, a, audio, zi=scipy.signal.lfilter_zi(b, a) * audio[0])
  audio = audio.astype(np.float32)
  f0, voiced, _ = librosa.pyin(audio, fmin=fmin_hz, fmax=fmax_hz, sr=sample_rate_hz,
                               frame_length=frame, hop_length=hop, center=True)
  rms = librosa.feature.rms(y=audio, frame_length=frame, hop_length=hop, center=True)[0]
  flatness = librosa.feature.spectral_flatness(y=audio, n_fft=frame, hop_length=hop,
                                               center=True)[0]
  num = min(len(voiced), len(rms), len(flatness))
  voiced, f0, rms, flatness = voiced[:num], f0[:num], rms[:num], flatness[:num]
  loud = rms > max(rms.max() * 10 ** (-30 / 20), 10 ** (-50 / 20))
  if not loud.any():
    return Voicing(0.0, 0.0, float("nan"), float("nan"))
  voiced_loud = voiced & loud
  midi = librosa.hz_to_midi(f0[voiced_loud])
  return Voicing(loud_fraction=float(loud.mean()),
                 voiced_fraction=float(voiced_loud.sum() / loud.sum()),
                 flatness=float(np.median(flatness[loud])),
                 median_f0_hz=float(np.median(f0[voiced_loud])) if voiced_loud.any()
                 else float("nan"),
                 hnr_db=_harmonics_to_noise_db(audio, sample_rate_hz, loud, hop, fmin_hz),
                 pitch_range=float(np.subtract(*np.percentile(midi, [95, 5])))
                 if midi.size else float("nan"))


def _harmonics_to_noise_db(audio: np.ndarray, sample_rate_hz: int, loud: np.ndarray, hop: int,
                           fmin_hz: float) -> float:
  """Median Praat HNR (dB) over the frames that are loud (`loud`: [frames] at `hop` samples,
  centred) and that Praat finds periodic (it gives -200 dB to the others); nan when none."""
  import parselmouth  # Praat: imported here, as in audiojax.data.pitch.

  sound = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=sample_rate_hz)
  harmonicity = sound.to_harmonicity_cc(time_step=hop / sample_rate_hz, minimum_pitch=fmin_hz)
  hnr = harmonicity.values[0]
  frames = np.rint(np.asarray(harmonicity.xs()) * sample_rate_hz / hop).astype(int)
  inside = frames < loud.shape[0]
  keep = hnr[inside][(hnr[inside] > -199) & loud[frames[inside]]]
  return float(np.median(keep)) if keep.size else float("nan")


def mean_voicing(clips, sample_rate_hz: int) -> dict[str, float]:
  """Means over clips (each at least one `frame_samples` long) of the loud and voiced shares,
  of the flatness (over the clips with loud frames) and of the HNR (over the clips with
  periodic loud frames); nan where no clip has any."""
  stats = [voicing(np.asarray(clip), sample_rate_hz) for clip in clips]
  flatness = [v.flatness for v in stats if v.loud_fraction > 0]
  hnr = [v.hnr_db for v in stats if np.isfinite(v.hnr_db)]
  return {"loud_fraction": float(np.mean([v.loud_fraction for v in stats])),
          "voiced_fraction": float(np.mean([v.voiced_fraction for v in stats])),
          "flatness": float(np.mean(flatness)) if flatness else float("nan"),
          "hnr_db": float(np.mean(hnr)) if hnr else float("nan"),
          "pitch_range": float(np.nanmean([v.pitch_range for v in stats]))
          if any(np.isfinite(v.pitch_range) for v in stats) else float("nan")}
