"""The `espeak_speech` corpus (`tiny` config), its espeak binding and sentence generator."""

import os

import numpy as np
import pytest

from audiojax.data import espeak, espeak_speech, sentences

SPLITS = ("train", "validation", "test", "test_unseen_speakers")


def _read(builder) -> dict[str, list[dict]]:
  """Split -> examples sorted by id."""
  result = {}
  for split in SPLITS:
    source = builder.as_data_source(split)
    result[split] = sorted((source[i] for i in range(len(source))), key=lambda e: e["id"])
  return result


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
  """The tiny corpus built twice in this process, with espeak used in between."""
  first = espeak_speech.prepare(str(tmp_path_factory.mktemp("espeak_a")), "tiny")
  espeak.synthesize("Something else first, to change the library's state.", "en+f2")
  second = espeak_speech.prepare(str(tmp_path_factory.mktemp("espeak_b")), "tiny")
  return first, _read(first), _read(second)


def _data_dir(builder) -> str:
  return os.path.dirname(os.path.dirname(os.path.dirname(builder.data_dir)))


def test_two_builds_are_identical(builds):
  _, first, second = builds
  for split in SPLITS:
    assert len(first[split]) == len(second[split]) > 0
    for a, b in zip(first[split], second[split], strict=True):
      assert a.keys() == b.keys()
      for key in a:
        if isinstance(a[key], np.ndarray):
          assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
        else:
          assert a[key] == b[key], key


def test_rebuilding_is_a_cheap_no_op(builds):
  builder, _, _ = builds
  files = {name: os.stat(os.path.join(builder.data_dir, name)).st_mtime_ns
           for name in os.listdir(builder.data_dir)}
  again = espeak_speech.prepare(_data_dir(builder), "tiny")
  assert again.data_dir == builder.data_dir
  assert again.info.splits["train"].num_examples == builder.info.splits["train"].num_examples
  assert {name: os.stat(os.path.join(builder.data_dir, name)).st_mtime_ns
          for name in os.listdir(builder.data_dir)} == files


def test_features_and_split_sizes(builds):
  builder, examples, _ = builds
  config = builder.builder_config
  names = builder.info.features["speaker"].names
  seen, unseen = config.speakers()
  assert names == [s.name for s in seen + unseen]
  assert names[0] == "en-us+m3_r190_p35"  # Pinned: the speakers' rate/pitch come from the seed.
  n_held = config.held_out_per_language
  expected = {"train": len(seen) * config.train_per_speaker, "validation": len(seen) * n_held,
              "test": len(seen) * n_held, "test_unseen_speakers": len(unseen) * n_held}
  assert {split: len(examples[split]) for split in SPLITS} == expected
  example = examples["train"][0]
  assert example["audio"].dtype == np.int16 and example["audio"].ndim == 1
  assert example["phoneme_starts"].dtype == example["phoneme_ends"].dtype == np.int32
  for key in ("language", "text", "id", "phonemes"):
    assert isinstance(example[key], bytes)
  assert builder.info.metadata["sample_rate_hz"] == espeak_speech.SAMPLE_RATE_HZ == 16000


def test_phoneme_labels_cover_the_audio(builds):
  _, examples, _ = builds
  for split in SPLITS:
    for example in examples[split]:
      n = example["audio"].shape[0]
      phonemes = example["phonemes"].decode().split()
      starts, ends = example["phoneme_starts"], example["phoneme_ends"]
      assert len(phonemes) == len(starts) == len(ends)
      assert len(phonemes) > len(example["text"].split())
      assert np.all(np.diff(starts) >= 0) and 0 <= starts[0] and ends[-1] == n
      np.testing.assert_array_equal(ends[:-1], starts[1:])
      assert not any(p.startswith("(") for p in phonemes)  # Language-switch markers dropped.


def test_audio_is_speech_at_16khz(builds):
  _, examples, _ = builds
  for example in examples["train"]:
    audio = example["audio"].astype(np.float32) / 32768
    seconds = audio.shape[0] / 16000
    words = len(example["text"].split())
    assert 0.15 * words < seconds < 0.8 * words, (seconds, example["text"])
    frames = audio[: audio.shape[0] // 400 * 400].reshape(-1, 400)
    level_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    assert np.mean(level_db > -40) > 0.6  # Mostly sound, not silence.
    assert 0.1 < np.abs(audio).max() < 1.0  # Neither near-silent nor clipped.
    # Pauses ("_:", "_") are much quieter than the rest.
    phonemes = example["phonemes"].decode().split()
    loud = [np.mean(audio[s:e] ** 2) for p, s, e in zip(
        phonemes, example["phoneme_starts"], example["phoneme_ends"], strict=True)
        if not p.startswith("_") and e > s]
    assert 10 * np.log10(np.mean(loud)) > -30


def test_resampled_from_espeak_output(builds):
  builder, examples, _ = builds
  example = examples["test_unseen_speakers"][0]
  _, unseen = builder.builder_config.speakers()
  speaker = unseen[0]
  [(audio, phonemes)] = espeak.synthesize_many([espeak.Request(
      example["text"].decode(), speaker.voice, speaker.rate_wpm, speaker.pitch,
      speaker.pitch_range)])
  assert abs(audio.shape[0] * 16000 / 22050 - example["audio"].shape[0]) <= 2
  assert [p for p, _ in phonemes] == example["phonemes"].decode().split()
  expected = np.round(np.array([s for _, s in phonemes]) * 16000 / 22050)
  np.testing.assert_allclose(example["phoneme_starts"], expected, atol=1)


def test_splits_are_disjoint_where_they_should_be(builds):
  builder, examples, _ = builds
  names = builder.info.features["speaker"].names
  seen, unseen = builder.builder_config.speakers()
  texts = {split: {e["text"] for e in examples[split]} for split in SPLITS}
  speakers = {split: {names[e["speaker"]] for e in examples[split]} for split in SPLITS}
  assert not texts["validation"] & texts["train"]
  assert not texts["test"] & texts["train"]
  assert not texts["validation"] & texts["test"]
  assert texts["test_unseen_speakers"] <= texts["test"]
  for split in ("train", "validation", "test"):
    assert speakers[split] == {s.name for s in seen}
  assert speakers["test_unseen_speakers"] == {s.name for s in unseen}
  ids = [e["id"] for split in SPLITS for e in examples[split]]
  assert len(ids) == len(set(ids))


def test_language_labels_match_speakers(builds):
  builder, examples, _ = builds
  names = builder.info.features["speaker"].names
  german = set(sentences.generate("de", 50, 0))
  for split in SPLITS:
    for example in examples[split]:
      speaker = names[example["speaker"]]
      language = example["language"].decode()
      assert speaker.startswith(language + "+")
      first_word = example["text"].decode().split()[0]
      if language == "de":
        assert example["text"].decode() in german or first_word in ("Der", "Die", "Das")
      else:
        assert first_word not in ("Der", "Die", "Das")


def test_unknown_voice_or_config_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="'xx-yy'"):
    espeak.synthesize("hello", "xx-yy")
  with pytest.raises(ValueError, match="'nope'"):  # espeak itself would ignore it silently.
    espeak.synthesize_many([espeak.Request("hello", "en-us+nope")])
  with pytest.raises(ValueError, match="'klingonese'"):  # Reported by the subprocess.
    espeak.synthesize_many([espeak.Request("hello", "klingonese")])
  with pytest.raises(ValueError, match="rate_wpm"):
    espeak.synthesize("hello", "en-us", rate_wpm=20)
  with pytest.raises(ValueError, match="known: tiny, default, large"):
    espeak_speech.prepare(str(tmp_path), "huge")


def test_language_switch_markers_are_dropped():
  # espeak reads "Team" in German text as English and marks it with "(en)" ... "(de)".
  audio, phonemes = espeak.synthesize("Der Mann trifft das Team.", "de+m1")
  mnemonics = [m for m, _ in phonemes]
  assert "'i:" in mnemonics and not any(m.startswith("(") for m in mnemonics)
  starts = [s for _, s in phonemes]
  assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= audio.shape[0]


def test_sentences_are_deterministic_and_sized():
  for language in sentences.LANGUAGES:
    batch = sentences.generate(language, 300, seed=3)
    assert batch == sentences.generate(language, 300, seed=3)
    assert batch != sentences.generate(language, 300, seed=4)
    assert len(set(batch)) == 300
    assert all(sentences.MIN_WORDS <= sentences.num_words(s) <= sentences.MAX_WORDS
               for s in batch)
  with pytest.raises(ValueError, match="'xx'"):
    sentences.generate("xx", 3, seed=0)
