"""Fit k-means on speech features: HuBERT's targets and AudioLM's semantic tokenizer.

  # Iteration-1 targets: MFCC frames (39-D) of the built-in corpus.
  python -m launch.fit_kmeans --features=mfcc --num_clusters=100 --output=runs/mfcc_k100.npz
  # A trained encoder's layer L (semantic tokens, or the next iteration's targets); written to
  # WORKDIR/kmeans_layer{L}_k{K}.npz unless --output says otherwise.
  python -m launch.fit_kmeans --workdir=runs/semantic --layer=3 --num_clusters=100

Features are computed on whole utterances of --split (default train) of --dataset (default:
the encoder's training data, else the built-in corpus), at most --max_utterances of them,
then normalised per dimension and clustered (k-means++ then Lloyd or mini-batch steps,
`audiojax.models.kmeans`). The .npz records what it clusters (features, layer, the encoder's
weight fingerprint), so tokens made later with other weights are refused.
"""

import os

import jax
import ml_collections
import numpy as np
from absl import flags, logging

from audiojax.data import pipeline
from audiojax.eval import mfcc_tokens
from audiojax.models import kmeans
from launch import common

_FEATURES = flags.DEFINE_enum("features", None, ["mfcc", "hubert"],
                              "mfcc, or hubert (a trained encoder: needs --workdir and --layer; "
                              "the default when --workdir is given).")
_WORKDIR = flags.DEFINE_string("workdir", None, "A trained speech-encoder (hubert) run.")
_LAYER = flags.DEFINE_integer("layer", None, "The encoder layer to cluster (1..num_layers).")
_NUM_CLUSTERS = flags.DEFINE_integer("num_clusters", 100, "K.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the .npz.")
_DATASET = flags.DEFINE_string("dataset", None, "Dataset (as config.data.name); default: the "
                               "encoder's, else espeak_speech.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where datasets are (or are built).")
_SPLIT = flags.DEFINE_string("split", "train", "Split to fit on.")
_MAX_UTTERANCES = flags.DEFINE_integer("max_utterances", 1000, "Fit on at most N utterances.")
_FRAME_RATE_HZ = flags.DEFINE_float("frame_rate_hz", 50.0, "MFCC frame rate (--features=mfcc).")
_STEPS = flags.DEFINE_integer("steps", 100, "k-means steps (at most).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 0,
                                   "Rows per mini-batch k-means step; 0: full-batch Lloyd steps.")
_SEED = flags.DEFINE_integer("seed", 0, "Seeds k-means++.")

SAMPLE_RATE_HZ = 16000


def read_audio(config: ml_collections.ConfigDict, split: str, max_utterances: int | None
               ) -> list[np.ndarray]:
  audio = [u["audio"] for u in pipeline.utterances(config, split, max_examples=max_utterances,
                                                   process_index=0, process_count=1)]
  if not audio:
    raise ValueError(f"split {split!r} of {config.name} has no utterances")
  return audio


def main(argv):
  del argv
  features = _FEATURES.value or ("hubert" if _WORKDIR.value else None)
  if features is None:
    raise app_error("pass --features=mfcc, or --workdir and --layer of a trained encoder")
  metadata: dict = {"features": features}
  if features == "hubert":
    if not _WORKDIR.value or _LAYER.value is None:
      raise app_error("--features=hubert needs --workdir and --layer")
    from audiojax.sample import semantic

    config, model, variables = semantic.load_encoder(_WORKDIR.value)
    data = pipeline.dataset_config(_DATASET.value or config.data.name,
                                   _DATA_DIR.value or config.data.get("data_dir"),
                                   model.sample_rate_hz, config.data.skip_bad_files)
    audio = read_audio(data, _SPLIT.value, _MAX_UTTERANCES.value)
    rows = semantic.layer_features(model, variables, audio, _LAYER.value)
    metadata.update(workdir=os.path.abspath(_WORKDIR.value), layer=_LAYER.value,
                    frame_rate_hz=model.sample_rate_hz / model.hop_samples,
                    encoder_fingerprint=semantic.params_fingerprint(variables["params"]))
    output = _OUTPUT.value or os.path.join(
        _WORKDIR.value, f"kmeans_layer{_LAYER.value}_k{_NUM_CLUSTERS.value}.npz")
  else:
    if not _OUTPUT.value:
      raise app_error("--features=mfcc needs --output")
    data = pipeline.dataset_config(_DATASET.value or "espeak_speech", _DATA_DIR.value,
                                   SAMPLE_RATE_HZ)
    audio = read_audio(data, _SPLIT.value, _MAX_UTTERANCES.value)
    rows = [mfcc_tokens.mfcc_features(a, SAMPLE_RATE_HZ, _FRAME_RATE_HZ.value) for a in audio]
    metadata.update(frame_rate_hz=_FRAME_RATE_HZ.value)
    output = _OUTPUT.value
  stacked = np.concatenate(rows)
  logging.info("k-means K=%d on %d frames of %d-D %s features (%d utterances of %s/%s)",
               _NUM_CLUSTERS.value, stacked.shape[0], stacked.shape[1], features, len(audio),
               data.name, _SPLIT.value)
  fitted = kmeans.fit(stacked, _NUM_CLUSTERS.value, jax.random.key(_SEED.value),
                      steps=_STEPS.value, batch_size=_BATCH_SIZE.value or None)
  metadata.update(dataset=data.name, split=_SPLIT.value, num_frames=int(stacked.shape[0]))
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  kmeans.save(output, fitted, **metadata)
  inertia = kmeans.inertia(stacked, fitted) / stacked.shape[0]
  print(f"wrote {output}: K={_NUM_CLUSTERS.value}, {stacked.shape[0]} frames, "
        f"mean squared distance {inertia:.4f} (normalised units), fingerprint "
        f"{fitted.fingerprint()}")


def app_error(message: str) -> Exception:
  from absl import app

  return app.UsageError(message)


if __name__ == "__main__":
  common.run(main)
