import itertools
import logging
import os

import ml_collections
import numpy as np
import pytest

from audiojax.data import audio_io, pipeline
from tests.conftest import write_tone


def data_config(name: str, **overrides) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(dict(
      name=name, data_dir="", sample_rate_hz=16000, crop_samples=400, batch_size=4,
      train_split="all", eval_split="all", test_split="all", skip_bad_files=False,
      num_threads=2))
  config.update(overrides)
  return config


def take(dataset_or_iter, n):
  return [b for b in itertools.islice(dataset_or_iter, n)]


def levels(batch) -> set[int]:
  """Which files a batch came from (constant level (k + 1) / 64 identifies file k)."""
  return {int(round(row[0] * 64)) - 1 for row in batch["audio"]}


def test_batches_have_shapes_and_speakers(audio_folder):
  batch = next(iter(pipeline.train_dataset(data_config(f"folder:{audio_folder}"), seed=0,
                                           process_index=0, process_count=1)))
  assert batch["audio"].shape == (4, 400) and batch["audio"].dtype == np.float32
  assert batch["mask"].shape == (4, 400) and batch["mask"].min() == 1.0
  assert batch["speaker"].shape == (4,)
  for row, speaker in zip(batch["audio"], batch["speaker"], strict=True):
    assert (int(round(row[0] * 64)) - 1) % 3 == speaker  # speaker = folder spk{k % 3}


def test_reference_audio_is_another_utterance_of_the_same_speaker(audio_folder):
  """Voice cloning: each row's reference comes from another file of its speaker's folder;
  evaluation uses the utterance itself; a TFDS-style source without labels is refused."""
  config = data_config(f"folder:{audio_folder}", reference_samples=1000)
  dataset = pipeline.train_dataset(config, seed=0, process_index=0, process_count=1)
  for batch in take(dataset, 5):
    assert batch["reference"].shape == (4, 1000)
    for row, reference in zip(batch["audio"], batch["reference"], strict=True):
      file, other = int(round(row[0] * 64)) - 1, int(round(reference[0] * 64)) - 1
      assert other != file and other % 3 == file % 3
      assert np.all(reference == reference[0])  # One file: constant level.
  batch = next(pipeline.eval_batches(config, "all", max_examples=2, batch_size=2))
  np.testing.assert_allclose(batch["reference"][:, 0], batch["audio"][:, 0])
  source = pipeline.get_source(config, "all")
  source.speaker_of = None
  with pytest.raises(ValueError, match="needs speaker labels"):
    pipeline._records_by_speaker(source, range(len(source)))


def test_reference_window_repeats_short_audio():
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(pipeline.reference_window(np.arange(3.0), 7), [0, 1, 2, 0, 1, 2, 0])
  window = pipeline.reference_window(np.arange(100.0), 10, rng)
  np.testing.assert_array_equal(window, window[0] + np.arange(10))
  assert not pipeline.reference_window(np.zeros(0), 4).any()


def test_same_seed_same_stream_other_seed_differs(audio_folder):
  config = data_config(f"folder:{audio_folder}")
  run = lambda seed: take(pipeline.train_dataset(config, seed=seed, process_index=0,
                                                 process_count=1), 6)
  a, b, c = run(0), run(0), run(1)
  for x, y in zip(a, b, strict=True):
    np.testing.assert_array_equal(x["audio"], y["audio"])
  assert any(not np.array_equal(x["audio"], z["audio"]) for x, z in zip(a, c, strict=True))


def test_iterator_state_resumes_the_exact_stream(audio_folder):
  config = data_config(f"folder:{audio_folder}")
  make = lambda: iter(pipeline.train_dataset(config, seed=3, process_index=0, process_count=1))
  it = make()
  take(it, 5)
  state = it.get_state()
  expected = take(it, 7)
  resumed = make()
  resumed.set_state(state)
  for x, y in zip(expected, take(resumed, 7), strict=True):
    np.testing.assert_array_equal(x["audio"], y["audio"])
    np.testing.assert_array_equal(x["speaker"], y["speaker"])


def test_hosts_read_disjoint_records(audio_folder):
  config = data_config(f"folder:{audio_folder}", batch_size=4)
  seen = []
  for index in range(2):
    batches = take(pipeline.train_dataset(config, seed=0, process_index=index,
                                          process_count=2), 6)
    assert batches[0]["audio"].shape == (2, 400)  # per-host share of the global batch
    seen.append(set().union(*(levels(b) for b in batches)))
  assert seen[0] and seen[1] and not seen[0] & seen[1]
  assert seen[0] | seen[1] == set(range(12))


def test_short_audio_is_padded_and_masked(tmp_path):
  write_tone(str(tmp_path / "a.wav"), 0.01, 16000, 0.5)  # 160 samples < crop 400
  batch = next(iter(pipeline.train_dataset(data_config(f"folder:{tmp_path}", batch_size=1),
                                           seed=0, process_index=0, process_count=1)))
  assert batch["mask"][0, :160].min() == 1.0 and batch["mask"][0, 160:].max() == 0.0
  assert np.all(batch["audio"][0, 160:] == 0.0)


def test_other_sample_rates_are_resampled_and_logged(tmp_path, caplog):
  write_tone(str(tmp_path / "a.wav"), 0.5, 8000, 0.25)
  with caplog.at_level(logging.INFO):
    audio = audio_io.load_audio(str(tmp_path / "a.wav"), 16000)
  assert abs(audio.shape[0] - 8000) <= 2  # 0.5 s at 16 kHz
  assert abs(float(np.median(audio)) - 0.25) < 0.01
  assert "8000 Hz -> 16000 Hz" in caplog.text


def test_eval_batches_cover_every_sample_once(audio_folder):
  config = data_config(f"folder:{audio_folder}", crop_samples=7000, batch_size=4)
  batches = list(pipeline.eval_batches(config, "all", process_index=0, process_count=1))
  assert all(b["audio"].shape == (4, 7000) for b in batches)
  # 12 files x 16000 samples, in crops of 7000 (7000 + 7000 + 2000 per file).
  assert sum(float(b["mask"].sum()) for b in batches) == 12 * 16000
  assert len(batches) == 9


@pytest.mark.parametrize("content,match", [
    (b"", "empty|cannot decode"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(40), "cannot decode"),
])
def test_bad_files_raise_an_error_naming_the_file(tmp_path, content, match):
  bad = tmp_path / "bad.wav"
  bad.write_bytes(content)
  with pytest.raises(audio_io.AudioError, match=match) as err:
    audio_io.load_audio(str(bad), 16000)
  assert str(bad) in str(err.value)


def test_zero_sample_file_is_empty_error(tmp_path):
  write_tone(str(tmp_path / "silent.wav"), 0.0, 16000, 0.0)
  with pytest.raises(audio_io.AudioError, match="empty"):
    audio_io.load_audio(str(tmp_path / "silent.wav"), 16000)


def test_bad_file_in_a_dataset_names_it_unless_skipped(audio_folder):
  bad = os.path.join(audio_folder, "spk0", "broken.wav")
  with open(bad, "wb") as f:
    f.write(b"not audio at all" * 10)
  config = data_config(f"folder:{audio_folder}")
  with pytest.raises(audio_io.AudioError, match="broken.wav.*skip_bad_files"):
    take(pipeline.train_dataset(config, seed=0, process_index=0, process_count=1), 10)
  counter = pipeline.BadExampleCounter()
  config.skip_bad_files = True
  batches = take(pipeline.train_dataset(config, seed=0, process_index=0, process_count=1,
                                        counter=counter), 10)
  assert len(batches) == 10 and counter.count >= 1


def test_unknown_dataset_and_empty_folder_errors(tmp_path):
  with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
    pipeline.get_source(data_config("mnist"), "train")
  with pytest.raises(ValueError, match="no audio files"):
    pipeline.get_source(data_config(f"folder:{tmp_path}"), "train")


@pytest.mark.parametrize("name,split,native_hz", [
    ("ljspeech", "train", 22050),
    ("librispeech", "train_clean100", 16000),
    ("vctk", "train", 48000),
])
def test_tfds_datasets_with_mock_data(name, split, native_hz):
  tfds = pytest.importorskip("tensorflow_datasets")
  pytest.importorskip("tensorflow")
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    config = data_config(f"tfds:{name}", crop_samples=32, batch_size=2, train_split=split)
    source = pipeline.get_source(config, split)
    raw = source.records[0]
    example = source.decode(raw)
    audio_key = "speech"
    expected_len = round(len(raw[audio_key]) * 16000 / native_hz)
    assert abs(example["audio"].shape[0] - expected_len) <= 1
    batch = next(iter(pipeline.train_dataset(config, seed=0, process_index=0,
                                             process_count=1)))
    assert batch["audio"].shape == (2, 32)



def test_mixture_draws_by_weight_and_offsets_speakers(audio_folder, tmp_path):
  """`A+B`: speaker ids of B follow A's; training draws in the `mix_weights` proportions (a
  zero weight never draws that part); evaluation reads A's split then B's (`max_examples`:
  of each)."""
  other = tmp_path / "other"
  for k in range(4):  # File index 39 + k (A's are 0 ... 11), speakers spk0, spk1.
    write_tone(str(other / f"spk{k % 2}" / f"u{k}.wav"), 1.0, 16000, (40 + k) / 64)
  name = f"folder:{audio_folder}+folder:{other}"
  source = pipeline.get_source(data_config(name), "all")
  assert (len(source), source.num_speakers, source.part_sizes) == (16, 5, (12, 4))
  assert [source.speaker_of(r) for r in source.records[-4:]] == [3, 3, 4, 4]  # Sorted paths.

  def share_of_b(weights, num_batches=40):
    dataset = pipeline.train_dataset(data_config(name, mix_weights=weights), seed=0,
                                     process_index=0, process_count=1)
    from_b = []
    for batch in take(dataset, num_batches):
      for row, speaker in zip(batch["audio"], batch["speaker"], strict=True):
        file = int(round(row[0] * 64)) - 1
        assert speaker == (3 + (file - 39) % 2 if file >= 39 else file % 3)
        from_b.append(file >= 39)
    return np.mean(from_b)

  assert 0.65 < share_of_b((1, 3)) < 0.85  # 160 rows, 75% expected.
  assert share_of_b((1, 0)) == 0.0
  assert 0.15 < share_of_b(None) < 0.35  # By size: 4 of 16.
  with pytest.raises(ValueError, match="mix_weights"):
    share_of_b((1, 2, 3))
  files = [int(round(b["audio"][0, 0] * 64)) - 1 for b in pipeline.eval_batches(
      data_config(name, crop_samples=16000), "all", batch_size=1)]
  assert sorted(files[:12]) == list(range(12)) and files[12:] == [39, 41, 40, 42]
  files = [int(round(b["audio"][0, 0] * 64)) - 1 for b in pipeline.eval_batches(
      data_config(name, crop_samples=16000), "all", max_examples=2, batch_size=1)]
  assert files[2:] == [39, 41] and len(files) == 4  # The first 2 of each part.


def test_is_music_by_name():
  assert pipeline.is_music("music21_audio")
  assert pipeline.is_music("espeak_speech+music21_audio")
  assert not pipeline.is_music("espeak_speech")
  assert not pipeline.is_music("tfds:librispeech")


def test_lead_in_windows_start_before_the_audio_with_silence_masked():
  """data.lead_in_samples: starts range over [-lead_in, n - crop]; what lies before the audio
  is silence with mask 0, and a window wholly before it is all padding."""
  audio = np.arange(1, 11, dtype=np.float32)
  before = pipeline.crop_at(audio, -3, 6)
  np.testing.assert_array_equal(before["audio"], [0, 0, 0, 1, 2, 3])
  np.testing.assert_array_equal(before["mask"], [0, 0, 0, 1, 1, 1])
  assert not pipeline.crop_at(audio, -8, 6)["mask"].any()
  rng = np.random.default_rng(0)
  firsts = {int(np.argmax(pipeline.random_crop(audio, 6, rng, lead_in_samples=5)["mask"]))
            for _ in range(300)}
  assert firsts == {0, 1, 2, 3, 4, 5}  # 5 samples of lead-in at most; or none (start >= 0).
  with pytest.raises(ValueError, match="lead_in_samples"):
    pipeline.random_crop(audio, 6, rng, condition=np.zeros((10, 1)), lead_in_samples=5)
