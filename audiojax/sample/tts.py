"""Two-stage text-to-speech: an acoustic model's log-mel frames drive a WaveNet vocoder.

`audiojax.models.acoustic` predicts the frames a log-mel vocoder of `configs/wavenet.py`
(the quick start's) is conditioned on; the excitation both stages take is the same packed
pitch-synchronous excitation (`audiojax.data.pitch`), so the vocoder's condition is the
predicted log-mel followed by the acoustic model's own excitation input.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

# The fields an acoustic model and its vocoder must agree on: (acoustic's, vocoder's).
_SHARED_FIELDS = (("num_mels", "condition_channels"), ("hop", "condition_hop"),
                  ("excitation_channels", "excitation_channels"),
                  ("sample_rate_hz", "sample_rate_hz"))


def check_vocoder(acoustic: nn.Module, vocoder: nn.Module) -> None:
  """ValueError unless `vocoder` is a WaveNet conditioned on the log-mel frames `acoustic`
  predicts (same bands, hop, excitation channels and sample rate)."""
  if getattr(vocoder, "condition_source", None) != "mel" or not vocoder.condition_channels:
    raise ValueError("the vocoder must be a WaveNet conditioned on log-mel frames "
                     "(configs/wavenet.py:quickstart or another of its vocoders)")
  differ = [f"{a}={getattr(acoustic, a)} vs the vocoder's {v}={getattr(vocoder, v)}"
            for a, v in _SHARED_FIELDS if getattr(acoustic, a) != getattr(vocoder, v)]
  if differ:
    raise ValueError("the acoustic model's frames do not fit the vocoder: " + "; ".join(differ))


def vocoder_condition(acoustic: nn.Module, variables, conditions: Sequence[np.ndarray],
                      speaker: jnp.ndarray | None) -> jnp.ndarray:
  """Per sentence, linguistic frames and excitation [frames_i, L + hop * E] (the acoustic
  model's input) -> the vocoder's condition [n, max frames, num_mels + hop * E]: predicted
  log-mel, then the excitation; zeros past each sentence's end. The acoustic model sees each
  sentence alone: it is not causal, so in a zero-padded batch a shorter sentence's last frames
  would see the padding (the causal vocoder never reads past a sentence's end). speaker:
  [n] ids or [n, D] vectors, or None."""
  longest = max(c.shape[0] for c in conditions)
  rows = []
  for i, condition in enumerate(conditions):
    condition = jnp.asarray(condition)[None]
    mel = acoustic.apply(variables, condition, None if speaker is None else speaker[i:i + 1])
    excitation = condition[..., acoustic.linguistic_channels:].astype(mel.dtype)
    row = jnp.concatenate([mel, excitation], axis=-1)[0]  # [frames_i, num_mels + hop * E]
    rows.append(jnp.pad(row, ((0, longest - row.shape[0]), (0, 0))))
  return jnp.stack(rows)
