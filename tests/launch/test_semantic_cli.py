"""Semantic tokens end to end on the tiny corpus: MFCC targets -> HuBERT training -> k-means of
a layer -> token dataset, and the errors along the way."""

import json
import os

import numpy as np
import pytest

from audiojax.data import token_dataset
from audiojax.models import hubert, kmeans
from audiojax.train import tasks
from configs import semantic as semantic_config
from tests.launch.test_cli import run


def test_training_logs_masked_prediction(semantic_run):
  root, workdir = semantic_run
  targets = os.path.join(root, "mfcc_k8.npz")
  assert kmeans.load_metadata(targets)["features"] == "mfcc"
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["model"]["target_kmeans"] == targets
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]


def test_layer_kmeans_and_token_dataset(semantic_run, espeak_tiny_dir, tmp_path):
  root, workdir = semantic_run
  path = os.path.join(workdir, "kmeans_layer1_k6.npz")  # launch.fit_kmeans --layer=1
  metadata = kmeans.load_metadata(path)
  assert metadata["features"] == "hubert" and metadata["layer"] == 1
  out = str(tmp_path / "tokens")
  proc = run("launch.extract_tokens", f"--kmeans={path}", "--dataset=espeak_speech/tiny",
             f"--data_dir={espeak_tiny_dir}", "--splits=train,test", f"--output={out}")
  info = token_dataset.read_info(out)
  assert info["kind"] == "semantic" and info["vocab_size"] == 6 and info["levels"] == 1
  assert info["frame_rate_hz"] == 50.0 and set(info["splits"]) == {"train", "test"}
  assert info["fingerprint"] in proc.stdout

  # The file holds what the tokenizer gives now (deterministic), utterance by utterance.
  from audiojax.data import pipeline
  from audiojax.sample import semantic

  tokenizer = semantic.load_tokenizer(path)
  assert tokenizer.fingerprint == info["fingerprint"]
  data = pipeline.dataset_config("espeak_speech/tiny", espeak_tiny_dir)
  audio = [u["audio"] for u in pipeline.utterances(data, "test", process_index=0,
                                                   process_count=1)]
  split = token_dataset.open_split(out, "test", fingerprint=tokenizer.fingerprint)
  assert len(split) == len(audio)
  for i, tokens in enumerate(tokenizer.tokens(audio)):
    record = split[i]
    assert record["index"] == i and record["tokens"].shape == (-(-len(audio[i]) // 320), 1)
    np.testing.assert_array_equal(record["tokens"][:, 0], tokens)

  with pytest.raises(token_dataset.TokenDatasetError, match="re-extract"):
    token_dataset.open_split(out, "test", fingerprint="0123456789abcdef")
  # A k-means fitted on other weights than the workdir's is refused.
  metadata["encoder_fingerprint"] = "0" * 16
  kmeans.save(str(tmp_path / "stale.npz"), kmeans.load(path), **metadata)
  with pytest.raises(ValueError, match="refit"):
    semantic.load_tokenizer(str(tmp_path / "stale.npz"))


def test_missing_or_mismatched_targets_are_clear_errors(tmp_path):
  config = semantic_config.get_config("tiny").model
  model = hubert.Model(**{k: tuple(v) if isinstance(v, list) else v
                          for k, v in config.to_dict().items() if k != "name"})
  with pytest.raises(ValueError, match="launch.fit_kmeans --features=mfcc"):
    tasks.hubert_load_targets(model)
  path = str(tmp_path / "k5.npz")
  kmeans.save(path, kmeans.KMeans(np.zeros((5, 39), np.float32), np.zeros(39, np.float32),
                                  np.ones(39, np.float32)))
  with pytest.raises(ValueError, match="num_targets=8"):
    tasks.hubert_load_targets(model.clone(target_kmeans=path))


def test_w2v_bert_trains_from_the_cli_and_its_layers_tokenize(espeak_tiny_dir, tmp_path):
  """The w2v-BERT objective needs no target k-means: train, then fit k-means on a layer."""
  workdir = str(tmp_path / "w2v_bert")
  proc = run("launch.train", "--config=configs/semantic.py:w2v_bert_tiny", f"--workdir={workdir}",
             f"--config.data.data_dir={espeak_tiny_dir}")
  assert "step 4: validation loss" in proc.stdout
  assert "4" in os.listdir(os.path.join(workdir, "checkpoints"))
  run("launch.fit_kmeans", f"--workdir={workdir}", "--layer=2", "--num_clusters=4", "--steps=3")
  assert kmeans.load_metadata(os.path.join(workdir, "kmeans_layer2_k4.npz"))["layer"] == 2
