"""Linguistic features for text-to-speech: espeak phonemes with durations -> frame features.

WaveNet's TTS (van den Oord et al. 2016, section 3.4) conditions on frame-level linguistic
features. Ours come from espeak's phoneme alignment (mnemonic, start and end sample), the same
labels the built-in corpus stores and `launch.synthesize` gets for new text. For the frame at
`[k * hop, (k + 1) * hop)` (judged at its centre sample):
  one-hot of the previous, current and next phoneme (`num_phonemes + 1` ids each; id 0 = none:
  before the first or after the last phoneme), one-hot of the current phoneme's stress (none,
  primary "'", secondary ","), the position inside the current phoneme (0 at its start, 1 at its
  end) and its duration in seconds.
Phoneme ids index an inventory: the stress-free mnemonics of a training split, sorted.
"""

from collections.abc import Iterable, Sequence

import numpy as np

PAUSE = "_"


def espeak_phonemes(record: dict, strip_stress: bool = True) -> list[tuple[str, int, int]]:
  """An `espeak_speech` example -> [(phone, start, end)] in samples; pauses ("_", "_:", "_!",
  ...) become `PAUSE`, stress marks (' and ,) are dropped unless `strip_stress` is False."""
  names = record["phonemes"]
  names = (names.decode() if isinstance(names, bytes) else str(names)).split()
  out = []
  for name, start, end in zip(names, record["phoneme_starts"], record["phoneme_ends"],
                              strict=True):
    if name.startswith(PAUSE):
      name = PAUSE
    elif strip_stress:
      name = name.lstrip("',") or name
    out.append((name, int(start), int(end)))
  return out


_STRESS = {"'": 1, ",": 2}  # espeak stress marks prefixed to a vowel's mnemonic.
NUM_STRESS = 3


def split_stress(mnemonic: str) -> tuple[str, int]:
  """("'aI") -> ("aI", 1): the phoneme without its stress mark, and the stress (0, 1 or 2)."""
  if len(mnemonic) > 1 and mnemonic[0] in _STRESS:
    return mnemonic[1:], _STRESS[mnemonic[0]]
  return mnemonic, 0


def inventory(phoneme_strings: Iterable[str]) -> tuple[str, ...]:
  """The sorted stress-free phonemes of space-separated mnemonic strings (one per utterance)."""
  return tuple(sorted({split_stress(m)[0] for s in phoneme_strings for m in s.split()}))


def num_features(num_phonemes: int) -> int:
  """Feature channels for an inventory of at most `num_phonemes` phonemes."""
  return 3 * (num_phonemes + 1) + NUM_STRESS + 2


def ids(mnemonics: Sequence[str], phoneme_inventory: Sequence[str],
        strict: bool = True) -> np.ndarray:
  """int32 [len(mnemonics)] ids (1 + index in the inventory). A phoneme outside the inventory
  is an error when `strict`, else id 0 (none)."""
  index = {p: i + 1 for i, p in enumerate(phoneme_inventory)}
  unknown = sorted({split_stress(m)[0] for m in mnemonics} - index.keys())
  if unknown and strict:
    raise ValueError(f"phonemes {unknown} are not in the model's inventory of "
                     f"{len(phoneme_inventory)} (it was trained on other languages or voices)")
  return np.array([index.get(split_stress(m)[0], 0) for m in mnemonics], np.int32)


def frame_features(mnemonics: Sequence[str], starts: np.ndarray, ends: np.ndarray,
                   num_samples: int, hop: int, phoneme_inventory: Sequence[str],
                   num_phonemes: int, sample_rate_hz: int, strict: bool = True) -> np.ndarray:
  """float32 [ceil(num_samples / hop), num_features(num_phonemes)] features of an utterance.

  Args:
    mnemonics: espeak mnemonics, e.g. ["_:", "D", "'I", "s"].
    starts, ends: int [len(mnemonics)] each phoneme's [start, end) in samples, non-decreasing.
    num_samples: length of the audio the frames cover.
    hop: samples per frame.
    strict: a phoneme outside the inventory is an error (text to speak), else id 0 (corpus
      utterances of held-out sentences may hold phonemes the training split lacks).
  """
  if len(phoneme_inventory) > num_phonemes:
    raise ValueError(f"the inventory has {len(phoneme_inventory)} phonemes, more than "
                     f"num_phonemes={num_phonemes}: raise data.num_phonemes")
  width = num_phonemes + 1
  num_frames = -(-num_samples // hop)
  features = np.zeros((num_frames, num_features(num_phonemes)), np.float32)
  if not len(mnemonics):
    return features
  starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
  # Ids padded by "none" on both sides.
  phoneme = np.concatenate([[0], ids(mnemonics, phoneme_inventory, strict), [0]])
  stress = np.array([split_stress(m)[1] for m in mnemonics])
  centre = np.minimum(np.arange(num_frames) * hop + hop // 2, num_samples - 1)
  current = np.searchsorted(starts, centre, side="right") - 1  # -1 before the first phoneme.
  inside = (current >= 0) & (centre < ends[np.maximum(current, 0)])
  rows = np.arange(num_frames)
  for k, offset in enumerate((-1, 0, 1)):  # Previous, current, next phoneme.
    which = np.where(inside, current + offset, -1 if offset <= 0 else len(mnemonics))
    which = np.clip(which, -1, len(mnemonics))
    features[rows, k * width + phoneme[which + 1]] = 1.0
  j = np.maximum(current, 0)
  duration = np.maximum(ends[j] - starts[j], 1)
  base = 3 * width
  features[rows, base + np.where(inside, stress[j], 0)] = np.where(inside, 1.0, 0.0)
  features[:, base + NUM_STRESS] = np.where(inside, (centre - starts[j]) / duration, 0.0)
  features[:, base + NUM_STRESS + 1] = np.where(inside, duration / sample_rate_hz, 0.0)
  return features
