"""What every entry point shares: absl start-up with readable config-override errors."""

import difflib
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable

import numpy as np
from absl import app, flags

from audiojax.data import audio_io


def _flatten(config, prefix: str = "") -> list[str]:
  keys = []
  for key, value in config.items():
    name = f"{prefix}{key}"
    keys += _flatten(value, name + ".") if hasattr(value, "items") else [name]
  return keys


def reference_recording(config, path: str | None, workdir: str) -> np.ndarray | None:
  """--reference of a voice-cloning model (`speaker_embedding_dim > 0`): the recording at the
  model's rate, [1, samples]; None for other models. Exits with a clear error when a cloning
  model gets no --reference or another model gets one."""
  cloning = config.model.get("speaker_embedding_dim", 0) > 0
  if cloning != bool(path):
    raise SystemExit("error: this is a voice-cloning model: pass --reference=voice.wav" if cloning
                     else "error: --reference needs a voice-cloning model (speaker_embedding_dim"
                     f" > 0, e.g. configs/wavenet.py:tts_cloning); {workdir} has none")
  return audio_io.load_audio(path, config.data.sample_rate_hz)[None] if cloning else None


def define_sampling_flags() -> Callable[[], dict]:
  """Defines --voiced_temperature, --probability_floor and --excitation_limit for a launcher
  that draws from a WaveNet; returns a function giving the `generate` keyword arguments the
  flags set (the sampler checks the model can take them)."""
  voiced = flags.DEFINE_float(
      "voiced_temperature", None, "Models with an excitation (the quick start's): the "
      "temperature of the samples its voiced flag marks; --temperature is then the unvoiced "
      "ones'.", lower_bound=0.001)
  floor = flags.DEFINE_float(
      "probability_floor", 0.0, "Softmax models: classes less likely than this are never "
      "drawn (LPCNet's 0.002: fewer clicks and less hiss; below 1 / num_classes).",
      lower_bound=0.0)
  limit = flags.DEFINE_float(
      "excitation_limit", 0.0, "Models of the excitation (the quick start's): while the "
      "drawn excitation's RMS is above this many times the level its frame's log-mel implies, "
      "draw only within that level (a gain control; the quick start's: 6; 0: off).",
      lower_bound=0.0)

  def kwargs() -> dict:
    return {**({} if voiced.value is None else {"voiced_temperature": voiced.value}),
            **({"probability_floor": floor.value} if floor.value else {}),
            **({"excitation_limit": limit.value} if limit.value else {})}

  return kwargs


def define_codec_dtype_flag() -> flags.FlagHolder:
  """--codec_dtype: the SoundStream codec's compute dtype (`audiojax.sample.codec.with_dtype`)."""
  return flags.DEFINE_enum(
      "codec_dtype", None, ["float32", "bfloat16"],
      "SoundStream codec compute dtype; default: as trained. bfloat16 runs 2.5-2.7x faster on "
      "CPUs with AMX, its audio ~27 dB SNR from float32's (benchmarks/RESULTS.md); "
      "JAX_DEFAULT_MATMUL_PRECISION=high keeps float32's accuracy at 1.3-1.5x.")


def load_recognizer(workdir: str, sample_rate_hz: int):
  """--recognizer: the phone recognizer (`audiojax.eval.phone_recognizer.load`) of a run of
  configs/phone_recognizer.py; ValueError for a run of another model or another sample rate."""
  from audiojax.eval import phone_recognizer

  recognizer = phone_recognizer.load(workdir)
  if recognizer.sample_rate_hz != sample_rate_hz:
    raise ValueError(f"--recognizer={workdir} hears {recognizer.sample_rate_hz} Hz audio; this "
                     f"model makes {sample_rate_hz} Hz")
  return recognizer


def load_config_file(spec: str):
  """`path/to/config.py[:arg]` -> the ConfigDict its `get_config(arg)` returns."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_audiojax_config", path)
  if module_spec is None:
    raise FileNotFoundError(f"--config={spec}: no config file {path}")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def unknown_override_message(argv: list[str]) -> str | None:
  """A clear message for `--config.KEY=...` flags whose KEY the config lacks, if any."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None:
    return None
  valid = _flatten(load_config_file(spec))
  messages = []
  for arg in argv:
    match = re.match(r"--config\.([\w.]+)", arg)
    if match and match.group(1) not in valid:
      key = match.group(1)
      close = difflib.get_close_matches(key, valid, n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      messages.append(f"unknown config key {key!r}{hint}")
  if not messages:
    return None
  return "; ".join(messages) + ".\nValid keys:\n  " + "\n  ".join(valid)


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as err:
    message = unknown_override_message(argv) or str(err)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# Errors that mean bad input (a file, a flag, a workdir), reported as one line, no traceback.
# Set AUDIOJAX_TRACEBACK=1 to see the traceback anyway.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def _reporting_errors(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  def wrapped(argv):
    try:
      main(argv)
    except USER_ERRORS as err:
      if os.environ.get("AUDIOJAX_TRACEBACK"):
        raise
      print(f"error: {err}", file=sys.stderr)
      sys.exit(1)

  return wrapped


class _QuietLibraries(logging.Filter):
  """Drops INFO chatter of orbax and absl-using libraries; their warnings still show."""

  def filter(self, record: logging.LogRecord) -> bool:
    noisy = any(f"{os.sep}{name}{os.sep}" in record.pathname
                for name in ("orbax", "tensorflow_datasets", "grain"))
    return record.levelno >= logging.WARNING or not noisy


def _setup_logging() -> None:
  logging.getLogger().setLevel(logging.INFO)
  for handler in logging.getLogger().handlers:
    handler.addFilter(_QuietLibraries())


def run(main: Callable[[list[str]], None]) -> None:
  """`app.run(main)` with readable errors for bad `--config.*` overrides and bad input."""

  def main_with_logging(argv):
    _setup_logging()
    _reporting_errors(main)(argv)

  app.run(main_with_logging, flags_parser=_parse_flags)
