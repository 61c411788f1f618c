"""Opus through libsndfile: the achieved bitrate is near the target and quality grows with it."""

import numpy as np
import pytest

from audiojax.data import audio_io, espeak
from audiojax.eval import codec_metrics, opus

pytestmark = pytest.mark.skipif(not opus.available(),
                                reason="soundfile's libsndfile has no Ogg/Opus encoder")
RATE_HZ = 16000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
  """~5 s of synthetic speech at 16 kHz, float32 [samples]."""
  audio, _ = espeak.synthesize("The quick brown fox jumps over the lazy dog. A second "
                               "sentence follows to make the clip longer.", voice="en")
  return audio_io.resample(audio_io.to_mono_float(audio), espeak.SAMPLE_RATE_HZ, RATE_HZ)


@pytest.mark.parametrize("target_kbps", [6, 12, 24])
def test_achieved_bitrate_is_near_the_target(speech, target_kbps):
  decoded, kbps = opus.opus_roundtrip(speech, RATE_HZ, target_kbps)
  assert decoded.shape == speech.shape and decoded.dtype == np.float32
  assert kbps == pytest.approx(target_kbps, rel=0.3)


def test_quality_improves_from_6_to_12_kbps(speech):
  scores = {kbps: codec_metrics.compute(speech, opus.opus_roundtrip(speech, RATE_HZ, kbps)[0],
                                        RATE_HZ, speech=False) for kbps in (6, 12)}
  assert scores[12]["si_snr_db"] > scores[6]["si_snr_db"] + 3
  assert scores[12]["mel_distance"] < scores[6]["mel_distance"]


def test_below_the_opus_minimum_gives_the_lowest_setting(speech):
  _, lowest = opus.roundtrip(speech, RATE_HZ, 3)
  assert lowest.setting_kbps == opus.MIN_KBPS
  assert lowest.kbps == pytest.approx(opus.MIN_KBPS, rel=0.3)


def test_file_holds_headers_and_packets(speech):
  encoded = opus.encode(speech, RATE_HZ, 12)
  sizes = opus.opus_packet_sizes(encoded.data)
  assert encoded.data[28:36] == b"OpusHead" and sizes[0] == 19  # Mono OpusHead is 19 bytes.
  assert len(sizes) - 2 == pytest.approx(encoded.seconds / 0.02, abs=2)  # 20 ms packets.
  assert encoded.file_kbps > encoded.kbps


def test_other_rates_are_resampled_for_opus(speech):
  at_22k = audio_io.resample(speech, RATE_HZ, 22050)
  decoded, encoded = opus.roundtrip(at_22k, 22050, 24)
  assert encoded.sample_rate_hz == 24000 and decoded.shape == at_22k.shape
  assert codec_metrics.si_snr_db(at_22k, decoded) > 5  # Aligned (a shift would give ~0).
  with pytest.raises(ValueError, match="resample first"):
    opus.encode(at_22k, 22050, 24)
