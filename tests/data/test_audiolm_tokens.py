"""AudioLM's token layout and stage examples, and reading them from token datasets."""

import numpy as np
import pytest

from audiojax.data import audiolm_tokens, pipeline, token_dataset
from configs import audiolm as audiolm_config

LAYOUT = audiolm_tokens.Layout(semantic_vocab=10, codebook_size=16, num_levels=4,
                               coarse_levels=2)


def test_deduplicate():
  np.testing.assert_array_equal(audiolm_tokens.deduplicate([5, 5, 2, 2, 2, 5, 7]), [5, 2, 5, 7])
  assert audiolm_tokens.deduplicate(np.zeros(0, int)).size == 0


def test_flatten_round_trips_with_level_offsets():
  codes = np.random.default_rng(0).integers(0, 16, (7, 4))
  ids = LAYOUT.flatten(codes)
  assert ids.shape == (28,)
  np.testing.assert_array_equal(ids[:4], codes[0] + [10, 26, 42, 58])  # frame by frame
  np.testing.assert_array_equal(LAYOUT.unflatten(ids, 4), codes)
  fine = LAYOUT.flatten(codes[:, 2:], first_level=2)
  np.testing.assert_array_equal(LAYOUT.unflatten(fine, 2, first_level=2), codes[:, 2:])
  with pytest.raises(ValueError, match="range"):
    LAYOUT.unflatten(ids, 4, first_level=1)
  assert (LAYOUT.sep, LAYOUT.pad, LAYOUT.vocab_size) == (74, 75, 76)


def test_stage_examples():
  codes = np.random.default_rng(1).integers(0, 16, (5, 4))
  semantic = np.array([3, 3, 1, 4])
  coarse = LAYOUT.coarse_example(semantic[[0, 2, 3]], codes, seconds=0.1)  # 5 frames, 5 max
  tokens, loss = coarse["tokens"], coarse["loss_mask"]
  assert tokens.shape == (5 + 1 + 5 * 2,)
  np.testing.assert_array_equal(tokens[:6], [LAYOUT.pad, LAYOUT.pad, 3, 1, 4, LAYOUT.sep])
  np.testing.assert_array_equal(tokens[6:], LAYOUT.flatten(codes[:, :2]))
  np.testing.assert_array_equal(loss, [0] * 6 + [1] * 10)

  fine = LAYOUT.fine_example(codes[:3], seconds=0.1)  # 3 of 5 frames: PAD after them
  assert fine["tokens"].shape == (20,)
  np.testing.assert_array_equal(fine["tokens"][:12], np.concatenate(
      [LAYOUT.flatten(codes[:3, :2]), LAYOUT.flatten(codes[:3, 2:], 2)]))
  np.testing.assert_array_equal(fine["tokens"][12:], LAYOUT.pad)
  np.testing.assert_array_equal(fine["loss_mask"], [0] * 6 + [1] * 6 + [0] * 8)

  sem = LAYOUT.semantic_example(np.array([1, 2, 3]), 5)
  np.testing.assert_array_equal(sem["tokens"], [1, 2, 3, LAYOUT.pad, LAYOUT.pad])
  np.testing.assert_array_equal(sem["loss_mask"], [0, 1, 1, 0, 0])


def write_token_datasets(root, num_utterances: int = 6, seed: int = 0):
  """Random semantic (K=8) and acoustic (3 x 16) token datasets of the tiny config's shape."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, 20, num_utterances)
  for split in ("train", "validation"):
    semantic = [rng.integers(0, 8, n) for n in lengths]
    acoustic = [rng.integers(0, 16, (n, 3)) for n in lengths]
    token_dataset.write_split(str(root / "semantic"), split,
                              ({"tokens": t, "index": i} for i, t in enumerate(semantic)),
                              {"kind": "semantic", "fingerprint": "s" * 16, "vocab_size": 8,
                               "levels": 1, "frame_rate_hz": 50.0})
    token_dataset.write_split(str(root / "acoustic"), split,
                              ({"tokens": t, "index": i} for i, t in enumerate(acoustic)),
                              {"kind": "acoustic", "fingerprint": "a" * 16, "vocab_size": 16,
                               "levels": 3, "frame_rate_hz": 50.0})
  return str(root / "semantic"), str(root / "acoustic")


@pytest.mark.parametrize("stage", audiolm_tokens.STAGES)
def test_pipeline_batches_for_every_stage(stage, tmp_path):
  semantic_dir, acoustic_dir = write_token_datasets(tmp_path)
  config = audiolm_config.get_config(f"{stage}_tiny")
  config.data.update(semantic_dir=semantic_dir, acoustic_dir=acoustic_dir)
  layout = audiolm_tokens.layout_of(config.data)
  vocab = audiolm_tokens.stage_vocab(config.data, layout)
  assert vocab.size == config.model.vocab_size == len(layout.stage_ids(stage)) < layout.vocab_size
  length = audiolm_tokens.sequence_length(config.data, layout)
  batch = next(iter(pipeline.train_dataset(config.data, seed=0, process_index=0,
                                           process_count=1)))
  assert batch["tokens"].shape == (2, length) and batch["loss_mask"].shape == (2, length)
  assert batch["tokens"].max() < vocab.size and batch["loss_mask"].sum() > 0
  batches = list(pipeline.eval_batches(config.data, "validation", max_examples=4))
  targets = sum(b["loss_mask"].sum() for b in batches)
  if stage == "fine":  # Every fine token of the 4 utterances is a target exactly once.
    split = token_dataset.open_split(acoustic_dir, "validation")
    assert targets == sum(len(split[i]["tokens"]) for i in range(4))
  assert pipeline.example_batch(config.data, 3)["tokens"].shape == (3, length)


def test_mismatched_token_datasets_are_clear_errors(tmp_path):
  semantic_dir, acoustic_dir = write_token_datasets(tmp_path)
  config = audiolm_config.get_config("coarse_tiny")
  config.data.update(semantic_dir=semantic_dir, acoustic_dir=acoustic_dir)
  config.data.acoustic_fingerprint = "b" * 16
  with pytest.raises(token_dataset.TokenDatasetError, match="re-extract"):
    audiolm_tokens.check_token_datasets(config.data)
  config.data.update(acoustic_fingerprint="", codebook_size=32)
  with pytest.raises(token_dataset.TokenDatasetError, match="codebook_size=32"):
    audiolm_tokens.check_token_datasets(config.data)
  config.data.update(codebook_size=16, semantic_dir="")
  with pytest.raises(ValueError, match="semantic_dir"):
    audiolm_tokens.check_token_datasets(config.data)
  config.data.update(semantic_vocab=0)  # acoustic_only: no semantic tokens needed.
  assert audiolm_tokens.check_token_datasets(config.data).semantic_vocab == 0


def test_stage_ids_and_their_mapping():
  """Each stage's model ids are the global ids its sequences hold, in order; a stage trained
  before `stage_vocab` existed keeps every id."""
  layout = audiolm_tokens.Layout(semantic_vocab=8, codebook_size=16, num_levels=3,
                                 coarse_levels=2)  # 8 + 48 + SEP 56 + PAD 57
  np.testing.assert_array_equal(layout.stage_ids("semantic"), [*range(8), 56, 57])
  np.testing.assert_array_equal(layout.stage_ids("coarse"), [*range(8 + 32), 56, 57])
  np.testing.assert_array_equal(layout.stage_ids("fine"), [*range(8, 56), 57])
  config = audiolm_config.get_config("coarse_tiny")
  vocab = audiolm_tokens.stage_vocab(config.data, layout)
  ids = np.array([[0, 7, 8, 39, 56, 57]])
  np.testing.assert_array_equal(vocab.to_model(ids), [[0, 7, 8, 39, 40, 41]])
  np.testing.assert_array_equal(vocab.to_global(vocab.to_model(ids)), ids)
  np.testing.assert_array_equal(vocab.model_range([[8, 24], [24, 40]]), [[8, 24], [24, 40]])
  with pytest.raises(ValueError, match=r"\[40, 55\] are not in this stage's vocabulary"):
    vocab.to_model([40, 55, 3])  # Level 2 codes: fine only.
  fine = audiolm_tokens.stage_vocab(audiolm_config.get_config("fine_tiny").data, layout)
  np.testing.assert_array_equal(fine.model_range([[40, 56]]), [[32, 48]])
  del config.data.stage_vocab  # A config.json written before stage vocabularies.
  np.testing.assert_array_equal(audiolm_tokens.stage_vocab(config.data, layout).ids,
                                np.arange(58))
