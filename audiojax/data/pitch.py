"""Glottal pulses and a pitch-synchronous excitation: a WaveNet's sample-rate conditioning.

A waveform's pitch periods are what a small WaveNet trained for minutes does not learn to
continue (README, quick start): its samples come out as noise shaped by the formants. Told
where each period starts it still does not; given the samples one period back as inputs
(`wavenet.Model.period_input`, from the period channel here) it does. Praat (through
parselmouth) finds the voiced frames (autocorrelation pitch) and places one point per period
on the waveform ("To PointProcess (cc)"): these points are phase-locked to the audio, so a
model trained on them follows them, and new points (from another F0 contour) make it speak at
that pitch.

`excitation` turns points into features at the sample rate, EXCITATION_CHANNELS per sample:
  voiced   1 between two points at most one `floor_hz` period apart, else 0;
  pulse    1 on a voiced period's first sample (its point), else 0;
  sin, cos of 2 pi x the position inside the period (0 at a point, ~1 at the next), 0 unvoiced;
  period   the period's length in units of `period_scale` samples (the longest voiced period,
           one `FLOOR_HZ` cycle), in (0, 1], 0 unvoiced: where a model finds the sample one
           period back (`wavenet.Model.period_input`).
A model may take the first E of these channels (`channels`): E = 4, without the period, is
what the first pitch vocoders were trained on.
"""

import hashlib
import threading

import numpy as np

EXCITATION_CHANNELS = 5
PERIOD_CHANNEL = 4  # Of the excitation's channels, the period's.
FLOOR_HZ = 60.0  # Pitch search range: covers espeak's and most adult voices.
CEILING_HZ = 500.0


def period_scale(sample_rate_hz: int) -> float:
  """Samples per unit of the excitation's period channel: one FLOOR_HZ cycle."""
  return sample_rate_hz / FLOOR_HZ


def pulses(audio: np.ndarray, sample_rate_hz: int, floor_hz: float = FLOOR_HZ,
           ceiling_hz: float = CEILING_HZ) -> np.ndarray:
  """Audio [samples] -> int64 [num_pulses]: the sample of each pitch period's point, rising.

  Unvoiced or silent audio, or audio too short for the pitch analysis (3 periods of
  `floor_hz`), has none.
  """
  audio = np.asarray(audio, np.float64)
  if audio.ndim != 1:
    raise ValueError(f"pulses of one channel of audio [samples], got shape {audio.shape}")
  if audio.shape[0] < 3 * sample_rate_hz / floor_hz or not np.any(audio):
    return np.zeros((0,), np.int64)
  # Imported here: only models given an excitation load Praat (and its bundled libraries).
  import parselmouth
  from parselmouth import praat

  sound = parselmouth.Sound(audio, sampling_frequency=sample_rate_hz)
  pitch = sound.to_pitch_ac(pitch_floor=floor_hz, pitch_ceiling=ceiling_hz)
  points = praat.call([sound, pitch], "To PointProcess (cc)")
  count = praat.call(points, "Get number of points")
  times = np.array([praat.call(points, "Get time from index", i + 1) for i in range(count)])
  samples = np.round(times * sample_rate_hz).astype(np.int64)
  return np.unique(np.clip(samples, 0, audio.shape[0] - 1))


def excitation(pulse_samples: np.ndarray, num_samples: int, sample_rate_hz: int,
               floor_hz: float = FLOOR_HZ, channels: int = EXCITATION_CHANNELS) -> np.ndarray:
  """Points (rising sample indices) -> float32 [num_samples, channels] (the first `channels`
  of the module docstring's): sample n between points a <= n < b with b - a <= sample_rate_hz /
  floor_hz is voiced, at phase (n - a) / (b - a), in a period of b - a."""
  if not 0 < channels <= EXCITATION_CHANNELS:
    raise ValueError(f"excitation channels={channels}: use 1..{EXCITATION_CHANNELS}")
  out = np.zeros((num_samples, EXCITATION_CHANNELS), np.float32)
  points = np.asarray(pulse_samples, np.int64)
  if points.shape[0] < 2 or num_samples == 0:
    return out
  n = np.arange(num_samples)
  k = np.searchsorted(points, n, side="right") - 1  # The last point at or before n.
  inside = (k >= 0) & (k < points.shape[0] - 1)
  start = points[np.clip(k, 0, points.shape[0] - 2)]
  period = points[np.clip(k + 1, 1, points.shape[0] - 1)] - start
  voiced = inside & (period <= sample_rate_hz / floor_hz)
  angle = 2 * np.pi * (n - start) / np.maximum(period, 1)
  out[:, 0] = voiced
  out[:, 1] = voiced & (n == start)
  out[:, 2] = np.where(voiced, np.sin(angle), 0.0)
  out[:, 3] = np.where(voiced, np.cos(angle), 0.0)
  out[:, PERIOD_CHANNEL] = np.where(voiced, period / period_scale(sample_rate_hz), 0.0)
  return out[:, :channels]


def periods(period_channel, sample_rate_hz: int):
  """The period channel (numpy or jax, any shape) -> int32 periods in samples, 0 unvoiced."""
  return (period_channel * period_scale(sample_rate_hz) + 0.5).astype(np.int32)


def median_f0(pulse_samples: np.ndarray, sample_rate_hz: int,
              floor_hz: float = FLOOR_HZ) -> float:
  """Median pitch (Hz) of the voiced periods between points (gaps <= one floor_hz cycle);
  nan when there are none."""
  gaps = np.diff(np.asarray(pulse_samples, np.int64))
  gaps = gaps[(gaps > 0) & (gaps <= sample_rate_hz / floor_hz)]
  return float(sample_rate_hz / np.median(gaps)) if gaps.size else float("nan")


def scale_pulses(pulse_samples: np.ndarray, ratio: float, sample_rate_hz: int,
                 floor_hz: float = FLOOR_HZ) -> np.ndarray:
  """Points of the same voiced stretches at `ratio` times the pitch: each run of voiced periods
  (gaps <= one floor_hz cycle) keeps its first point and its span, and within it each new
  period is the old contour's period there divided by `ratio` (at most one floor_hz cycle,
  so the stretch stays voiced). An F0 contour moved to another voice's register."""
  points = np.asarray(pulse_samples, np.int64)
  if ratio <= 0:
    raise ValueError(f"pitch ratio {ratio}: must be positive")
  longest = sample_rate_hz / floor_hz
  breaks = np.flatnonzero(np.diff(points) > longest) + 1
  cap = np.floor(longest)  # Whole samples: rounded points stay within one cycle.
  out = []
  for run in np.split(points, breaks):
    out.append(run[:1])
    if run.shape[0] < 2:
      continue
    t, times = float(run[0]), []
    while True:  # The period at t: the old contour's, interpolated between its points.
      t += min(np.interp(t, run[:-1], np.diff(run)) / ratio, cap)
      if t > run[-1]:
        break
      times.append(t)
    out.append(np.round(times).astype(np.int64))
  return np.unique(np.concatenate(out)) if out else points


def excitation_frames(audio: np.ndarray, sample_rate_hz: int, hop: int,
                      points: np.ndarray | None = None,
                      channels: int = EXCITATION_CHANNELS) -> np.ndarray:
  """Audio [samples] -> its excitation packed frame by frame, float32
  [ceil(samples / hop), hop * channels]: row k holds samples k * hop .. (k + 1) * hop - 1
  (zeros past the end), sample-major (`Model.excitation_channels` unpacks it).
  `points`: the audio's `pulses`, when already known."""
  num_samples = np.asarray(audio).shape[0]
  frames = -(-num_samples // hop)
  points = pulses(audio, sample_rate_hz) if points is None else points
  per_sample = excitation(points, frames * hop, sample_rate_hz, channels=channels)
  return per_sample.reshape(frames, hop * channels)


class PulseCache:
  """`pulses` of audio seen before, by content (a training pipeline decodes each utterance many
  times; Praat's analysis costs ~10 ms per second of audio, the lookup a hash). Safe for
  grain's reader threads; two of them may analyse the same audio once each."""

  def __init__(self, sample_rate_hz: int, max_entries: int = 100_000):
    self.sample_rate_hz, self.max_entries = sample_rate_hz, max_entries
    self._points: dict[bytes, np.ndarray] = {}
    self._lock = threading.Lock()

  def __call__(self, audio: np.ndarray) -> np.ndarray:
    audio = np.ascontiguousarray(audio, np.float32)
    key = hashlib.blake2b(audio.tobytes(), digest_size=16).digest()
    with self._lock:
      points = self._points.get(key)
    if points is None:
      points = pulses(audio, self.sample_rate_hz)  # Outside the lock: threads analyse at once.
      with self._lock:
        if len(self._points) >= self.max_entries:
          self._points.pop(next(iter(self._points)))  # The oldest entry.
        self._points[key] = points
    return points
