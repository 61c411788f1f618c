"""How phonetic and how speaker-specific discrete tokens are (HuBERT, Hsu et al. 2021, sec. IV).

Every token frame gets the phone at its centre (`frame_phoneme_labels`); over all frames of a
split, the joint counts of (phone y, token z) give
  phone purity    = E_z[max_y p(y | z)]  (how pure a token is in phones),
  cluster purity  = E_y[max_z p(z | y)]  (how concentrated a phone is on one token),
  PNMI            = I(y; z) / H(y)       (the share of phone uncertainty a token removes).
PNMI is 1 when tokens determine the phone (e.g. a relabelling of it) and 0 when independent;
like the purities it grows with the number of tokens K, so compare at equal K and frame rate.
`speaker_probe` trains a logistic regression on each utterance's bag of tokens to tell its
speaker: high for acoustic (codec) tokens, low for semantic ones.
Multi-level tokens [frames, levels] (RVQ codes) are scored level by level and averaged; the
probe sees the per-level histograms side by side.
"""

from collections.abc import Sequence

import numpy as np

from audiojax.data.phonemes import PAUSE


def num_frames(num_samples: int, frame_rate_hz: float, sample_rate_hz: float) -> int:
  """Frames of `1 / frame_rate_hz` s covering `num_samples` (the last one partly): ceil."""
  return max(1, int(np.ceil(num_samples * frame_rate_hz / sample_rate_hz - 1e-9)))


def frame_phoneme_labels(phonemes: Sequence[tuple[str, int, int]], num_samples: int,
                         frame_rate_hz: float, sample_rate_hz: float) -> list[str]:
  """The phone at the centre sample of each token frame -> [num_frames(...)] labels.

  phonemes: [(label, start, end)] with [start, end) in samples at `sample_rate_hz`. Frame t
  covers [t, t + 1) / frame_rate_hz seconds; a centre inside no phoneme is `PAUSE`.
  """
  frames = num_frames(num_samples, frame_rate_hz, sample_rate_hz)
  centres = (np.arange(frames) + 0.5) * sample_rate_hz / frame_rate_hz  # in samples
  labels = [PAUSE] * frames
  for name, start, end in phonemes:
    lo, hi = np.searchsorted(centres, [start, end], side="left")
    labels[lo:hi] = [name] * (hi - lo)
  return labels


def joint_counts(labels: Sequence[np.ndarray], tokens: Sequence[np.ndarray],
                 num_labels: int, num_tokens: int) -> np.ndarray:
  """Counts [num_labels, num_tokens] of (label, token) over all frames of all utterances.

  Per utterance, labels and tokens are int [frames] (of equal length)."""
  y = np.concatenate([np.asarray(a, np.int64).reshape(-1) for a in labels])
  z = np.concatenate([np.asarray(a, np.int64).reshape(-1) for a in tokens])
  if y.shape != z.shape:
    raise ValueError(f"{y.size} labels but {z.size} tokens")
  counts = np.bincount(y * num_tokens + z, minlength=num_labels * num_tokens)
  return counts.reshape(num_labels, num_tokens).astype(np.float64)


def phone_purity(counts: np.ndarray) -> float:
  """E_z[max_y p(y | z)] from joint counts [labels, tokens]."""
  return float(counts.max(0).sum() / counts.sum())


def cluster_purity(counts: np.ndarray) -> float:
  """E_y[max_z p(z | y)] from joint counts [labels, tokens]."""
  return float(counts.max(1).sum() / counts.sum())


def _entropy(p: np.ndarray) -> float:
  p = p[p > 0]
  return float(-(p * np.log(p)).sum())


def pnmi(counts: np.ndarray) -> float:
  """Phone-normalised mutual information I(y; z) / H(y) from joint counts [labels, tokens]."""
  p = counts / counts.sum()
  h_y = _entropy(p.sum(1))
  if h_y == 0:
    return float("nan")  # A single phone: nothing to explain.
  mutual = h_y + _entropy(p.sum(0)) - _entropy(p.reshape(-1))  # H(y) + H(z) - H(y, z)
  return float(np.clip(mutual / h_y, 0.0, 1.0))


def phone_metrics(labels: Sequence[np.ndarray], tokens: Sequence[np.ndarray],
                  vocab_size: int) -> dict[str, float]:
  """Phone purity, cluster purity and PNMI of tokens against frame labels.

  labels: per utterance int [frames]. tokens: per utterance int [frames] or [frames, levels],
  each level in [0, vocab_size); frames beyond the shorter of the two are dropped. With
  several levels each is scored on its own and the scores averaged.
  """
  tokens = [np.asarray(t).reshape(len(t), -1) for t in tokens]
  frames = [min(len(y), len(z)) for y, z in zip(labels, tokens, strict=True)]
  num_labels = 1 + max(int(np.max(y, initial=0)) for y in labels)
  scores = []
  for level in range(tokens[0].shape[1]):
    counts = joint_counts([y[:f] for y, f in zip(labels, frames, strict=True)],
                          [z[:f, level] for z, f in zip(tokens, frames, strict=True)],
                          num_labels, vocab_size)
    scores.append((phone_purity(counts), cluster_purity(counts), pnmi(counts)))
  mean = np.mean(scores, axis=0)
  return {"phone_purity": float(mean[0]), "cluster_purity": float(mean[1]),
          "pnmi": float(mean[2]), "frames": int(sum(frames))}


def token_histograms(tokens: Sequence[np.ndarray], vocab_size: int) -> np.ndarray:
  """Per utterance, each level's token frequencies side by side -> [utterances, levels * K]."""
  rows = []
  for t in tokens:
    t = np.asarray(t, np.int64).reshape(len(t), -1)
    counts = [np.bincount(t[:, q], minlength=vocab_size) for q in range(t.shape[1])]
    rows.append(np.concatenate(counts) / max(1, len(t)))
  return np.stack(rows).astype(np.float64)


def speaker_probe(tokens: Sequence[np.ndarray], speakers: Sequence[int], is_train: np.ndarray,
                  vocab_size: int, seed: int = 0) -> dict[str, float]:
  """Speaker identification from bags of tokens -> {"accuracy", "chance"} on the held-out
  utterances.

  A multinomial logistic regression on standardised token histograms (`token_histograms`) is
  trained on the utterances where `is_train` is True and scored on the others; chance is the
  accuracy of always answering the most frequent held-out speaker.
  """
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  features = token_histograms(tokens, vocab_size)
  speakers = np.asarray(speakers)
  is_train = np.asarray(is_train, bool)
  if not is_train.any() or is_train.all():
    raise ValueError("the speaker probe needs both training and held-out utterances")
  test = speakers[~is_train]
  chance = float(np.bincount(test).max() / test.size)
  if np.unique(speakers[is_train]).size < 2:
    guess = np.full(test.shape, speakers[is_train][0])
    return {"accuracy": float(np.mean(guess == test)), "chance": chance}
  probe = make_pipeline(StandardScaler(),
                        LogisticRegression(C=1.0, max_iter=2000, random_state=seed))
  probe.fit(features[is_train], speakers[is_train])
  accuracy = float(np.mean(probe.predict(features[~is_train]) == test))
  return {"accuracy": accuracy, "chance": chance}
