"""Token quality report: how phonetic and how speaker-specific each kind of token is.

  python -m launch.token_report --data_dir=DIR [--codec_workdir=runs/ss]
      [--semantic_workdir=runs/semantic --semantic_layers=2,3] [--num_clusters=100]
      [--frame_rate_hz=50] [--max_utterances=N] [--output=report.md]

On the built-in `espeak_speech` corpus (phoneme alignments and speaker ids), each token source
tokenizes the fit split (`--fit_split`, default train) and the eval split (default test: the
same speakers reading other sentences). Printed, and written to `--output`, as one markdown
table: per source K, frame rate, and on the eval split phone purity, cluster purity and PNMI
(`audiojax.eval.token_metrics`), and the accuracy of a speaker probe (logistic regression on
bags of tokens) trained on the fit split, with its chance level (the most frequent speaker).

Sources (`token_sources`):
  - MFCC k-means: 39-D MFCCs at --frame_rate_hz, k-means with K = --num_clusters fitted on the
    fit split (`audiojax.eval.mfcc_tokens`);
  - with --semantic_workdir, a trained speech encoder (`configs/semantic.py`): per layer
    (--semantic_layers, default all), k-means with K = --num_clusters of that layer's
    features, fitted on the fit split like the MFCC row (the semantic tokens);
  - with --codec_workdir, the SoundStream codec's RVQ codes: level 1, levels 1-4 and all
    levels. Several levels are scored level by level and the phone metrics averaged (a
    combined id per frame would have up to 1024^4 values, too many to count against phones
    with a few thousand frames: PNMI would near 1 from sparsity alone); the probe sees every
    level's histogram side by side. K is the codebook size per level.
"""

import dataclasses
import os
from collections.abc import Callable

import jax
import numpy as np
from absl import flags, logging

from audiojax.data import audio_io, phonemes
from audiojax.eval import mfcc_tokens, token_metrics
from audiojax.models import kmeans
from launch import common

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where the built-in corpus is (or is built).")
_DATASET = flags.DEFINE_string("dataset", "espeak_speech",
                               "espeak_speech or espeak_speech/CONFIG (e.g. /tiny, /large).")
_CODEC_WORKDIR = flags.DEFINE_string("codec_workdir", None,
                                     "A SoundStream workdir: add rows for its codes.")
_SEMANTIC_WORKDIR = flags.DEFINE_string(
    "semantic_workdir", None, "A speech-encoder (hubert) workdir: add rows for k-means tokens "
    "of its layers.")
_SEMANTIC_LAYERS = flags.DEFINE_list(
    "semantic_layers", None, "Layers of --semantic_workdir to tokenize (default: all).")
_NUM_CLUSTERS = flags.DEFINE_integer("num_clusters", 100, "K of the MFCC k-means.")
_FRAME_RATE_HZ = flags.DEFINE_float("frame_rate_hz", 50.0, "Frame rate of the MFCC tokens.")
_MAX_UTTERANCES = flags.DEFINE_integer(
    "max_utterances", None, "Use at most N utterances of each split (balanced over speakers).")
_FIT_SPLIT = flags.DEFINE_string("fit_split", "train", "Split to fit k-means and the probe on.")
_EVAL_SPLIT = flags.DEFINE_string("eval_split", "test", "Split to measure on.")
_KMEANS_STEPS = flags.DEFINE_integer("kmeans_steps", 100, "k-means steps (at most).")
_KMEANS_BATCH_SIZE = flags.DEFINE_integer(
    "kmeans_batch_size", 0, "Rows per mini-batch k-means step; 0: full-batch Lloyd steps.")
_SEED = flags.DEFINE_integer("seed", 0, "Seeds k-means and the probe.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the table to this file.")
flags.mark_flag_as_required("data_dir")

SAMPLE_RATE_HZ = 16000  # espeak_speech


@dataclasses.dataclass
class Split:
  """Utterances of one split: audio float32 [samples] at 16 kHz, speaker ids [utterances],
  phonemes [(label, start, end)] in samples."""

  name: str
  audio: list[np.ndarray]
  speakers: np.ndarray
  phonemes: list[list[tuple[str, int, int]]]


@dataclasses.dataclass
class Tokens:
  """A source's tokens: per utterance int [frames, levels] of each split."""

  fit: list[np.ndarray]
  eval: list[np.ndarray]
  vocab_size: int  # per level
  frame_rate_hz: float


# (fit split, eval split) -> tokens of both.
TokenSource = Callable[[Split, Split], Tokens]


def balanced_subset(speakers: np.ndarray, count: int) -> np.ndarray:
  """Indices of `count` utterances taken round robin over speakers (each speaker's first, then
  each one's second, ...), in increasing order: every speaker is kept while count allows."""
  order = np.argsort(speakers, kind="stable")
  rank = np.empty_like(order)  # Position of each utterance among its speaker's.
  for speaker in np.unique(speakers):
    mine = order[speakers[order] == speaker]
    rank[mine] = np.arange(mine.size)
  return np.sort(np.lexsort((speakers, rank))[:count])


def load_split(data_dir: str, dataset: str, split: str, max_utterances: int | None) -> Split:
  """At most `max_utterances` utterances of `split`, balanced over speakers."""
  from audiojax.data import espeak_speech

  name, _, config = dataset.partition("/")
  if name != "espeak_speech":
    raise ValueError(f"--dataset={dataset}: the report needs phoneme alignments, which only "
                     "espeak_speech[/CONFIG] has")
  source = espeak_speech.prepare(data_dir, config or "default").as_data_source(split)
  records = [source[i] for i in range(len(source))]
  if not records:
    raise ValueError(f"split {split!r} of {dataset} has no utterances")
  speakers = np.array([int(r["speaker"]) for r in records], np.int64)
  if max_utterances is not None and max_utterances < len(records):
    chosen = balanced_subset(speakers, max_utterances)
    records, speakers = [records[i] for i in chosen], speakers[chosen]
  return Split(split, [np.asarray(r["audio"], np.float32) / 32768.0 for r in records],
               speakers, [phonemes.espeak_phonemes(r) for r in records])


def mfcc_source(num_clusters: int, frame_rate_hz: float, seed: int, **kmeans_kwargs
                ) -> TokenSource:
  def tokenize(fit: Split, eval_: Split) -> Tokens:
    model = mfcc_tokens.fit(fit.audio, SAMPLE_RATE_HZ, frame_rate_hz, num_clusters, seed,
                            **kmeans_kwargs)
    logging.info("MFCC k-means K=%d: fingerprint %s", num_clusters, model.fingerprint())
    run = lambda split: [t[:, None] for t in mfcc_tokens.tokenize(
        split.audio, model, SAMPLE_RATE_HZ, frame_rate_hz)]
    return Tokens(run(fit), run(eval_), num_clusters, frame_rate_hz)

  return tokenize


def codec_sources(workdir: str) -> dict[str, TokenSource]:
  """Rows for a codec's codes at level 1, levels 1-4 and all levels (encoded once)."""
  from audiojax.sample import codec  # Only with --codec_workdir: it loads the trainer.

  _, model, variables = codec.load(workdir)
  rate, levels = model.sample_rate_hz, model.num_quantizers
  cache: dict[str, list[np.ndarray]] = {}

  def codes(split: Split) -> list[np.ndarray]:
    if split.name not in cache:
      audio = [audio_io.resample(a, SAMPLE_RATE_HZ, rate) for a in split.audio]
      cache[split.name] = codec.encode_utterances(model, variables, audio)
    return cache[split.name]

  def first(nq: int) -> TokenSource:
    return lambda fit, eval_: Tokens([c[:, :nq] for c in codes(fit)],
                                     [c[:, :nq] for c in codes(eval_)], model.codebook_size,
                                     rate / model.hop_samples)

  sources = {}
  for nq in sorted({1, min(4, levels), levels}):
    sources["codec level 1" if nq == 1 else f"codec levels 1-{nq}"] = first(nq)
  return sources


def semantic_sources(workdir: str, layers: list[int] | None, num_clusters: int, seed: int,
                     **kmeans_kwargs) -> dict[str, TokenSource]:
  """Rows for k-means (K = num_clusters, fitted on the fit split) of an encoder's layers."""
  from audiojax.sample import semantic  # Only with --semantic_workdir: it loads the trainer.

  _, model, variables = semantic.load_encoder(workdir)
  rate = model.sample_rate_hz / model.hop_samples

  def layer_source(layer: int) -> TokenSource:
    def tokenize(fit: Split, eval_: Split) -> Tokens:
      audio = lambda split: [audio_io.resample(a, SAMPLE_RATE_HZ, model.sample_rate_hz)
                             for a in split.audio]
      features = {s.name: semantic.layer_features(model, variables, audio(s), layer)
                  for s in (fit, eval_)}
      clusters = kmeans.fit(np.concatenate(features[fit.name]), num_clusters,
                            jax.random.key(seed), **kmeans_kwargs)
      run = lambda split: [kmeans.assign(f, clusters)[:, None] for f in features[split.name]]
      return Tokens(run(fit), run(eval_), num_clusters, rate)

    return tokenize

  return {f"semantic layer {layer} k-means": layer_source(layer)
          for layer in (layers or range(1, model.num_layers + 1))}


def token_sources(num_clusters: int, frame_rate_hz: float, seed: int,
                  codec_workdir: str | None = None, semantic_workdir: str | None = None,
                  semantic_layers: list[int] | None = None, **kmeans_kwargs
                  ) -> dict[str, TokenSource]:
  """Row name -> token source."""
  sources = {f"MFCC k-means ({mfcc_tokens.FEATURE_DIM}-D)":
             mfcc_source(num_clusters, frame_rate_hz, seed, **kmeans_kwargs)}
  if semantic_workdir:
    sources.update(semantic_sources(semantic_workdir, semantic_layers, num_clusters, seed,
                                    **kmeans_kwargs))
  if codec_workdir:
    sources.update(codec_sources(codec_workdir))
  return sources


def score(tokens: Tokens, fit: Split, eval_: Split, seed: int = 0) -> dict:
  """Phone metrics of the eval split's tokens and the speaker probe (fit -> eval)."""
  labels = [token_metrics.frame_phoneme_labels(p, a.shape[0], tokens.frame_rate_hz,
                                               SAMPLE_RATE_HZ)
            for p, a in zip(eval_.phonemes, eval_.audio, strict=True)]
  ids = {name: i for i, name in enumerate(sorted({x for y in labels for x in y}))}
  labels = [np.array([ids[x] for x in y], np.int64) for y in labels]
  row = token_metrics.phone_metrics(labels, tokens.eval, tokens.vocab_size)
  probe = token_metrics.speaker_probe(
      tokens.fit + tokens.eval, np.concatenate([fit.speakers, eval_.speakers]),
      np.arange(len(fit.audio) + len(eval_.audio)) < len(fit.audio), tokens.vocab_size, seed)
  levels = tokens.eval[0].reshape(len(tokens.eval[0]), -1).shape[1]
  return {**row, "speaker_accuracy": probe["accuracy"], "speaker_chance": probe["chance"],
          "K": tokens.vocab_size, "levels": levels, "frame_rate_hz": tokens.frame_rate_hz,
          "phones": len(ids)}


def markdown(rows: dict[str, dict], fit: Split, eval_: Split, dataset: str) -> str:
  """The report: a caption line, then one table row per token source."""
  lines = [
      f"{dataset}: phone metrics on {eval_.name} ({len(eval_.audio)} utterances, "
      f"{np.unique(eval_.speakers).size} speakers); k-means and speaker probe fitted on "
      f"{fit.name} ({len(fit.audio)} utterances).",
      "",
      "| tokens | K | frame rate (Hz) | phone purity | cluster purity | PNMI "
      "| speaker probe acc. (chance) |",
      "|---|---|---|---|---|---|---|",
  ]
  for name, r in rows.items():
    k = str(r["K"]) if r["levels"] == 1 else f"{r['levels']} x {r['K']}"
    lines.append(f"| {name} | {k} | {r['frame_rate_hz']:g} | {r['phone_purity']:.3f} "
                 f"| {r['cluster_purity']:.3f} | {r['pnmi']:.3f} "
                 f"| {r['speaker_accuracy']:.3f} ({r['speaker_chance']:.3f}) |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  data_dir = os.path.expanduser(_DATA_DIR.value)
  fit = load_split(data_dir, _DATASET.value, _FIT_SPLIT.value, _MAX_UTTERANCES.value)
  eval_ = load_split(data_dir, _DATASET.value, _EVAL_SPLIT.value, _MAX_UTTERANCES.value)
  sources = token_sources(
      _NUM_CLUSTERS.value, _FRAME_RATE_HZ.value, _SEED.value, _CODEC_WORKDIR.value,
      _SEMANTIC_WORKDIR.value,
      [int(x) for x in _SEMANTIC_LAYERS.value] if _SEMANTIC_LAYERS.value else None,
      steps=_KMEANS_STEPS.value, batch_size=_KMEANS_BATCH_SIZE.value or None)
  rows = {}
  for name, source in sources.items():
    logging.info("tokenizing: %s", name)
    rows[name] = score(source(fit, eval_), fit, eval_, _SEED.value)
  report = markdown(rows, fit, eval_, _DATASET.value)
  print(report, end="")
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      f.write(report)


if __name__ == "__main__":
  common.run(main)
