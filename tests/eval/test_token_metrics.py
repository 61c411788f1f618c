"""Token metrics: frame labels, purities and PNMI on known tables, the speaker probe."""

import math

import numpy as np
import pytest

from audiojax.eval import token_metrics as tm


def test_pnmi_is_one_for_a_relabelling_and_zero_for_random_tokens():
  rng = np.random.default_rng(0)
  labels = [rng.integers(0, 12, 500) for _ in range(20)]
  permutation = rng.permutation(40)  # A bijection into a larger vocabulary.
  relabelled = tm.phone_metrics(labels, [permutation[y] for y in labels], 40)
  assert relabelled["pnmi"] == pytest.approx(1.0, abs=1e-9)
  assert relabelled["phone_purity"] == pytest.approx(1.0)
  assert relabelled["cluster_purity"] == pytest.approx(1.0)
  assert relabelled["frames"] == 20 * 500
  random = tm.phone_metrics(labels, [rng.integers(0, 40, 500) for _ in labels], 40)
  assert 0 <= random["pnmi"] < 0.02, random
  assert random["phone_purity"] < 0.2 and random["cluster_purity"] < 0.2


def test_purities_and_pnmi_of_hand_computed_tables():
  # p(y, z) = [[1/2, 0], [1/4, 1/4]]: H(y) = 1 bit, H(z) = 2 - 3/4 log2 3, H(y, z) = 1.5.
  counts = np.array([[2.0, 0.0], [1.0, 1.0]])
  assert tm.phone_purity(counts) == pytest.approx(3 / 4)  # (2 + 1) / 4
  assert tm.cluster_purity(counts) == pytest.approx(3 / 4)  # (2 + 1) / 4
  assert tm.pnmi(counts) == pytest.approx(1.5 - 0.75 * math.log2(3))
  counts = np.array([[3.0, 1.0], [0.0, 2.0], [1.0, 3.0]])
  assert tm.phone_purity(counts) == pytest.approx(6 / 10)  # max over y per token: 3 + 3
  assert tm.cluster_purity(counts) == pytest.approx(8 / 10)  # max over z per phone: 3 + 2 + 3
  assert tm.pnmi(np.array([[5.0, 5.0], [5.0, 5.0]])) == pytest.approx(0.0, abs=1e-12)
  np.testing.assert_array_equal(
      tm.joint_counts([np.array([0, 0, 1]), np.array([2])], [np.array([1, 1, 0]), np.array([1])],
                      3, 2),
      [[0, 2], [1, 0], [0, 1]])


def test_multi_level_tokens_average_the_levels():
  rng = np.random.default_rng(1)
  labels = [rng.integers(0, 8, 2000)]
  tokens = [np.stack([labels[0], rng.integers(0, 8, 2000)], axis=1)]  # exact, then random
  assert tm.phone_metrics(labels, tokens, 8)["pnmi"] == pytest.approx(0.5, abs=0.01)


def test_frame_labels_of_a_synthetic_alignment():
  # 50 Hz at 16 kHz: 320-sample frames centred on 160, 480, 800, 1120.
  phonemes = [("a", 0, 480), ("b", 480, 800)]
  assert tm.frame_phoneme_labels(phonemes, 1000, 50, 16000) == ["a", "b", "_", "_"]
  assert tm.num_frames(960, 50, 16000) == 3 and tm.num_frames(961, 50, 16000) == 4
  # 25 Hz: 640-sample frames centred on 320 and 960.
  assert tm.frame_phoneme_labels([("x", 100, 400), ("y", 400, 1280)], 1280, 25, 16000) == [
      "x", "y"]


def test_speaker_probe_finds_speakers_only_where_tokens_encode_them():
  rng = np.random.default_rng(2)
  speakers = np.repeat(np.arange(4), 60)
  is_train = np.tile(np.arange(60) < 30, 4)

  def utterance(speaker, informative):
    if informative:  # Each speaker favours its own 5 of the 20 tokens.
      own = rng.integers(5 * speaker, 5 * speaker + 5, 40)
      return np.where(rng.random(40) < 0.3, own, rng.integers(0, 20, 40))
    return rng.integers(0, 20, 40)

  encoded = tm.speaker_probe([utterance(s, True) for s in speakers], speakers, is_train, 20)
  random = tm.speaker_probe([utterance(s, False) for s in speakers], speakers, is_train, 20)
  assert encoded["chance"] == random["chance"] == 0.25
  assert encoded["accuracy"] > 0.9, encoded
  assert random["accuracy"] < 0.45, random


def test_histograms_put_levels_side_by_side():
  h = tm.token_histograms([np.array([[0, 2], [1, 2]]), np.array([[2, 0]])], 3)
  np.testing.assert_allclose(h, [[0.5, 0.5, 0, 0, 0, 1], [0, 0, 1, 1, 0, 0]])
