"""Evaluates a trained workdir on a split; printed and written to WORKDIR/eval_<split>.json.

WaveNet: test-split NLL (bits per sample).
  python -m launch.evaluate --workdir=runs/wavenet [--split=test] [--max_examples=N]
  On given positions (a context stack's run and a plain one alike: windows of 35,585 samples,
  each scored on its last 2,048): --crop_samples=35585 --scored_samples=2048
A speaker encoder (configs/speaker_encoder.py; also a voice-cloning model's): accuracy, and
the equal error rate of speaker verification over the split's utterance pairs
(`audiojax.eval.speaker_verification`), e.g. on voices it never heard:
  python -m launch.evaluate --workdir=runs/spk --split=test_unseen_speakers
AudioLM stage: next-token NLL (nats, bits per token), accuracy and perplexity on its targets.
  python -m launch.evaluate --workdir=runs/audiolm/coarse [--split=test]
SoundStream: the codec at each bitrate against Opus (mel and MR-STFT distance, SI-SNR, PESQ,
STOI; `audiojax.eval.codec_eval`), a markdown table also in WORKDIR/eval_<split>.md.
  python -m launch.evaluate --workdir=runs/ss [--num_quantizers=1,2,4,8] [--max_examples=N]
      [--dataset=NAME] [--noopus]
AudioLM continuations (WORKDIR holds semantic/, coarse/, fine/ as for launch.continue_audio):
speaker agreement (plain, and with each set standardised over itself), phone confidence and
phones / s of continuations of held-out prompts (speakers in turn), next to real speech and
noise (`audiojax.eval.continuation`); --compare_workdir adds another
pipeline (e.g. the acoustic_only ablation) on the same prompts. Written to
WORKDIR/continuation_<split>.{json,md} (continuation_<dataset>_<split> for other datasets).
  python -m launch.evaluate --workdir=runs/audiolm --recognizer=runs/phone_recognizer \
      [--compare_workdir=runs/audiolm_acoustic_only] [--split=test_unseen_speakers] \
      [--max_examples=20] [--prompt_seconds=3] [--seconds=6] [--dataset=espeak_speech]
  Music (a dataset whose name says music; no recognizer): instrument agreement, pitched share
  and spectral flatness instead.
  python -m launch.evaluate --workdir=runs/audiolm_music --dataset=music21_audio
"""

import json
import math
import os
import re

from absl import flags

from audiojax.train import trainer
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by launch.train.")
_SPLIT = flags.DEFINE_string("split", "test", "Dataset split to evaluate.")
_CROP_SAMPLES = flags.DEFINE_integer(
    "crop_samples", None, "WaveNet: consecutive windows of this many samples (default: the "
    "run's data.crop_samples).", lower_bound=2)
_SCORED_SAMPLES = flags.DEFINE_integer(
    "scored_samples", None, "WaveNet: score only each window's last N positions (default: the "
    "run's model.context_crop); with --crop_samples, runs with and without a context stack "
    "are scored on the same positions.", lower_bound=1)
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Evaluate the first N utterances.")
_NUM_QUANTIZERS = flags.DEFINE_list(
    "num_quantizers", None, "Codec only: quantizer levels to evaluate, e.g. 1,2,4,8 "
    "(default: every level).")
_DATASET = flags.DEFINE_string("dataset", None, "Codec: evaluate on this dataset instead of "
                               "the training one; AudioLM: the prompts' dataset (default "
                               "espeak_speech).")
_OPUS = flags.DEFINE_bool("opus", True, "Codec only: add Opus at the same bitrates.")
_CODEC_DTYPE = common.define_codec_dtype_flag()
_SPEECH_METRICS = flags.DEFINE_bool(
    "speech_metrics", None, "Codec only: PESQ and STOI (default: unless the dataset is music).")
_RECOGNIZER = flags.DEFINE_string("recognizer", None, "AudioLM continuations: a phone "
                                  "recognizer run (configs/phone_recognizer.py).")
_COMPARE = flags.DEFINE_string("compare_workdir", None, "AudioLM continuations: another "
                               "pipeline to score on the same prompts.")
_PROMPT_SECONDS = flags.DEFINE_float("prompt_seconds", 3.0, "AudioLM: seconds of prompt.")
_SECONDS = flags.DEFINE_float("seconds", 6.0, "AudioLM: prompt + continuation, seconds.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "AudioLM: where the prompts' dataset is "
                                "(default: $AUDIOJAX_DATA_DIR).")
flags.mark_flag_as_required("workdir")


def continuations() -> None:
  """AudioLM continuations of --split's utterances, scored (module docstring)."""
  from audiojax.data import pipeline
  from audiojax.eval import continuation, phone_recognizer, speaker_probe
  from audiojax.sample import audiolm

  dataset = _DATASET.value or "espeak_speech"
  music = pipeline.is_music(dataset)
  if not music and not _RECOGNIZER.value:
    raise ValueError(f"{_WORKDIR.value} holds AudioLM stages: scoring speech continuations "
                     "needs --recognizer=PHONE_RECOGNIZER_RUN")
  if not 0 < _PROMPT_SECONDS.value < _SECONDS.value:
    raise ValueError(f"need 0 < --prompt_seconds ({_PROMPT_SECONDS.value}) < --seconds "
                     f"({_SECONDS.value})")
  data_config = pipeline.dataset_config(dataset, _DATA_DIR.value)
  prompts = continuation.prompts(data_config, _SPLIT.value, _SECONDS.value,
                                 _MAX_EXAMPLES.value or 20)
  pipelines = {}
  for root in filter(None, (_WORKDIR.value, _COMPARE.value)):
    semantic_dir, coarse_dir, fine_dir = audiolm.stage_workdirs(root)
    pipe = audiolm.load_pipeline(coarse_dir, semantic_dir, fine_dir)
    name = "AudioLM" if pipe.semantic is not None else "acoustic only"
    pipelines[f"{name} ({root})"] = continuation.pipeline_continuer(pipe, _SECONDS.value)
  probe = speaker_probe.fit_on_corpus(data_config, "train")
  recognizer = None if music else phone_recognizer.load(_RECOGNIZER.value)
  result = continuation.evaluate(pipelines, prompts, _PROMPT_SECONDS.value, _SECONDS.value,
                                 probe, recognizer)
  table = continuation.markdown(result, _SPLIT.value, _PROMPT_SECONDS.value, _SECONDS.value,
                                "instrument" if music else "speaker")
  print(table)
  name = "" if dataset == "espeak_speech" else re.sub(r"[^a-z0-9]+", "_", dataset) + "_"
  stem = os.path.join(_WORKDIR.value, f"continuation_{name}{_SPLIT.value}")
  with open(stem + ".json", "w") as f:
    json.dump(result, f, indent=2)
  with open(stem + ".md", "w") as f:
    f.write(table + "\n")


def main(argv):
  del argv
  if os.path.isdir(os.path.join(_WORKDIR.value, "coarse")):
    continuations()
    return
  if trainer.load_config(_WORKDIR.value).model.name == "soundstream":
    from audiojax.eval import codec_eval

    levels = _NUM_QUANTIZERS.value or []
    if not all(n.strip().isdigit() for n in levels):
      raise ValueError(f"--num_quantizers={','.join(levels)}: expected levels like 1,2,4,8")
    result = codec_eval.evaluate(_WORKDIR.value, _SPLIT.value, _MAX_EXAMPLES.value,
                                 [int(n) for n in levels], _DATASET.value, _OPUS.value,
                                 _SPEECH_METRICS.value, dtype=_CODEC_DTYPE.value)
    print(codec_eval.markdown(result))
    return
  config = trainer.load_config(_WORKDIR.value)
  result = trainer.evaluate(_WORKDIR.value, _SPLIT.value, _MAX_EXAMPLES.value,
                            _CROP_SAMPLES.value, _SCORED_SAMPLES.value)
  if "bits_per_token" in result:  # An AudioLM stage: per-token perplexity of the split.
    result["perplexity"] = math.exp(result["loss"])
  if config.model.name == "speaker_encoder" or config.model.get("speaker_embedding_dim"):
    from audiojax.eval import speaker_verification

    result.update(speaker_verification.evaluate(_WORKDIR.value, _SPLIT.value,
                                                _MAX_EXAMPLES.value))
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  common.run(main)
