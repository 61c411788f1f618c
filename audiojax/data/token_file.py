"""The codec's token file (`.ajt`): bit-packed RVQ codes with the facts needed to decode them.

Layout (big-endian):
  magic      4 bytes  b"AJTK"
  version    u16      FORMAT_VERSION
  header     u32      length of the JSON header that follows
  JSON       header   {"fingerprint", "workdir", "sample_rate_hz", "hop_samples",
                       "num_quantizers", "codebook_size", "num_samples", "num_frames"}
  payload    codes [num_frames, num_quantizers], each in ceil(log2(codebook_size)) bits,
             frame-major, packed into bytes (zero bits pad the last byte)
  crc32      u32      of everything before it

So the size is the nominal bitrate (frame_rate * nq * log2(K) bits per second) plus about 200
bytes. Any damage (truncation, flipped bits, another format or version) raises TokenFileError
with a clear message.
"""

import dataclasses
import json
import math
import os
import struct
import zlib

import numpy as np

MAGIC = b"AJTK"
FORMAT_VERSION = 1


class TokenFileError(ValueError):
  """A token file that cannot be decoded: truncated, corrupted, wrong version or model."""


@dataclasses.dataclass(frozen=True)
class TokenFile:
  codes: np.ndarray  # int [num_frames, num_quantizers]
  fingerprint: str  # of the model config that wrote it
  workdir: str  # the run whose checkpoint encoded it
  sample_rate_hz: int
  hop_samples: int
  codebook_size: int
  num_samples: int  # of the original audio (the decoded audio is cut to it)

  @property
  def bits_per_code(self) -> int:
    return max(1, math.ceil(math.log2(self.codebook_size)))


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
  """int codes [...] in [0, 2**bits) -> bytes of `bits` bits each (most significant first)."""
  flat = np.asarray(codes, np.int64).reshape(-1)
  if flat.size and (flat.min() < 0 or flat.max() >= 2**bits):
    raise ValueError(f"codes outside [0, {2**bits}) cannot be packed in {bits} bits")
  shifts = np.arange(bits - 1, -1, -1)
  return np.packbits(((flat[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)).tobytes()


def unpack_codes(data: bytes, count: int, bits: int) -> np.ndarray:
  """The inverse of `pack_codes`: `count` codes -> int64 [count]."""
  unpacked = np.unpackbits(np.frombuffer(data, np.uint8))[:count * bits]
  return unpacked.reshape(count, bits).astype(np.int64) @ (1 << np.arange(bits - 1, -1, -1))


def to_bytes(tokens: TokenFile) -> bytes:
  frames, nq = tokens.codes.shape
  header = json.dumps({
      "fingerprint": tokens.fingerprint, "workdir": tokens.workdir,
      "sample_rate_hz": tokens.sample_rate_hz, "hop_samples": tokens.hop_samples,
      "num_quantizers": nq, "codebook_size": tokens.codebook_size,
      "num_samples": tokens.num_samples, "num_frames": frames}).encode()
  body = (MAGIC + struct.pack(">HI", FORMAT_VERSION, len(header)) + header
          + pack_codes(tokens.codes, tokens.bits_per_code))
  return body + struct.pack(">I", zlib.crc32(body))


def from_bytes(data: bytes, name: str = "token file") -> TokenFile:
  """Parses and checks a token file's bytes; `name` is used in error messages."""
  if len(data) < 10 or data[:4] != MAGIC:
    raise TokenFileError(f"{name} is not an audiojax token file (no {MAGIC!r} magic)")
  version, header_length = struct.unpack(">HI", data[4:10])
  if version != FORMAT_VERSION:
    raise TokenFileError(f"{name} has token format version {version}; this audiojax reads "
                         f"version {FORMAT_VERSION}")
  if len(data) < 10 + header_length + 4:
    raise TokenFileError(f"{name} is truncated ({len(data)} bytes, header alone needs "
                         f"{10 + header_length + 4})")
  (checksum,) = struct.unpack(">I", data[-4:])
  if zlib.crc32(data[:-4]) != checksum:
    raise TokenFileError(f"{name} is corrupted or truncated (checksum mismatch)")
  try:
    header = json.loads(data[10:10 + header_length])
    frames, nq = int(header["num_frames"]), int(header["num_quantizers"])
    tokens = TokenFile(np.zeros((frames, nq), np.int64), header["fingerprint"],
                       header["workdir"], int(header["sample_rate_hz"]),
                       int(header["hop_samples"]), int(header["codebook_size"]),
                       int(header["num_samples"]))
  except (ValueError, KeyError, TypeError) as err:
    raise TokenFileError(f"{name} has a damaged header: {err}") from err
  payload = data[10 + header_length:-4]
  needed = math.ceil(frames * nq * tokens.bits_per_code / 8)
  if len(payload) != needed:
    raise TokenFileError(f"{name} holds {len(payload)} bytes of codes, not {needed}")
  codes = unpack_codes(payload, frames * nq, tokens.bits_per_code).reshape(frames, nq)
  if codes.size and codes.max() >= tokens.codebook_size:
    raise TokenFileError(f"{name} has codes beyond its codebook size {tokens.codebook_size}")
  return dataclasses.replace(tokens, codes=codes)


def write(path: str, tokens: TokenFile) -> int:
  """Writes atomically (a partial file never appears); returns the size in bytes."""
  data = to_bytes(tokens)
  tmp = f"{path}.incomplete"
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)
  return len(data)


def read(path: str) -> TokenFile:
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as err:
    raise TokenFileError(f"cannot read token file {path}: {err}") from err
  return from_bytes(data, path)
