"""Opus baseline: a clip through libopus (libsndfile's Ogg/Opus writer, via soundfile) and back.

The only bitrate control libsndfile offers for Opus is SFC_SET_COMPRESSION_LEVEL (soundfile's
`compression_level`): level c in [0, 1] sets the encoder's target to (1 - c) * 250 + 6 kbps per
channel (src/ogg_opus.c); everything else is libopus's default (VBR, 20 ms frames, complexity
10). So the lowest target is 6 kbps: Opus cannot be asked for less (SoundStream's 3 kbps has no
Opus match). Since VBR misses the target, `closest_encoding` measures the achieved bitrate and
corrects the setting until it lands near the target.

Achieved bitrate (`Encoded.kbps`) counts the Opus packets (the codec's bitstream, like a neural
codec's nominal bitrate); `Encoded.file_kbps` is the whole .opus file over the clip's duration
(adds ~870 bytes of headers and ~0.6 kbps of Ogg framing at 50 packets/s).
"""

import dataclasses
import io

import numpy as np
import soundfile as sf

from audiojax.data import audio_io

RATES_HZ = (8000, 12000, 16000, 24000, 48000)  # What Opus encodes; others are resampled.
MIN_KBPS, MAX_KBPS = 6.0, 256.0  # The targets libsndfile's compression level spans (mono).


class OpusUnavailableError(RuntimeError):
  """This libsndfile cannot write Ogg/Opus."""


def available() -> bool:
  """Whether soundfile's libsndfile writes Ogg/Opus."""
  return "OPUS" in sf.available_subtypes("OGG")


@dataclasses.dataclass(frozen=True)
class Encoded:
  """An Ogg/Opus file of a mono clip."""
  data: bytes
  sample_rate_hz: int  # The rate it was encoded at (one of RATES_HZ).
  num_samples: int
  setting_kbps: float  # The target given to libopus.

  @property
  def seconds(self) -> float:
    return self.num_samples / self.sample_rate_hz

  @property
  def kbps(self) -> float:
    """Bitrate of the Opus packets (headers and Ogg framing left out)."""
    return 8 * sum(opus_packet_sizes(self.data)[2:]) / self.seconds / 1000

  @property
  def file_kbps(self) -> float:
    """Bitrate of the whole file."""
    return 8 * len(self.data) / self.seconds / 1000


def opus_packet_sizes(data: bytes) -> list[int]:
  """Byte sizes of the packets in an Ogg stream (for Opus: OpusHead, OpusTags, then audio)."""
  sizes, size, offset = [], 0, 0
  while offset < len(data):
    if data[offset:offset + 4] != b"OggS":
      raise ValueError(f"not an Ogg page at byte {offset}")
    num_segments = data[offset + 26]
    lacing = data[offset + 27:offset + 27 + num_segments]
    for segment in lacing:  # A packet ends at the first segment shorter than 255 bytes.
      size += segment
      if segment < 255:
        sizes.append(size)
        size = 0
    offset += 27 + num_segments + sum(lacing)
  return sizes


def encoding_rate_hz(sample_rate_hz: int) -> int:
  """The Opus rate a clip at `sample_rate_hz` is encoded at: the lowest >= it (at most 48k)."""
  return next((r for r in RATES_HZ if r >= sample_rate_hz), RATES_HZ[-1])


def encode(audio: np.ndarray, sample_rate_hz: int, setting_kbps: float) -> Encoded:
  """Encodes mono audio [samples] (`sample_rate_hz` in RATES_HZ) at a target of
  `setting_kbps` (clipped to MIN_KBPS ... MAX_KBPS)."""
  if not available():
    raise OpusUnavailableError(f"libsndfile {sf.__libsndfile_version__} has no Ogg/Opus "
                               "encoder: install a soundfile wheel built with Opus")
  if sample_rate_hz not in RATES_HZ:
    raise ValueError(f"Opus encodes at {RATES_HZ} Hz, not {sample_rate_hz} Hz: resample first")
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 1 or audio.size == 0:
    raise ValueError(f"expected a non-empty mono clip [samples], got shape {audio.shape}")
  setting_kbps = float(np.clip(setting_kbps, MIN_KBPS, MAX_KBPS))
  level = 1.0 - (setting_kbps - MIN_KBPS) / (MAX_KBPS - MIN_KBPS)
  buffer = io.BytesIO()
  sf.write(buffer, audio, sample_rate_hz, format="OGG", subtype="OPUS",
           compression_level=float(np.clip(level, 0.0, 1.0)))
  return Encoded(buffer.getvalue(), sample_rate_hz, audio.shape[0], setting_kbps)


def decode(encoded: Encoded) -> np.ndarray:
  """The decoded clip: float32 [num_samples] at `encoded.sample_rate_hz`."""
  audio, _ = sf.read(io.BytesIO(encoded.data), dtype="float32", always_2d=False)
  out = np.zeros(encoded.num_samples, np.float32)
  out[:min(audio.shape[0], out.shape[0])] = audio[:out.shape[0]]
  return out


def closest_encoding(audio: np.ndarray, sample_rate_hz: int, target_kbps: float,
                     max_tries: int = 4) -> Encoded:
  """The encoding whose achieved `kbps` is closest to `target_kbps` of at most `max_tries`:
  start at the target, then scale the setting by target / achieved (VBR lands off target).

  audio: mono [samples] at `sample_rate_hz` in RATES_HZ.
  """
  setting, best = target_kbps, None
  for _ in range(max_tries):
    encoded = encode(audio, sample_rate_hz, setting)
    if best is None or abs(encoded.kbps - target_kbps) < abs(best.kbps - target_kbps):
      best = encoded
    if abs(encoded.kbps - target_kbps) < 0.02 * target_kbps or encoded.kbps <= 0:
      break
    next_setting = float(np.clip(encoded.setting_kbps * target_kbps / encoded.kbps,
                                 MIN_KBPS, MAX_KBPS))
    if abs(next_setting - encoded.setting_kbps) < 0.01:  # Pinned at either end of the range.
      break
    setting = next_setting
  return best


def roundtrip(audio: np.ndarray, sample_rate_hz: int,
              target_kbps: float) -> tuple[np.ndarray, Encoded]:
  """(decoded float32 [samples] at `sample_rate_hz`, the chosen encoding), through Opus at
  the setting closest to `target_kbps`; other rates are resampled to an Opus rate and back."""
  rate = encoding_rate_hz(sample_rate_hz)
  encoded = closest_encoding(audio_io.resample(audio, sample_rate_hz, rate), rate, target_kbps)
  decoded = audio_io.resample(decode(encoded), rate, sample_rate_hz)
  num_samples = np.asarray(audio).shape[0]
  return np.pad(decoded, (0, max(0, num_samples - decoded.shape[0])))[:num_samples], encoded


def opus_roundtrip(audio: np.ndarray, sample_rate_hz: int,
                   target_kbps: float) -> tuple[np.ndarray, float]:
  """(decoded audio [samples] at `sample_rate_hz`, achieved kbps of the Opus packets)."""
  decoded, encoded = roundtrip(audio, sample_rate_hz, target_kbps)
  return decoded, encoded.kbps
