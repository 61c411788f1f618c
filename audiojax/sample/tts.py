"""Two-stage text-to-speech: an acoustic model's log-mel frames drive a WaveNet vocoder.

`audiojax.models.acoustic` predicts the frames a log-mel vocoder of `configs/wavenet.py`
(the quick start's) is conditioned on; the excitation both stages take is the same packed
pitch-synchronous excitation (`audiojax.data.pitch`), so the vocoder's condition is the
predicted log-mel followed by the acoustic model's own excitation input.
"""

import flax.linen as nn
import jax.numpy as jnp

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


def vocoder_condition(acoustic: nn.Module, variables, condition: jnp.ndarray,
                      speaker: jnp.ndarray | None) -> jnp.ndarray:
  """Linguistic frames and excitation [b, frames, L + hop * E] (the acoustic model's input)
  -> the vocoder's condition [b, frames, num_mels + hop * E]: predicted log-mel, excitation."""
  mel = acoustic.apply(variables, condition, speaker)  # [b, frames, num_mels]
  excitation = condition[..., acoustic.linguistic_channels:]
  return jnp.concatenate([mel, excitation.astype(mel.dtype)], axis=-1)
