"""Speaker perturbation: the same speech in another voice, for speaker-invariant training.

NANSY (Choi et al., 2021), ContentVec and SPIN train content encoders on pairs of an utterance
and a copy whose voice is changed while its words and timing are not. As they do, Praat's
"Change gender" (through parselmouth; PSOLA resynthesis, duration kept) scales the formants by
a random ratio in [1, FORMANT_SHIFT] or its inverse (a shorter or longer vocal tract), moves
the pitch median by a ratio in [1, PITCH_SHIFT] or its inverse, and widens or narrows the
pitch range by one in [1, PITCH_RANGE] or its inverse. The model sees the frames of both at
the same times (`audiojax.train.tasks.spin_loss`).
"""

import threading
import warnings

import numpy as np

from audiojax.data import pitch

FORMANT_SHIFT = 1.4
PITCH_SHIFT = 2.0
PITCH_RANGE = 1.5

# Praat's resynthesis draws from Praat's one global generator: seeded from the caller's
# generator under this lock, the same generator state gives the same audio (data threads too).
_PRAAT_LOCK = threading.Lock()


def _ratio(rng: np.random.Generator, high: float) -> float:
  ratio = float(rng.uniform(1.0, high))
  return ratio if rng.random() < 0.5 else 1.0 / ratio


def perturb_voice(audio: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
  """audio float32 [samples] -> float32 [samples]: the same speech in a random other voice
  (module docstring). Audio with no voiced frame keeps its pitch (only the formants move);
  silence, and audio too short for the pitch analysis (3 periods of `pitch.FLOOR_HZ`), come
  back unchanged."""
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 1:
    raise ValueError(f"perturb_voice takes one channel of audio [samples], got {audio.shape}")
  formant, shift, spread = (_ratio(rng, FORMANT_SHIFT), _ratio(rng, PITCH_SHIFT),
                            _ratio(rng, PITCH_RANGE))
  seed = int(rng.integers(1, 2**31 - 1))
  if audio.shape[0] < 3 * sample_rate_hz / pitch.FLOOR_HZ or not np.any(audio):
    return audio
  # Imported here: only runs that perturb voices load Praat (and its bundled libraries).
  import parselmouth
  from parselmouth import praat

  sound = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=sample_rate_hz)
  contour = sound.to_pitch_ac(pitch_floor=pitch.FLOOR_HZ, pitch_ceiling=pitch.CEILING_HZ)
  median = praat.call(contour, "Get quantile", 0.0, 0.0, 0.5, "Hertz")
  new_median = median * shift if np.isfinite(median) else 0.0  # 0: Praat keeps the pitch.
  with _PRAAT_LOCK, warnings.catch_warnings():  # "No voiced segments": formants still move.
    warnings.simplefilter("ignore", parselmouth.PraatWarning)
    praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({seed})")
    changed = praat.call(sound, "Change gender", pitch.FLOOR_HZ, pitch.CEILING_HZ, formant,
                         new_median, spread, 1.0)
  out = np.asarray(changed.values[0], np.float32)[:audio.shape[0]]
  return np.pad(out, (0, audio.shape[0] - out.shape[0]))
