"""A trained CTC phone recognizer (configs/phone_recognizer.py) as a measuring instrument.

  recognizer = phone_recognizer.load("runs/phone_recognizer")
  phones = recognizer.transcribe(audio)             # ["D", "@", "k", "a", "t", ...]
  log_probs = recognizer.log_posteriors(audio)      # [frames, len(inventory) + 1]
  phone_error_rate(references, [phones, ...]), confidence(log_probs)

Audio is float32 [samples] at `sample_rate_hz` (16 kHz for the built-in corpus); there is one
frame per hop of the encoder (20 ms: 50 Hz), ceil(samples / hop) of them. Class 0 of the
posteriors is CTC's blank (`BLANK`), class k the phoneme `inventory[k - 1]`: espeak mnemonics
without stress marks, pauses excluded (`audiojax.data.pipeline.recognizer_phones`), as
`audiojax.data.phonemes.espeak_phonemes` gives them for a corpus record. The forward pass
is jitted once per length bucket: audio is zero-padded (masked) to a multiple of
`bucket_samples` (1 s).
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.models import hubert
from audiojax.models import phone_recognizer as model_lib

BLANK = model_lib.BLANK


@dataclasses.dataclass
class Recognizer:
  """A phone recognizer's model and variables, and the inventory its class ids index."""
  sample_rate_hz: int
  inventory: tuple[str, ...]  # Class k (1..len) -> phoneme mnemonic; class 0 is blank.
  model: Any = None  # audiojax.models.phone_recognizer.Model
  variables: Any = None
  bucket_samples: int = 16000

  def __post_init__(self):
    if self.model is not None and self.model.num_phonemes != len(self.inventory):
      raise ValueError(f"the model has {self.model.num_phonemes} phoneme classes, the inventory "
                       f"{len(self.inventory)}")
    model = self.model

    def forward(variables, audio, mask):
      return jax.nn.log_softmax(model.apply(variables, audio, mask), axis=-1)

    self._forward = jax.jit(forward)

  def log_posteriors(self, audio: np.ndarray) -> np.ndarray:
    """float32 audio [samples] at sample_rate_hz -> float32 log-probabilities [ceil(samples /
    hop), len(inventory) + 1] per frame; class 0 is blank, class k is inventory[k - 1]."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
      raise ValueError(f"audio must be mono samples [samples], not of shape {audio.shape}")
    frames = hubert.num_frames(audio.shape[0], self.model.hop_samples)
    if not frames:
      return np.zeros((0, len(self.inventory) + 1), np.float32)
    length = self.bucket_samples * -(-audio.shape[0] // self.bucket_samples)
    padded = np.zeros((1, length), np.float32)
    padded[0, :audio.shape[0]] = audio
    mask = (np.arange(length) < audio.shape[0]).astype(np.float32)[None]
    out = self._forward(self.variables, jnp.asarray(padded), jnp.asarray(mask))
    return np.asarray(out[0, :frames], np.float32)

  def transcribe(self, audio: np.ndarray) -> list[str]:
    """Greedy CTC decoding of audio [samples] -> its phonemes (`greedy_decode`)."""
    return [self.inventory[k - 1] for k in greedy_decode(self.log_posteriors(audio))]


def load(workdir: str) -> Recognizer:
  """The recognizer of a `launch.train` workdir of configs/phone_recognizer.py (its latest
  checkpoint). Raises ValueError for a run of another model, FileNotFoundError for a workdir
  without checkpoints."""
  from audiojax.train import trainer

  config, model, variables = trainer.restore_model(
      workdir, "phone_recognizer", "a phone recognizer (configs/phone_recognizer.py)")
  return Recognizer(sample_rate_hz=int(config.data.sample_rate_hz),
                    inventory=tuple(config.data.phonemes.split()), model=model,
                    variables=variables)


def greedy_decode(log_posteriors: np.ndarray) -> np.ndarray:
  """Greedy CTC decoding of per-frame scores [frames, classes]: the best class per frame,
  repeats collapsed, blanks (class 0) dropped -> int class ids [n] (1..classes - 1)."""
  best = np.asarray(log_posteriors).argmax(-1)
  keep = (best != BLANK) & (best != np.concatenate([[BLANK], best[:-1]]))
  return best[keep]


def edit_distance(reference: Sequence[Any], hypothesis: Sequence[Any]) -> int:
  """Levenshtein distance (substitutions, insertions, deletions, each 1) of two sequences."""
  symbols: dict[Any, int] = {}
  ref = np.array([symbols.setdefault(s, len(symbols)) for s in reference], np.int64)
  columns = np.arange(len(ref) + 1)
  row = columns.copy()  # Edits from the hypothesis prefix so far to each reference prefix.
  for token in hypothesis:
    token = symbols.get(token, -1)
    best = np.concatenate([row[:1] + 1, np.minimum(row[1:] + 1, row[:-1] + (ref != token))])
    row = np.minimum.accumulate(best - columns) + columns  # Then insertions along the row.
  return int(row[-1])


def phone_error_rate(references: Sequence[Sequence[str]],
                     hypotheses: Sequence[Sequence[str]]) -> float:
  """Total edit distance over total reference length, pairs (references[i], hypotheses[i]).
  Raises ValueError when the lists differ in length or the references hold no phone."""
  if len(references) != len(hypotheses):
    raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
  total = sum(len(r) for r in references)
  if not total:
    raise ValueError("the references hold no phones")
  edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
  return edits / total


def confidence(log_posteriors: np.ndarray) -> float:
  """How sure the recognizer is of the phones it hears, in [0, 1]: over the frames whose best
  class is a phoneme (not blank), the mean posterior of that phoneme; 0 when blank wins every
  frame (silence, or sound it does not take for speech). log_posteriors: [frames, classes]."""
  probs = np.exp(np.asarray(log_posteriors, np.float64))
  best = probs.argmax(-1)
  spoken = best != BLANK
  if not spoken.any():
    return 0.0
  return float(np.clip(probs.max(-1)[spoken].mean(), 0.0, 1.0))
