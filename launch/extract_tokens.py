"""Tokenize a dataset for AudioLM's stages: semantic tokens or the codec's acoustic tokens.

  # Semantic: a speech encoder's layer through its k-means (launch.fit_kmeans).
  python -m launch.extract_tokens --kmeans=runs/semantic/kmeans_layer3_k100.npz \
      --dataset=espeak_speech --output=runs/tokens/semantic
  # Acoustic: a SoundStream codec's RVQ codes (all levels).
  python -m launch.extract_tokens --codec_workdir=runs/soundstream \
      --dataset=espeak_speech --output=runs/tokens/acoustic

Writes `audiojax.data.token_dataset` files (one array_record per split, info.json with the
tokenizer's fingerprint, vocabulary, levels and frame rate). Deterministic: the same inputs
give the same files. Splits are written one by one; re-running skips splits already complete.
"""

import os

import numpy as np
from absl import flags, logging

from audiojax.data import pipeline, token_dataset
from launch import common

_KMEANS = flags.DEFINE_string("kmeans", None, "Semantic tokens: a k-means .npz from "
                              "launch.fit_kmeans --workdir (its encoder is loaded).")
_WORKDIR = flags.DEFINE_string("workdir", None, "The encoder run (default: the one the "
                               "k-means file records).")
_CODEC_WORKDIR = flags.DEFINE_string("codec_workdir", None,
                                     "Acoustic tokens: a SoundStream run.")
_DATASET = flags.DEFINE_string("dataset", "espeak_speech", "Dataset (as config.data.name).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where datasets are (or are built).")
_SPLITS = flags.DEFINE_list("splits", ["train", "validation", "test"], "Splits to tokenize.")
_OUTPUT = flags.DEFINE_string("output", None, "Output directory.")
_MAX_UTTERANCES = flags.DEFINE_integer("max_utterances", None, "At most N per split.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Utterances per encoder call.")
flags.mark_flag_as_required("output")


def tokenizer_from_flags():
  """(tokenize(audio list at 16 kHz) -> tokens list, info dict)."""
  if bool(_KMEANS.value) == bool(_CODEC_WORKDIR.value):
    raise ValueError("pass exactly one of --kmeans (semantic) and --codec_workdir (acoustic)")
  if _KMEANS.value:
    from audiojax.sample import semantic

    tokenizer = semantic.load_tokenizer(_KMEANS.value, _WORKDIR.value)
    rate = tokenizer.model.sample_rate_hz
    info = {"kind": "semantic", "fingerprint": tokenizer.fingerprint,
            "vocab_size": tokenizer.clusters.num_clusters, "levels": 1,
            "frame_rate_hz": tokenizer.frame_rate_hz, "sample_rate_hz": rate,
            "tokenizer": os.path.abspath(_KMEANS.value), "layer": tokenizer.layer}
    return lambda audio: tokenizer.tokens(audio, _BATCH_SIZE.value), rate, info
  from audiojax.sample import codec
  from audiojax.train import checkpoint

  config, model, variables = codec.load(_CODEC_WORKDIR.value)
  info = {"kind": "acoustic", "fingerprint": checkpoint.model_fingerprint(config.model),
          "vocab_size": model.codebook_size, "levels": model.num_quantizers,
          "frame_rate_hz": model.sample_rate_hz / model.hop_samples,
          "sample_rate_hz": model.sample_rate_hz,
          "tokenizer": os.path.abspath(_CODEC_WORKDIR.value)}
  return (lambda audio: codec.encode_utterances(model, variables, audio, _BATCH_SIZE.value),
          model.sample_rate_hz, info)


def main(argv):
  del argv
  tokenize, rate, info = tokenizer_from_flags()
  data = pipeline.dataset_config(_DATASET.value, _DATA_DIR.value, rate)
  info["dataset"] = _DATASET.value
  done = {}
  if os.path.exists(os.path.join(_OUTPUT.value, token_dataset.INFO)):
    done = token_dataset.read_info(_OUTPUT.value).get("splits", {})
  for split in _SPLITS.value:
    if split in done:
      logging.info("%s: already written (%d utterances)", split, done[split])
      continue
    utterances = list(pipeline.utterances(
        data, split, max_examples=_MAX_UTTERANCES.value, process_index=0, process_count=1))
    tokens = tokenize([np.asarray(u["audio"], np.float32) for u in utterances])
    count = token_dataset.write_split(
        _OUTPUT.value, split,
        ({"tokens": t, "speaker": u["speaker"], "index": i}
         for i, (t, u) in enumerate(zip(tokens, utterances, strict=True))), info)
    frames = sum(len(t) for t in tokens)
    print(f"{split}: {count} utterances, {frames} frames of {info['kind']} tokens "
          f"-> {os.path.join(_OUTPUT.value, split)}.array_record")
  print(f"tokenizer fingerprint {info['fingerprint']}")


if __name__ == "__main__":
  common.run(main)
