"""Evaluates a trained workdir on a split; printed and written to WORKDIR/eval_<split>.json.

WaveNet: test-split NLL (bits per sample).
  python -m launch.evaluate --workdir=runs/wavenet [--split=test] [--max_examples=N]
AudioLM stage: next-token NLL (nats, bits per token), accuracy and perplexity on its targets.
  python -m launch.evaluate --workdir=runs/audiolm/coarse [--split=test]
SoundStream: the codec at each bitrate against Opus (mel and MR-STFT distance, SI-SNR, PESQ,
STOI; `audiojax.eval.codec_eval`), a markdown table also in WORKDIR/eval_<split>.md.
  python -m launch.evaluate --workdir=runs/ss [--num_quantizers=1,2,4,8] [--max_examples=N]
      [--dataset=NAME] [--noopus]
"""

import json
import math

from absl import flags

from audiojax.train import trainer
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by launch.train.")
_SPLIT = flags.DEFINE_string("split", "test", "Dataset split to evaluate.")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Evaluate the first N utterances.")
_NUM_QUANTIZERS = flags.DEFINE_list(
    "num_quantizers", None, "Codec only: quantizer levels to evaluate, e.g. 1,2,4,8 "
    "(default: every level).")
_DATASET = flags.DEFINE_string("dataset", None,
                               "Codec only: evaluate on this dataset instead of the training one.")
_OPUS = flags.DEFINE_bool("opus", True, "Codec only: add Opus at the same bitrates.")
_SPEECH_METRICS = flags.DEFINE_bool(
    "speech_metrics", None, "Codec only: PESQ and STOI (default: unless the dataset is music).")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  if trainer.load_config(_WORKDIR.value).model.name == "soundstream":
    from audiojax.eval import codec_eval

    levels = _NUM_QUANTIZERS.value or []
    if not all(n.strip().isdigit() for n in levels):
      raise ValueError(f"--num_quantizers={','.join(levels)}: expected levels like 1,2,4,8")
    result = codec_eval.evaluate(_WORKDIR.value, _SPLIT.value, _MAX_EXAMPLES.value,
                                 [int(n) for n in levels], _DATASET.value, _OPUS.value,
                                 _SPEECH_METRICS.value)
    print(codec_eval.markdown(result))
    return
  result = trainer.evaluate(_WORKDIR.value, _SPLIT.value, _MAX_EXAMPLES.value)
  if "bits_per_token" in result:  # An AudioLM stage: per-token perplexity of the split.
    result["perplexity"] = math.exp(result["loss"])
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  common.run(main)
