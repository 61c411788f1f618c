import glob

import numpy as np
from tensorboard.backend.event_processing import event_accumulator

from audiojax.train import summary


def test_writer_logs_scalars_audio_and_spectrogram(tmp_path):
  writer = summary.Writer(str(tmp_path))
  t = np.arange(16000) / 16000
  tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
  writer.scalars(3, {"train/loss": 1.5})
  writer.audio(3, "samples/0", tone, 16000)
  writer.close()
  events = event_accumulator.EventAccumulator(
      glob.glob(str(tmp_path / "tensorboard" / "events.*"))[0],
      size_guidance={event_accumulator.IMAGES: 0, event_accumulator.AUDIO: 0})
  events.Reload()
  assert events.Scalars("train/loss")[0].value == 1.5
  assert events.Audio("samples/0")[0].sample_rate == 16000
  image = events.Images("samples/0/spectrogram")[0]
  assert image.height == 257 and image.width > 100


def test_spectrogram_image_puts_a_tone_at_its_frequency():
  t = np.arange(16000) / 16000
  image = summary.spectrogram_image(np.sin(2 * np.pi * 2000 * t), 16000)
  assert image.dtype == np.uint8 and image.shape[2] == 3
  brightness = image.astype(float).sum(axis=(1, 2))
  row = int(np.argmax(brightness))
  freq_hz = (image.shape[0] - 1 - row) * 8000 / (image.shape[0] - 1)  # low frequencies at bottom
  assert abs(freq_hz - 2000) < 40
