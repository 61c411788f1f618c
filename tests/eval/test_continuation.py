"""AudioLM continuation scoring: prompts, the other-voice reference, the table."""

import numpy as np
import pytest

from audiojax.data import pipeline
from audiojax.eval import continuation


def test_other_voice_is_always_another_speaker():
  speakers = [0, 0, 1, 2, 2, 0]
  prompts = [continuation.Prompt(np.zeros(4, np.float32), s) for s in speakers]
  others = continuation.other_voice(prompts)
  assert others == [2, 2, 3, 5, 5, 2]
  assert all(speakers[j] != speakers[i] for i, j in enumerate(others))


def test_prompts_are_long_enough_and_need_two_speakers(espeak_tiny_dir):
  data = pipeline.dataset_config("espeak_speech/tiny", espeak_tiny_dir)
  prompts = continuation.prompts(data, "train", 1.0, 6)
  assert 0 < len(prompts) <= 6 and len({p.speaker for p in prompts}) >= 2
  assert all(p.audio.shape[0] >= 16000 for p in prompts)
  with pytest.raises(ValueError, match="at least two speakers"):
    continuation.prompts(data, "train", 1.0, 1)
  with pytest.raises(ValueError, match="read at 16000 Hz"):
    continuation.prompts(pipeline.dataset_config("espeak_speech/tiny", espeak_tiny_dir, 8000),
                         "train", 1.0, 6)


def test_markdown_has_a_row_per_continuation():
  metrics = dict(speaker_agreement=0.5, phone_confidence=0.25, phones_per_second=9.0,
                 num_prompts=4)
  table = continuation.markdown({"real": metrics, "AudioLM (runs/x)": metrics}, "test", 3, 6)
  assert table.splitlines()[0].startswith("test: 4 prompts of 3 s continued to 6 s")
  assert "| AudioLM (runs/x) | 0.50 | 0.250 | 9.0 |" in table


class _LabelsProbe:
  """Names clips by a fixed list (the probe itself is tested in tests/eval)."""

  def __init__(self, labels):
    self.labels = list(labels)

  def predict(self, clips):
    return np.asarray(self.labels[:len(clips)])


def test_music_scores_tell_notes_from_noise():
  """No recognizer: instrument agreement, pitched share and flatness; a chord of tones is
  pitched and peaky, white noise neither."""
  t = np.arange(16000) / 16000
  tones = [(0.3 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f * t)
            ).astype(np.float32) for f in (220.0, 330.0)]
  noise = [np.random.default_rng(i).standard_normal(16000).astype(np.float32) * 0.3
           for i in range(2)]
  probe = _LabelsProbe([1, 2])
  music = continuation.score(tones, tones, probe)
  hiss = continuation.score(tones, noise, probe)
  assert set(music) == {"speaker_agreement", "pitched_fraction", "flatness"}
  assert music["speaker_agreement"] == 1.0
  assert music["pitched_fraction"] > 0.9 > 0.1 > hiss["pitched_fraction"]
  assert music["flatness"] < 0.01 and hiss["flatness"] > 0.3
  table = continuation.markdown({"real": {**music, "num_prompts": 2}}, "test", 1, 3,
                                "instrument")
  assert "| continuation | instrument agreement | pitched share | spectral flatness |" in table
  assert f"| real | 1.00 | {music['pitched_fraction']:.2f} |" in table
