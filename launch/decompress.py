"""Decodes a token file back to audio with the codec that wrote it.

  python -m launch.decompress --input=out.ajt --output=rec.wav [--workdir=runs/ss]
      [--codec_dtype=bfloat16]
"""

from absl import flags

from audiojax.data import audio_io, token_file
from audiojax.sample import codec
from launch import common

_INPUT = flags.DEFINE_string("input", None, "Token file written by launch.compress.")
_OUTPUT = flags.DEFINE_string("output", None, "Wav file to write.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Codec workdir; default: the one the file names.")
_DTYPE = common.define_codec_dtype_flag()
flags.mark_flags_as_required(["input", "output"])


def main(argv):
  del argv
  tokens = token_file.read(_INPUT.value)
  audio = codec.decompress(tokens, _WORKDIR.value, _DTYPE.value)
  audio_io.write_wav(_OUTPUT.value, audio, tokens.sample_rate_hz)
  print(f"wrote {_OUTPUT.value} ({audio.shape[0] / tokens.sample_rate_hz:.2f} s at "
        f"{tokens.sample_rate_hz} Hz)")


if __name__ == "__main__":
  common.run(main)
