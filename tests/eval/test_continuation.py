"""AudioLM continuation scoring: prompts, the other-voice reference, the table."""

import numpy as np
import pytest

from audiojax.data import pipeline
from audiojax.eval import continuation, speaker_probe
from tests.eval.test_speaker_probe import voice


def test_other_voice_is_always_another_speaker():
  speakers = [0, 0, 1, 2, 2, 0]
  prompts = [continuation.Prompt(np.zeros(4, np.float32), s) for s in speakers]
  others = continuation.other_voice(prompts)
  assert others == [2, 2, 3, 5, 5, 2]
  assert all(speakers[j] != speakers[i] for i, j in enumerate(others))


def test_prompts_are_long_enough_take_speakers_in_turn_and_need_two(espeak_tiny_dir):
  data = pipeline.dataset_config("espeak_speech/tiny", espeak_tiny_dir)
  prompts = continuation.prompts(data, "train", 1.0, 6)
  assert len(prompts) == 6 and all(p.audio.shape[0] >= 16000 for p in prompts)
  speakers = [p.speaker for p in prompts]
  assert len(set(speakers[:3])) == 3 and speakers[3:] == speakers[:3], speakers  # 3 voices.
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
  assert "| AudioLM (runs/x) | 0.50 | nan | 0.250 | 9.0 |" in table
  metrics["speaker_agreement_standardised"] = 0.75
  table = continuation.markdown({"AudioLM": metrics}, "test", 3, 6)
  assert "| AudioLM | 0.50 | 0.75 | 0.250 | 9.0 |" in table


def test_standardised_agreement_discounts_what_all_continuations_share():
  """Continuations in their prompts' voices but quieter and over a noise floor (as generated
  audio is): the plain probe puts them all on one speaker, standardised per set it agrees."""
  clips = [voice(s, seed) for seed in range(4) for s in range(3)]
  probe = speaker_probe.fit(clips, [s for _ in range(4) for s in range(3)], 16000)
  rng = np.random.default_rng(0)
  speakers = [s for _ in range(2) for s in range(3)]
  heads = [voice(s, 100 + i) for i, s in enumerate(speakers)]
  generated = [0.2 * voice(s, 200 + i) + 0.1 * rng.normal(size=8000).astype(np.float32)
               for i, s in enumerate(speakers)]
  scores = continuation.score(heads, generated, probe)
  assert scores["speaker_agreement"] <= 1 / 3
  assert scores["speaker_agreement_standardised"] >= 2 / 3
  assert continuation.score(heads, heads, probe)["speaker_agreement_standardised"] == 1.0


class _LabelsProbe:
  """Names clips by a fixed list (the probe itself is tested in tests/eval)."""

  def __init__(self, labels):
    self.labels = list(labels)

  def predict(self, clips, standardise_over_clips=False):
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
  assert set(music) == {"speaker_agreement", "speaker_agreement_standardised",
                        "pitched_fraction", "flatness"}
  assert music["speaker_agreement"] == 1.0
  assert music["pitched_fraction"] > 0.9 > 0.1 > hiss["pitched_fraction"]
  assert music["flatness"] < 0.01 and hiss["flatness"] > 0.3
  table = continuation.markdown({"real": {**music, "num_prompts": 2}}, "test", 1, 3,
                                "instrument")
  assert ("| continuation | instrument agreement | the same, standardised per set | pitched "
          "share | spectral flatness |") in table
  assert f"| real | 1.00 | 1.00 | {music['pitched_fraction']:.2f} |" in table
