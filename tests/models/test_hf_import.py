"""Hugging Face HuBERT / wav2vec 2.0 weights in `hubert.Model` (`audiojax.models.hf_import`).

The slow tests compare with transformers' PyTorch models (randomly initialised, small) and
are skipped where torch or transformers is not installed (`pip install -e ".[hf]"`).
"""

import json

import flax.linen as nn
import jax
import numpy as np
import pytest

from audiojax import models
from audiojax.models import hf_import

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
HF_CONFIG = dict(model_type="hubert", feat_extract_norm="group", do_stable_layer_norm=False,
                 **SMALL)


def write_config(directory, **changes) -> str:
  config = {k: v for k, v in {**HF_CONFIG, **changes}.items() if v is not None}
  (directory / "config.json").write_text(json.dumps(config))
  return str(directory)


@pytest.mark.parametrize("changes, message", [
    (dict(feat_extract_norm="batch"), "feat_extract_norm='batch' is not supported"),
    (dict(model_type="wav2vec2-conformer"), "model_type='wav2vec2-conformer'"),
    (dict(hidden_act="relu"), "hidden_act='relu'"),
    (dict(conv_dim=(16, 32, 32)), "conv_dim"),
    (dict(hidden_size=None), "config.json lacks 'hidden_size'"),
])
def test_unsupported_configs_name_the_key(tmp_path, changes, message):
  with pytest.raises(ValueError, match=message):
    hf_import.load_hf(write_config(tmp_path, **changes))


def test_a_directory_without_safetensors_is_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match="no model.safetensors"):
    hf_import.load_hf(write_config(tmp_path))
  with pytest.raises(FileNotFoundError, match="no config.json"):
    hf_import.load_hf(str(tmp_path / "missing"))


@pytest.mark.parametrize("g, v", [("weight_g", "weight_v"),
                                  ("parametrizations.weight.original0",
                                   "parametrizations.weight.original1")])
def test_weight_norm_of_either_torch_layout(g, v):
  """torch weight_norm(dim=2), stored by old torch (weight_g / weight_v) or by parametrizations:
  kernel tap k is g[k] * v[..., k] / ||v[..., k]||."""
  rng = np.random.default_rng(0)
  magnitude, direction = rng.standard_normal((1, 1, 5)), rng.standard_normal((4, 2, 5))
  tensors = hf_import._Tensors({"feature_extractor.conv": np.zeros(1),
                                f"pos.{g}": magnitude, f"pos.{v}": direction})
  expected = np.stack([magnitude[0, 0, k] * direction[..., k] / np.linalg.norm(direction[..., k])
                       for k in range(5)], axis=-1)
  np.testing.assert_allclose(tensors.weight_norm("pos"), expected, rtol=1e-5)


def reference_model(directory, kind: str, stable: bool, normalize: bool):
  """A small random transformers model of `kind`, every weight perturbed (HF initialises
  biases to 0 and norms to 1, which would hide mapping errors), saved in `directory`."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  config_class, model_class = {
      "hubert": (transformers.HubertConfig, transformers.HubertModel),
      "wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2ForPreTraining)}[kind]
  torch.manual_seed(0)
  model = model_class(config_class(**SMALL, do_stable_layer_norm=stable, conv_bias=stable,
                                   feat_extract_norm="layer" if stable else "group")).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(directory)
  extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=normalize)
  extractor.save_pretrained(directory)
  encoder = model.wav2vec2 if kind == "wav2vec2" else model

  def run(audio: np.ndarray):
    """HF's hidden states (per layer) and last_hidden_state of one clip, as numpy."""
    values = extractor(audio, sampling_rate=16000, return_tensors="pt").input_values
    with torch.no_grad():
      out = encoder(values, output_hidden_states=True)
    return [h[0].numpy() for h in out.hidden_states], out.last_hidden_state[0].numpy()

  return run


@pytest.mark.slow
@pytest.mark.parametrize("kind, stable, normalize", [
    ("hubert", False, False),  # BASE: group norm, post-norm layers.
    ("hubert", True, True),  # LARGE: layer norms, pre-norm layers, conv biases, normalised.
    ("wav2vec2", False, False),  # Wav2Vec2ForPreTraining: "wav2vec2." prefix, a quantizer.
])
def test_hidden_states_match_transformers(tmp_path, kind, stable, normalize):
  """Every layer's hidden states equal HF's on a 1-s clip, and, batched with it and padded,
  on a shorter clip (the padding hidden, the group norm's statistics over the real audio)."""
  reference = reference_model(tmp_path, kind, stable, normalize)
  rng = np.random.default_rng(0)
  clips = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 11000)]
  model_config, imported = hf_import.load_hf(str(tmp_path))
  model = models.get_model(model_config)
  audio = np.zeros((2, 16000), np.float32)
  mask = np.zeros_like(audio)
  for i, clip in enumerate(clips):
    audio[i, :clip.size], mask[i, :clip.size] = clip, 1.0
  params = nn.meta.unbox(model.init(jax.random.key(0), audio[:1])["params"])
  params = hf_import.overlay(params, imported)  # + the head HF lacks.
  ours = model.apply({"params": params}, audio, mask)["hidden"]  # L + 1 of [2, 800, 32]
  ours_unmasked = model.apply({"params": params}, audio[:1])["hidden"]
  layer_l = model.apply({"params": params}, audio, model.num_layers, mask, method="features")
  for i, clip in enumerate(clips):
    hidden, last = reference(clip)
    frames = last.shape[0]  # floor((samples - 40) / 20) + 1: 799 and 549.
    expected = [*hidden[:-1], last]
    if stable and not np.allclose(hidden[-1], last):  # transformers 5: before the final norm.
      np.testing.assert_allclose(layer_l[i, :frames], hidden[-1], atol=1e-4)
    for layer, (a, b) in enumerate(zip(ours, expected, strict=True)):
      diff = np.abs(a[i, :frames] - b).max()
      print(f"{kind} stable={stable} clip {i} layer {layer}: max |diff| {diff:.2e}")
      assert diff < 1e-4, (layer, diff)
      if i == 0:
        np.testing.assert_allclose(ours_unmasked[layer][0, :frames], b, atol=1e-4)


@pytest.mark.slow
def test_import_cli_writes_a_loadable_encoder(tmp_path):
  """launch.import_hf's workdir loads with `semantic.load_encoder`, and `layer_features` (the
  path of fit_kmeans and extract_tokens) gives HF's hidden states."""
  from audiojax.sample import semantic
  from launch import import_hf

  reference = reference_model(tmp_path / "hf", "hubert", False, False)
  import_hf.import_to_workdir(str(tmp_path / "hf"), str(tmp_path / "run"))
  config, model, variables = semantic.load_encoder(str(tmp_path / "run"))
  assert config.model.position == "conv" and model.num_layers == 2
  clip = 0.1 * np.random.default_rng(1).standard_normal(9000).astype(np.float32)
  hidden, _ = reference(clip)
  features = semantic.layer_features(model, variables, [clip], layer=1)[0]
  assert features.shape == (450, 32)  # ceil(9000 / 20) frames; HF's 449 are the real ones.
  np.testing.assert_allclose(features[:hidden[1].shape[0]], hidden[1], atol=1e-4)
  with pytest.raises(ValueError, match="holds checkpoints already"):
    import_hf.import_to_workdir(str(tmp_path / "hf"), str(tmp_path / "run"))
