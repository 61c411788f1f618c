"""Run a frame-wise model (codec encoder, speech encoder) over utterances of any length.

Utterances are batched by length, each zero-padded to a power of two of frames so that every
length bucket compiles once; `fn` gets the audio mask too (1 = real audio), so a model that
looks ahead (a bidirectional encoder) can hide the padding, and a causal one can ignore it.
"""

from collections.abc import Callable, Sequence

import numpy as np


def num_frames(num_samples: int, hop_samples: int) -> int:
  """Frames of an utterance: ceil(samples / hop), at least 1."""
  return max(1, -(-num_samples // hop_samples))


def map_utterances(fn: Callable, audio: Sequence[np.ndarray], hop_samples: int,
                   batch_size: int = 8) -> list[np.ndarray]:
  """fn(audio [b, frames * hop], mask [b, frames * hop]) -> [b, frames, ...] applied to each
  utterance (float32 [samples]) -> per utterance np.ndarray [num_frames(samples), ...]."""
  buckets: dict[int, list[int]] = {}
  for i, a in enumerate(audio):
    frames = num_frames(a.shape[0], hop_samples)
    buckets.setdefault(1 << (frames - 1).bit_length(), []).append(i)
  out: list[np.ndarray] = [np.zeros((0,))] * len(audio)
  for frames, indices in sorted(buckets.items()):
    for start in range(0, len(indices), batch_size):
      chunk = indices[start:start + batch_size]
      batch = np.zeros((batch_size, frames * hop_samples), np.float32)
      mask = np.zeros_like(batch)
      for row, i in enumerate(chunk):
        batch[row, :audio[i].shape[0]] = audio[i]
        mask[row, :audio[i].shape[0]] = 1.0
      result = np.asarray(fn(batch, mask))
      for row, i in enumerate(chunk):
        out[i] = result[row, :num_frames(audio[i].shape[0], hop_samples)]
  return out
