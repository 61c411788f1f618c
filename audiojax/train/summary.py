"""TensorBoard logging (scalars, audio, spectrogram images) from process 0 only."""

import os

import jax
import numpy as np

from audiojax import audio as audio_lib


def spectrogram_image(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
  """uint8 image [freq, frames, 3] of the log spectrogram, low frequencies at the bottom."""
  del sample_rate_hz  # The frequency axis spans 0 .. sample_rate / 2.
  spec = audio_lib.log_spectrogram(audio)[::-1]
  top = spec.max()
  level = np.clip((spec - (top - 80.0)) / 80.0, 0.0, 1.0)  # 80 dB of dynamic range.
  # A perceptual dark-blue -> yellow ramp (close to viridis) without matplotlib.
  ramp = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
                  np.float32)
  position = level * (len(ramp) - 1)
  low = np.floor(position).astype(int).clip(0, len(ramp) - 2)
  frac = (position - low)[..., None]
  return ((1 - frac) * ramp[low] + frac * ramp[low + 1]).astype(np.uint8)


class Writer:
  """A TensorBoard event writer under WORKDIR/tensorboard; a no-op on processes > 0."""

  def __init__(self, workdir: str):
    self.logdir = os.path.join(workdir, "tensorboard")
    self._writer = None
    if jax.process_index() == 0:
      from tensorboardX import SummaryWriter

      self._writer = SummaryWriter(self.logdir)

  def scalars(self, step: int, scalars: dict[str, float]) -> None:
    if self._writer:
      for name, value in scalars.items():
        self._writer.add_scalar(name, float(value), step)

  def audio(self, step: int, name: str, audio: np.ndarray, sample_rate_hz: int) -> None:
    if self._writer:
      clipped = np.clip(np.asarray(audio, np.float32), -1, 1)
      self._writer.add_audio(name, clipped, step, sample_rate=sample_rate_hz)
      self._writer.add_image(name + "/spectrogram", spectrogram_image(clipped, sample_rate_hz),
                             step, dataformats="HWC")

  def flush(self) -> None:
    if self._writer:
      self._writer.flush()

  def close(self) -> None:
    if self._writer:
      self._writer.close()
