r"""Audio super-resolution with a WaveNet conditioned on the low band (`configs/wavenet.py:
super_resolution`): low-rate audio -> audio at the model's rate.

  python -m launch.super_resolve --workdir=runs/superres --input=low.wav --output=hi.wav \
      [--reference=original.wav] [--temperature=1.0] [--seed=0]

The input is read at sample_rate_hz / lowband_factor (8 kHz for the config; other rates are
resampled to it) and is the model's conditioning, as the training step computes it from the
audio (`audiojax.train.tasks.condition_features`). With --reference (the original at any
rate), prints the log-spectral distance (`audiojax.eval.codec_metrics.log_spectral_distance`)
of the output and of plain resampling (soxr) of the input, over all bins and over the added
band (above the input's Nyquist frequency).
"""

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from audiojax.data import audio_io
from audiojax.eval import codec_metrics
from audiojax.train import tasks, trainer
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A super_resolution run.")
_INPUT = flags.DEFINE_string("input", None, "Low-rate audio (any common format).")
_OUTPUT = flags.DEFINE_string("output", None, "Where the .wav goes.")
_REFERENCE = flags.DEFINE_string("reference", None, "The original audio, to score against.")
_SPEAKER = flags.DEFINE_integer("speaker", 0, "Speaker id (models with speakers).")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Softmax temperature (0 = argmax).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv):
  del argv
  config = trainer.load_config(_WORKDIR.value)
  if config.model.get("condition_source") != "lowband":
    raise ValueError(f"{_WORKDIR.value} is not a super-resolution model (configs/wavenet.py:"
                     "super_resolution: condition_source='lowband')")
  model, task, variables, _ = trainer.restore_variables(config, _WORKDIR.value)
  rate, factor = model.sample_rate_hz, model.lowband_factor
  low = audio_io.load_audio(_INPUT.value, rate // factor)  # [n] at the low rate
  length = low.shape[0] * factor
  frames = -(-length // model.condition_hop)
  condition = tasks.lowband_features(model, jnp.asarray(low)[None], frames)
  speaker = jnp.full((1,), _SPEAKER.value, jnp.int32)
  audio = task.generate(model, variables, jax.random.PRNGKey(_SEED.value), 1, length, speaker,
                        _TEMPERATURE.value, condition=condition)
  audio = np.asarray(audio)[0]
  audio_io.write_wav(_OUTPUT.value, audio, rate)
  print(f"wrote {_OUTPUT.value}: {length / rate:.2f} s at {rate} Hz (from {rate // factor} Hz)")
  if _REFERENCE.value:
    reference = audio_io.load_audio(_REFERENCE.value, rate)[:length]
    reference = np.pad(reference, (0, length - reference.shape[0]))
    resampled = audio_io.resample(low, rate // factor, rate)[:length]
    resampled = np.pad(resampled, (0, length - resampled.shape[0]))
    band = rate / factor / 2
    for name, estimate in (("super-resolution", audio), ("resampling", resampled)):
      lsd = codec_metrics.log_spectral_distance(reference, estimate, rate)
      high = codec_metrics.log_spectral_distance(reference, estimate, rate, min_hz=band)
      print(f"{name}: LSD {lsd:.3f}, above {band:g} Hz {high:.3f}")


if __name__ == "__main__":
  common.run(main)
