"""Compresses audio into a token file with a trained SoundStream workdir.

  python -m launch.compress --workdir=runs/ss --input=in.wav --output=out.ajt [--bitrate_kbps=6]
      [--codec_dtype=bfloat16]
"""

import os

from absl import flags

from audiojax.data import token_file
from audiojax.sample import codec
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A soundstream workdir written by launch.train.")
_INPUT = flags.DEFINE_string("input", None, "Audio file (wav, flac, ogg, mp3; any rate).")
_OUTPUT = flags.DEFINE_string("output", None, "Token file to write.")
_BITRATE = flags.DEFINE_float("bitrate_kbps", None, "Bitrate; default: all quantizer levels.")
_DTYPE = common.define_codec_dtype_flag()
flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv):
  del argv
  tokens = codec.compress(os.path.abspath(_WORKDIR.value), _INPUT.value, _BITRATE.value,
                          _DTYPE.value)
  size = token_file.write(_OUTPUT.value, tokens)
  seconds = tokens.num_samples / tokens.sample_rate_hz
  nq = tokens.codes.shape[1]
  print(f"wrote {_OUTPUT.value}: {size} bytes for {seconds:.2f} s ({nq} levels, "
        f"{8 * size / max(seconds, 1e-9) / 1000:.2f} kbps with the header)")


if __name__ == "__main__":
  common.run(main)
