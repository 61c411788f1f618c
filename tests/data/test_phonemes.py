"""Text-to-speech linguistic features: each frame describes the phoneme under its centre."""

import numpy as np
import pytest

from audiojax.data import phonemes, pipeline, pitch

INVENTORY = ("D", "I", "_:", "s")
MNEMONICS = ["_:", "D", "'I", "s", ",I"]
STARTS = np.array([0, 40, 70, 130, 150])
ENDS = np.array([40, 70, 130, 150, 200])


def decode(features: np.ndarray) -> list[tuple]:
  """Rows -> (previous id, current id, next id, stress, position, duration)."""
  width = 9  # num_phonemes=8 in these tests: ids 0 (none) to 8.
  out = []
  for row in features:
    prev, cur, nxt = (int(np.argmax(row[k * width:(k + 1) * width])) for k in range(3))
    stress = row[3 * width:3 * width + 3]
    out.append((prev, cur, nxt, int(np.argmax(stress)) if stress.any() else None,
                float(row[-2]), float(row[-1])))
  return out


def test_split_stress_and_inventory():
  assert phonemes.split_stress("'aI") == ("aI", 1)
  assert phonemes.split_stress(",I") == ("I", 2)
  assert phonemes.split_stress("_:") == ("_:", 0) and phonemes.split_stress("'") == ("'", 0)
  assert phonemes.inventory(["_: D 'I s", ",I D"]) == INVENTORY


def test_frames_describe_the_phoneme_under_their_centre():
  hop, rate = 20, 1000
  features = phonemes.frame_features(MNEMONICS, STARTS, ENDS, 200, hop, INVENTORY, 8, rate)
  assert features.shape == (10, phonemes.num_features(8))
  ids = {"_:": 3, "D": 1, "I": 2, "s": 4}  # 1 + position in the sorted inventory.
  rows = decode(features)
  for k, (prev, cur, nxt, stress, position, duration) in enumerate(rows):
    centre = k * hop + hop // 2
    j = int(np.searchsorted(STARTS, centre, side="right") - 1)
    base = [phonemes.split_stress(m)[0] for m in MNEMONICS]
    assert cur == ids[base[j]]
    assert prev == (ids[base[j - 1]] if j > 0 else 0)
    assert nxt == (ids[base[j + 1]] if j + 1 < len(base) else 0)
    assert stress == phonemes.split_stress(MNEMONICS[j])[1]
    assert position == pytest.approx((centre - STARTS[j]) / (ENDS[j] - STARTS[j]))
    assert duration == pytest.approx((ENDS[j] - STARTS[j]) / rate)
  # Frame 3 (centre 70) is the first of "'I": primary stress, position 0, 60 ms.
  assert rows[3] == (1, 2, 4, 1, 0.0, pytest.approx(0.06))


def test_frames_before_the_first_phoneme_are_empty_and_errors_are_clear():
  features = phonemes.frame_features(["s"], np.array([30]), np.array([60]), 60, 10,
                                     INVENTORY, 8, 1000)
  rows = decode(features)
  assert rows[:3] == [(0, 0, 0, None, 0.0, 0.0)] * 3  # Id 0: no phoneme.
  assert rows[3] == (0, 4, 0, 0, pytest.approx(5 / 30), pytest.approx(0.03))
  with pytest.raises(ValueError, match=r"\['x'\] are not in the model's inventory"):
    phonemes.frame_features(["x", "s"], STARTS[:2], ENDS[:2], 70, 10, INVENTORY, 8, 1000)
  with pytest.raises(ValueError, match="raise data.num_phonemes"):
    phonemes.frame_features(MNEMONICS, STARTS, ENDS, 200, 10, INVENTORY, 3, 1000)


def test_random_crop_starts_on_a_frame_and_brings_its_frames():
  hop, crop = 16, 64
  audio = np.arange(1000, dtype=np.float32)
  condition = np.arange(-(-1000 // hop), dtype=np.float32)[:, None]  # Frame k holds k.
  rng = np.random.default_rng(0)
  for _ in range(20):
    cropped = pipeline.random_crop(audio, crop, rng, condition, hop)
    start = int(cropped["audio"][0])
    assert start % hop == 0
    np.testing.assert_array_equal(cropped["condition"][:, 0], start // hop + np.arange(4))
  short = pipeline.random_crop(audio[:40], crop, rng, condition[:3], hop)
  np.testing.assert_array_equal(short["mask"], np.arange(crop) < 40)
  np.testing.assert_array_equal(short["condition"][:, 0], [0, 1, 2, 0])


def test_corpus_batches_bring_the_features_of_their_audio(espeak_tiny_dir):
  """Eval crops of an utterance carry consecutive rows of its features; train batches too."""
  from configs import wavenet as wavenet_config

  config = wavenet_config.get_config("tts_tiny")
  config.data.data_dir = espeak_tiny_dir
  config.data.phonemes = " ".join(pipeline.phoneme_inventory(config.data))
  data = config.data
  example = next(pipeline.utterances(data, "validation", max_examples=1))
  expected = pipeline.condition_fn(data)(example)
  frames = expected.shape[0]
  # The phoneme features, then the audio's excitation (hop x channels per frame).
  channels = config.model.condition_channels + data.condition_hop * data.excitation_channels
  assert expected.shape[1] == channels
  assert (expected[:, :3 * (data.num_phonemes + 1)].sum(axis=1) == 3).all()  # Inside speech.
  np.testing.assert_array_equal(
      expected[:, config.model.condition_channels:],
      pitch.excitation_frames(example["audio"], data.sample_rate_hz, data.condition_hop))
  crops = -(-example["audio"].shape[0] // data.crop_samples)
  rows = []
  for batch in pipeline.eval_batches(data, "validation", max_examples=1, batch_size=2):
    rows += [r for r, m in zip(batch["condition"], batch["mask"], strict=True) if m.any()]
  got = np.concatenate(rows[:crops])
  np.testing.assert_array_equal(got[:frames], expected)
  assert not got[frames:].any()
  batch = next(iter(pipeline.train_dataset(data, seed=0, process_index=0, process_count=1)))
  assert batch["condition"].shape == (data.batch_size, data.crop_samples // data.condition_hop,
                                      channels)
  assert set(pipeline.example_batch(data)) == set(batch)


def test_audio_without_phoneme_labels_is_a_clear_error(audio_folder):
  config = pipeline.dataset_config(f"folder:{audio_folder}")
  config.update(condition="phonemes", phonemes="a b", num_phonemes=4, condition_hop=16,
                crop_samples=64, batch_size=2, train_split="train")
  with pytest.raises(ValueError, match="needs phoneme labels"):
    next(iter(pipeline.train_dataset(config, seed=0, process_index=0, process_count=1)))


def test_espeak_phonemes_merge_pauses_and_drop_stress():
  record = {"phonemes": b"'a _: ,b t _", "phoneme_starts": np.array([0, 5, 9, 12, 20]),
            "phoneme_ends": np.array([5, 9, 12, 20, 30])}
  assert phonemes.espeak_phonemes(record) == [("a", 0, 5), ("_", 5, 9), ("b", 9, 12),
                                              ("t", 12, 20), ("_", 20, 30)]
  assert phonemes.espeak_phonemes(record, strip_stress=False)[0] == ("'a", 0, 5)
