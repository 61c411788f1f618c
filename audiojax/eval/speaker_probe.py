"""Whose voice is a clip in? A speaker classifier trained on real recordings, applied to samples.

WaveNet's conditioning ablation (none vs speaker id vs speaker embedding) is scored by how
often a classifier trained on the corpus' real training utterances names the speaker a sample
was conditioned on. Clip features: the mean and standard deviation over frames of 20 MFCCs
(librosa; 25 ms windows, 10 ms hop) of the loud frames; the classifier: a multinomial logistic
regression on standardised features (scikit-learn).

Generated audio sits apart from real recordings in that feature space (a noise floor, a lower
level, blurred formants), and the classifier, standardising by the real utterances' statistics,
can name one speaker for every sample (seen: all 20 samples of each text-to-speech row given
to speaker 5). `accuracy(..., standardise_over_clips=True)` standardises a set of clips by its
own mean and spread instead (per-corpus normalisation, as in speaker recognition), so a shift
common to the whole set does not decide and what separates the clips from one another does;
meaningful for a set that covers the speakers evenly (samples drawn for the speakers in turn).
"""

import dataclasses
from collections.abc import Sequence

import librosa
import ml_collections
import numpy as np

from audiojax.data import pipeline

NUM_MFCC = 20


def clip_features(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
  """float64 [2 * NUM_MFCC]: MFCC means and standard deviations of a clip's loud frames (all
  frames when none is loud: within 30 dB of the loudest)."""
  audio = np.asarray(audio, np.float32)
  hop, window = sample_rate_hz // 100, sample_rate_hz * 25 // 1000
  if audio.shape[0] < window:
    raise ValueError(f"a clip of {audio.shape[0]} samples is shorter than one 25 ms frame")
  mfcc = librosa.feature.mfcc(y=audio, sr=sample_rate_hz, n_mfcc=NUM_MFCC, n_fft=512,
                              win_length=window, hop_length=hop, center=False)  # [M, frames]
  rms = librosa.feature.rms(y=audio, frame_length=window, hop_length=hop, center=False)[0]
  num = min(mfcc.shape[1], rms.shape[0])
  mfcc, rms = mfcc[:, :num], rms[:num]
  loud = rms >= rms.max() * 10 ** (-30 / 20) if rms.max() > 0 else np.ones(num, bool)
  frames = mfcc[:, loud]
  return np.concatenate([frames.mean(axis=1), frames.std(axis=1)]).astype(np.float64)


@dataclasses.dataclass
class SpeakerProbe:
  """A fitted classifier: `predict(clips)` -> speaker ids."""

  classifier: object
  sample_rate_hz: int
  speakers: tuple[int, ...]  # The speakers it knows.

  def predict(self, clips: Sequence[np.ndarray], standardise_over_clips: bool = False
              ) -> np.ndarray:
    """Speaker ids of `clips`; their features standardised as the real training utterances'
    (default) or by the clips' own mean and standard deviation (module docstring)."""
    features = np.stack([clip_features(c, self.sample_rate_hz) for c in clips])
    if not standardise_over_clips:
      return self.classifier.predict(features)
    if len(clips) < 2:
      raise ValueError("standardising over the clips needs at least two clips")
    spread = features.std(axis=0)
    standardised = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return self.classifier[-1].predict(standardised)  # The scaler fitted on real ones skipped.

  def accuracy(self, clips: Sequence[np.ndarray], speakers: Sequence[int],
               standardise_over_clips: bool = False) -> float:
    """Share of `clips` classified as the speaker they claim to be (`speakers[i]`)."""
    predicted = self.predict(clips, standardise_over_clips)
    return float(np.mean(predicted == np.asarray(speakers)))


def fit(clips: Sequence[np.ndarray], speakers: Sequence[int], sample_rate_hz: int,
        seed: int = 0) -> SpeakerProbe:
  """A probe trained on labelled clips (at least two speakers)."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  speakers = np.asarray(speakers)
  if np.unique(speakers).size < 2:
    raise ValueError("a speaker probe needs utterances of at least two speakers")
  features = np.stack([clip_features(c, sample_rate_hz) for c in clips])
  classifier = make_pipeline(StandardScaler(),
                             LogisticRegression(C=1.0, max_iter=2000, random_state=seed))
  classifier.fit(features, speakers)
  return SpeakerProbe(classifier, sample_rate_hz, tuple(int(s) for s in np.unique(speakers)))


def fit_on_corpus(data_config: ml_collections.ConfigDict, split: str = "train",
                  max_examples: int | None = None) -> SpeakerProbe:
  """A probe trained on the real utterances of a dataset split (its speaker labels)."""
  examples = list(pipeline.utterances(data_config, split, max_examples=max_examples,
                                      process_index=0, process_count=1))
  return fit([e["audio"] for e in examples], [e["speaker"] for e in examples],
             data_config.sample_rate_hz)
