"""The phone recognizer as an instrument: PER, greedy decoding, confidence, loading a run."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.eval import phone_recognizer as pr


def test_phone_error_rate_counts_substitutions_insertions_and_deletions():
  ref = ["D", "@", "k", "a", "t"]
  assert pr.phone_error_rate([ref], [ref]) == 0.0
  assert pr.phone_error_rate([ref], [["D", "@", "k", "I", "t"]]) == pytest.approx(1 / 5)
  assert pr.phone_error_rate([ref], [["D", "@", "k", "k", "a", "t"]]) == pytest.approx(1 / 5)
  assert pr.phone_error_rate([ref], [["D", "k", "a", "t"]]) == pytest.approx(1 / 5)
  assert pr.phone_error_rate([ref], [[]]) == 1.0
  assert pr.phone_error_rate([ref], [["x"] * 7]) == pytest.approx(7 / 5)  # 5 subs + 2 ins.
  # kitten -> sitting: 2 substitutions and 1 insertion; totals over utterances.
  assert pr.edit_distance("kitten", "sitting") == 3
  assert pr.phone_error_rate([list("kitten"), ref], [list("sitting"), ref]) == pytest.approx(
      3 / 11)
  assert pr.edit_distance([], ["a", "b"]) == 2
  with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
    pr.phone_error_rate([ref, ref], [ref])
  with pytest.raises(ValueError, match="no phones"):
    pr.phone_error_rate([[]], [["a"]])


def test_greedy_decoding_collapses_repeats_and_drops_blanks():
  frames = [0, 3, 3, 0, 0, 3, 1, 1, 2, 0, 2, 2]  # _ c c _ _ c a a b _ b b
  log_posteriors = np.log(np.full((len(frames), 4), 0.1))
  log_posteriors[np.arange(len(frames)), frames] = np.log(0.7)
  np.testing.assert_array_equal(pr.greedy_decode(log_posteriors), [3, 3, 1, 2, 2])
  assert pr.greedy_decode(np.zeros((0, 4))).size == 0
  recognizer = pr.Recognizer(16000, ("a", "b", "c"))
  recognizer.log_posteriors = lambda audio: log_posteriors
  assert recognizer.transcribe(np.zeros(100)) == ["c", "c", "a", "b", "b"]


def test_confidence_is_the_mean_winning_phone_posterior():
  probs = np.array([[0.9, 0.05, 0.05],   # blank wins: not counted
                    [0.2, 0.7, 0.1],     # phone 1 wins at 0.7
                    [0.1, 0.0, 0.9]])    # phone 2 wins at 0.9
  with np.errstate(divide="ignore"):
    assert pr.confidence(np.log(probs)) == pytest.approx(0.8)
    assert pr.confidence(np.log(probs[:1])) == 0.0  # Blank everywhere (silence).
  assert pr.confidence(np.zeros((0, 3))) == 0.0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, espeak_tiny_dir):
  from audiojax.train import trainer
  from configs import phone_recognizer as recognizer_config

  config = recognizer_config.get_config("tiny")
  config.data.data_dir = espeak_tiny_dir
  workdir = str(tmp_path_factory.mktemp("phone_recognizer") / "run")
  trainer.train_and_evaluate(config, workdir)
  return workdir


@pytest.mark.slow  # ~17 s on 2 busy cores: trains the tiny run (3 compiles), then loads it.
def test_load_gives_a_recognizer_of_the_run(tiny_run):
  recognizer = pr.load(tiny_run)
  assert sorted(os.listdir(os.path.join(tiny_run, "checkpoints"))) == ["2", "4"]
  assert recognizer.sample_rate_hz == 16000
  assert len(recognizer.inventory) == recognizer.model.num_phonemes > 20
  assert "_" not in recognizer.inventory
  rng = np.random.default_rng(0)
  for samples, frames in ((5000, 16), (9000, 29), (20000, 63)):  # ceil(samples / 320)
    audio = (0.1 * rng.standard_normal(samples)).astype(np.float32)
    log_posteriors = recognizer.log_posteriors(audio)
    assert log_posteriors.shape == (frames, len(recognizer.inventory) + 1)
    assert log_posteriors.dtype == np.float32
    np.testing.assert_allclose(np.exp(log_posteriors).sum(-1), 1.0, rtol=1e-4)
    phones = recognizer.transcribe(audio)
    assert isinstance(phones, list) and set(phones) <= set(recognizer.inventory)
    assert len(phones) <= frames
    assert 0.0 <= pr.confidence(log_posteriors) <= 1.0
  assert recognizer._forward._cache_size() == 2  # Buckets of 1 s: 5000 and 9000 share one.
  empty = recognizer.log_posteriors(np.zeros(0, np.float32))
  assert empty.shape == (0, len(recognizer.inventory) + 1)
  with pytest.raises(ValueError, match="mono"):
    recognizer.log_posteriors(np.zeros((2, 100), np.float32))


def test_load_refuses_other_runs(tmp_path, espeak_tiny_dir):
  from audiojax.train import checkpoint
  from configs import wavenet as wavenet_config

  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    pr.load(str(tmp_path / "empty"))
  config = wavenet_config.get_config("tiny")
  workdir = str(tmp_path / "wavenet")
  manager = checkpoint.make_manager(workdir, async_save=False)
  checkpoint.save(manager, 1, {"params": jnp.zeros(3)}, {}, checkpoint.make_meta(config))
  manager.wait_until_finished()
  with pytest.raises(ValueError, match="holds a wavenet model, not a phone recognizer"):
    pr.load(workdir)
