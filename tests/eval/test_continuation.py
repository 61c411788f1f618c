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
