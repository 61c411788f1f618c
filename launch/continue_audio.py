r"""Continue a prompt with AudioLM: semantic -> coarse -> fine tokens -> codec audio.

  python -m launch.continue_audio --workdir=runs/audiolm --prompt=prompt.wav \
      --prompt_seconds=3 --seconds=10 --output=out.wav [--num_samples=N --seed=S] \
      [--weights=int8 --bfloat16_cache --codec_dtype=bfloat16]
  python -m launch.continue_audio --workdir=runs/audiolm --mode=unconditional --seconds=4 \
      --output=free.wav
  python -m launch.continue_audio --workdir=runs/audiolm --mode=acoustic --prompt=voice.wav \
      --source=words.wav --output=resynth.wav   # words.wav's semantic tokens, voice.wav's voice

--workdir holds the stages' runs as semantic/, coarse/ and fine/ (or name each with
--semantic_workdir, --coarse_workdir, --fine_workdir; without a semantic stage the coarse stage
must be the acoustic_only ablation). The tokenizers are found through the stages' token
datasets (`audiojax.sample.audiolm`). Output: the prompt's first --prompt_seconds then the
continuation, --seconds in all, at the codec's rate; with --num_samples > 1, out_0.wav, ...
"""

import os

import jax
from absl import flags

from audiojax.data import audio_io
from audiojax.sample import audiolm
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Root holding semantic/, coarse/, fine/ runs.")
_SEMANTIC = flags.DEFINE_string("semantic_workdir", None, "The semantic stage's run.")
_COARSE = flags.DEFINE_string("coarse_workdir", None, "The coarse stage's run.")
_FINE = flags.DEFINE_string("fine_workdir", None, "The fine stage's run.")
_MODE = flags.DEFINE_enum("mode", "continuation", ["continuation", "unconditional", "acoustic"],
                          "What to generate.")
_PROMPT = flags.DEFINE_string("prompt", None, "Prompt audio (any common format and rate).")
_PROMPT_SECONDS = flags.DEFINE_float("prompt_seconds", 3.0, "Seconds of the prompt to keep.")
_SOURCE = flags.DEFINE_string("source", None, "--mode=acoustic: audio whose words to speak.")
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Length of the output, prompt included.")
_OUTPUT = flags.DEFINE_string("output", None, "Output .wav.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1, "Continuations to draw.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_WEIGHTS = flags.DEFINE_enum(
    "weights", "float32", list(audiolm.WEIGHTS), "How the stages' dense kernels are stored "
    "while sampling (float32 compute either way): bfloat16 / int8 (per-column scales) decode "
    "~1.8x / ~2.4x faster at batch 1 on a CPU, with slightly different draws.")
_BF16_CACHE = flags.DEFINE_bool(
    "bfloat16_cache", False, "Keep the stages' KV caches as bfloat16 (head_dim a multiple of "
    "64): with --weights=int8 ~3.7x the float32 decoding speed at batch 1 on a CPU.")
_CODEC_DTYPE = common.define_codec_dtype_flag()
_TEMPERATURES = {stage: flags.DEFINE_float(f"{stage}_temperature", value,
                                           f"Sampling temperature of the {stage} stage.")
                 for stage, value in audiolm.TEMPERATURES.items()}
flags.mark_flag_as_required("output")

SAMPLE_RATE_HZ = 16000  # What the semantic tokenizer reads.
MIN_SECONDS = 0.02


def read_prompt(path: str, seconds: float | None, what: str):
  """float32 audio at 16 kHz: the first `seconds` of `path`; clear errors for bad audio."""
  audio = audio_io.load_audio(path, SAMPLE_RATE_HZ)  # AudioError: missing, corrupt, empty.
  if seconds is not None:
    if audio.shape[0] < seconds * SAMPLE_RATE_HZ:
      raise ValueError(f"{what} {path} is {audio.shape[0] / SAMPLE_RATE_HZ:.2f} s long, shorter "
                       f"than --prompt_seconds={seconds}")
    audio = audio[:round(seconds * SAMPLE_RATE_HZ)]
  if audio.shape[0] < MIN_SECONDS * SAMPLE_RATE_HZ:
    raise ValueError(f"{what} {path} is shorter than {1000 * MIN_SECONDS:g} ms (one 50 Hz token "
                     "frame): too short to take tokens from")
  return audio


def main(argv):
  del argv
  mode = _MODE.value
  if mode != "unconditional" and not _PROMPT.value:
    raise ValueError(f"--mode={mode} needs --prompt")
  if mode == "acoustic" and not _SOURCE.value:
    raise ValueError("--mode=acoustic needs --source (the audio whose semantic tokens to use)")
  if mode == "unconditional" and _PROMPT.value:
    raise ValueError("--mode=unconditional takes no --prompt")
  prompt = source = None
  if _PROMPT.value:
    prompt = read_prompt(_PROMPT.value, _PROMPT_SECONDS.value, "the prompt")
  if mode == "acoustic":
    source = read_prompt(_SOURCE.value, None, "the source")
  semantic_dir, coarse_dir, fine_dir = audiolm.stage_workdirs(
      _WORKDIR.value, _SEMANTIC.value, _COARSE.value, _FINE.value)
  pipe = audiolm.load_pipeline(coarse_dir, semantic_dir, fine_dir, _WEIGHTS.value,
                               _BF16_CACHE.value, _CODEC_DTYPE.value)
  if mode == "acoustic" and not pipe.layout.semantic_vocab:
    raise ValueError("--mode=acoustic needs stages trained with semantic tokens")
  seconds = _SECONDS.value
  if mode == "acoustic":  # Long enough for the source's words after the prompt.
    seconds = max(seconds, (len(prompt) + len(source)) / SAMPLE_RATE_HZ)
  audio = audiolm.generate(pipe, seconds, jax.random.key(_SEED.value), _NUM_SAMPLES.value,
                           prompt=prompt, semantic_source=source,
                           temperatures={k: f.value for k, f in _TEMPERATURES.items()})
  rate = pipe.codec_model.sample_rate_hz
  stem, ext = os.path.splitext(_OUTPUT.value)
  for i, clip in enumerate(audio):
    path = _OUTPUT.value if len(audio) == 1 else f"{stem}_{i}{ext or '.wav'}"
    audio_io.write_wav(path, clip, rate)
    print(f"wrote {path}: {len(clip) / rate:.2f} s at {rate} Hz")


if __name__ == "__main__":
  common.run(main)
