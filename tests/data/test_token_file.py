"""Token files: bit-packing round trip, size at the nominal bitrate, every damaged-file case."""

import math
import struct
import zlib

import numpy as np
import pytest

from audiojax.data import token_file


def tokens(frames=50, nq=4, codebook_size=1024, seed=0):
  codes = np.random.default_rng(seed).integers(0, codebook_size, (frames, nq))
  return token_file.TokenFile(codes, "0123456789abcdef", "/runs/ss", 16000, 320, codebook_size,
                              frames * 320 - 7)


@pytest.mark.parametrize("bits", [1, 3, 5, 10, 14])
def test_bit_packing_round_trip(bits):
  codes = np.random.default_rng(bits).integers(0, 2**bits, 1001)
  packed = token_file.pack_codes(codes, bits)
  assert len(packed) == math.ceil(1001 * bits / 8)
  np.testing.assert_array_equal(token_file.unpack_codes(packed, 1001, bits), codes)


def test_file_round_trip_and_size(tmp_path):
  original = tokens()
  path = str(tmp_path / "a.ajt")
  size = token_file.write(path, original)
  back = token_file.read(path)
  np.testing.assert_array_equal(back.codes, original.codes)
  assert back == token_file.TokenFile(back.codes, *[getattr(original, f) for f in (
      "fingerprint", "workdir", "sample_rate_hz", "hop_samples", "codebook_size",
      "num_samples")])
  # 1 s at 50 Hz x 4 levels x 10 bits = 2 kbps = 250 bytes, plus a small header.
  assert 250 < size < 250 + 300, size


def damaged(data: bytes, where: int, value: int) -> bytes:
  return data[:where] + bytes([value]) + data[where + 1:]


def test_every_damaged_file_is_a_clear_error():
  data = token_file.to_bytes(tokens())
  cases = {
      "not an audiojax token file": b"RIFF" + data[4:],
      "truncated": data[:12],
      "checksum": data[:-20] + data[-4:],  # Codes cut off the end.
      "checksum mismatch": damaged(data, len(data) - 30, data[-30] ^ 0x10),  # One flipped bit.
      "version 7": data[:4] + struct.pack(">H", 7) + data[6:],
  }
  for message, bad in cases.items():
    with pytest.raises(token_file.TokenFileError, match=message):
      token_file.from_bytes(bad)
  # A well-formed file whose codes exceed its codebook (consistent checksum).
  body = token_file.to_bytes(tokens(codebook_size=1000, seed=3))[:-4]
  body = body[:-40] + b"\xff" * 40
  with pytest.raises(token_file.TokenFileError, match="beyond its codebook size"):
    token_file.from_bytes(body + struct.pack(">I", zlib.crc32(body)))


def test_unreadable_path(tmp_path):
  with pytest.raises(token_file.TokenFileError, match="cannot read"):
    token_file.read(str(tmp_path / "missing.ajt"))
