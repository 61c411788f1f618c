"""Speaker verification with a run's speaker encoder: the equal error rate over utterance pairs.

A voice-cloning model can only clone the voices its speaker encoder tells apart. Any run that
holds one (`speaker_encoder/...` parameters: configs/speaker_encoder.py, or a voice-cloning
WaveNet or acoustic model) maps each utterance of a split to a vector (from its first
`seconds`, repeated if shorter, as the cloning models' references are 2-s windows); every pair
of utterances is scored by the cosine of their vectors, and the equal error rate (EER) is where
the share of different-speaker pairs accepted equals the share of same-speaker pairs rejected
(0: a threshold separates them all; 0.5: chance). On `test_unseen_speakers` it says how well
the encoder generalises beyond its training voices, the case cloning is for.

  python -m launch.evaluate --workdir=runs/spk --split=test_unseen_speakers
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.models import speaker_encoder
from audiojax.train import tasks, trainer


def equal_error_rate(scores: np.ndarray, same: np.ndarray) -> float:
  """EER of `scores` [pairs] (higher: more alike) for the targets `same` [pairs] (bool): the
  error rate where the false acceptance and false rejection rates cross (interpolated between
  the two nearest thresholds of the ROC curve)."""
  from sklearn.metrics import roc_curve

  same = np.asarray(same, bool)
  if same.all() or not same.any():
    raise ValueError("the EER needs pairs of the same speaker and of different speakers")
  false_accept, true_accept, _ = roc_curve(same, scores)
  false_reject = 1 - true_accept
  i = int(np.nonzero(false_reject <= false_accept)[0][0])  # First crossing (rates monotone).
  if i == 0:
    return float(false_accept[0])
  # Crossing of the segments between points i - 1 and i.
  a0, a1, r0, r1 = false_accept[i - 1], false_accept[i], false_reject[i - 1], false_reject[i]
  t = (r0 - a0) / ((a1 - a0) - (r1 - r0))
  return float(a0 + t * (a1 - a0))


def vectors(model, params, utterances: Sequence[np.ndarray], seconds: float = 2.0
            ) -> np.ndarray:
  """Unit speaker vectors [n, E] of utterances (float32 [samples] at the model's rate): the
  first `seconds` of each (repeated if shorter), through `params["speaker_encoder"]`."""
  length = round(seconds * model.sample_rate_hz)
  encoder_params = params["speaker_encoder"]
  encoder = speaker_encoder.SpeakerEncoder(encoder_params["project"]["kernel"].shape[1])
  encode = jax.jit(lambda audio: encoder.apply({"params": encoder_params},
                                               tasks.reference_features(model, audio)))
  clips = np.stack([np.resize(np.asarray(u, np.float32), length) for u in utterances])
  return np.concatenate([np.asarray(encode(jnp.asarray(clips[i:i + 32])))
                         for i in range(0, len(clips), 32)])


def evaluate(workdir: str, split: str, max_examples: int | None = None,
             seconds: float = 2.0) -> dict[str, float]:
  """The EER of the run's speaker encoder over all pairs of `split`'s first `max_examples`
  utterances (module docstring), with the numbers of utterances, speakers and pairs."""
  from audiojax.data import pipeline

  config = trainer.load_config(workdir)
  model, _, variables, _ = trainer.restore_variables(config, workdir)
  if "speaker_encoder" not in variables["params"]:
    raise ValueError(f"{workdir}: its {config.model.name} model has no speaker encoder "
                     "(configs/speaker_encoder.py, or a voice-cloning model)")
  examples = list(pipeline.utterances(config.data, split, max_examples=max_examples,
                                      process_index=0, process_count=1))
  speakers = np.array([e["speaker"] for e in examples])
  if len(set(speakers.tolist())) < 2:
    raise ValueError(f"{split}: the EER needs utterances of at least two speakers")
  v = vectors(model, variables["params"], [e["audio"] for e in examples], seconds)
  upper = np.triu_indices(len(examples), k=1)
  scores, same = (v @ v.T)[upper], (speakers[:, None] == speakers[None, :])[upper]
  return {"equal_error_rate": equal_error_rate(scores, same),
          "num_utterances": len(examples), "num_speakers": len(set(speakers.tolist())),
          "num_pairs": int(same.size), "num_same_speaker_pairs": int(same.sum())}
