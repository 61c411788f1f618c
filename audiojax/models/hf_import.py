"""Pretrained HuBERT / wav2vec 2.0 weights from a local Hugging Face model directory.

  model_config, params = hf_import.load_hf("checkpoints/hubert-base-ls960")
  model = audiojax.models.get_model(model_config)                      # a `hubert.Model`
  h = model.apply({"params": params}, audio, 6, method="features")   # HF's hidden_states[6]

The directory holds what `save_pretrained` writes; nothing is downloaded: config.json,
model.safetensors (or model.safetensors.index.json and its shards) and, when there,
preprocessor_config.json (`sampling_rate`, `do_normalize`; without it 16 kHz, no
normalisation). model_type hubert or wav2vec2: a HubertModel / Wav2Vec2Model, or a model with a
head on one (HubertForCTC, Wav2Vec2ForPreTraining, ...), whose encoder weights sit under
"hubert." / "wav2vec2." (the head's are ignored).

The architecture maps onto `hubert.Model`'s options (its docstring): position="conv" (the
weight-normed positional conv, stored as weight_g/weight_v or parametrizations.weight.original0/
original1, becomes one kernel: g * v / ||v||, the norm over all but the tap axis),
norm_first=do_stable_layer_norm (False: BASE's post-norm layers after encoder.layer_norm, True:
LARGE's pre-norm layers, encoder.layer_norm as the final norm), use_bias, exact_gelu,
conv_norm=feat_extract_norm, frontend_padding="none" (HF does not pad the waveform),
norm_epsilon=layer_norm_eps (HF's conv norms use torch's default, the same 1e-5 in every
released model). Without conv_bias the front-end convs get zero biases.

Layouts: torch Linear [out, in] -> kernel [in, out]; q/k/v [N * H, D] -> [D, N, H] and out_proj
[D, N * H] -> [N, H, D] (heads major, as torch's view); Conv1d [out, in / groups, k] ->
[k, in / groups, out]. The params hold every encoder weight (mask_embedding: zeros when the
checkpoint has no masked_spec_embed); HuBERT's prediction head (`head`, `label_embeddings`) is
not in HF checkpoints: `overlay` the imported params on an initialised model's to get it.
"""

import json
import os
from typing import Any

import ml_collections
import numpy as np
import safetensors.numpy

MODEL_TYPES = ("hubert", "wav2vec2")
_REQUIRED = object()


def _setting(config: dict, key: str, default: Any = _REQUIRED) -> Any:
  if key in config:
    return config[key]
  if default is _REQUIRED:
    raise ValueError(f"config.json lacks {key!r}")
  return default


def _expect(config: dict, key: str, allowed: tuple, default: Any = _REQUIRED) -> Any:
  value = _setting(config, key, default)
  if value not in allowed:
    raise ValueError(f"config.json: {key}={value!r} is not supported (supported: "
                     f"{', '.join(map(repr, allowed))})")
  return value


def model_config(config: dict, preprocessor: dict | None = None) -> ml_collections.ConfigDict:
  """`config.model` (name="hubert") of a HF config.json (and preprocessor_config.json) dict;
  a ValueError naming the key for what `hubert.Model` cannot express."""
  _expect(config, "model_type", MODEL_TYPES)
  conv_norm = _expect(config, "feat_extract_norm", ("group", "layer"))
  _expect(config, "hidden_act", ("gelu",), "gelu")
  _expect(config, "feat_extract_activation", ("gelu",), "gelu")
  _expect(config, "feat_proj_layer_norm", (True,), True)
  _expect(config, "conv_pos_batch_norm", (False,), False)
  _expect(config, "add_adapter", (False,), False)
  _expect(config, "adapter_attn_dim", (None,), None)
  channels = _setting(config, "conv_dim")
  if len(set(channels)) != 1:
    raise ValueError(f"config.json: conv_dim={channels} is not supported (one width for every "
                     "front-end conv)")
  kernels, strides = _setting(config, "conv_kernel"), _setting(config, "conv_stride")
  if not len(kernels) == len(strides) == len(channels):
    raise ValueError("config.json: conv_dim, conv_kernel and conv_stride differ in length")
  preprocessor = preprocessor or {}
  return ml_collections.ConfigDict(dict(
      name="hubert",
      sample_rate_hz=int(preprocessor.get("sampling_rate", 16000)),
      frontend="waveform",
      conv_channels=int(channels[0]),
      conv_kernels=tuple(kernels),
      conv_strides=tuple(strides),
      hop_samples=int(np.prod(strides)),
      num_layers=_setting(config, "num_hidden_layers"),
      embed_dim=_setting(config, "hidden_size"),
      num_heads=_setting(config, "num_attention_heads"),
      mlp_dim=_setting(config, "intermediate_size"),
      position="conv",
      conv_pos_kernel=_setting(config, "num_conv_pos_embeddings"),
      conv_pos_groups=_setting(config, "num_conv_pos_embedding_groups"),
      norm_first=bool(_setting(config, "do_stable_layer_norm")),
      use_bias=True,
      conv_norm=conv_norm,
      frontend_padding="none",
      exact_gelu=True,
      normalize_audio=bool(preprocessor.get("do_normalize", False)),
      norm_epsilon=float(_setting(config, "layer_norm_eps", 1e-5)),
  ))


def _read_json(path: str) -> dict | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def read_tensors(directory: str) -> dict[str, np.ndarray]:
  """Every tensor of model.safetensors (or of the shards model.safetensors.index.json lists)."""
  single = os.path.join(directory, "model.safetensors")
  if os.path.exists(single):
    return safetensors.numpy.load_file(single)
  index = _read_json(os.path.join(directory, "model.safetensors.index.json"))
  if index is None:
    raise FileNotFoundError(
        f"{directory} holds no model.safetensors (a pytorch_model.bin-only checkpoint: load it "
        "with transformers and save_pretrained it again, which writes safetensors)")
  tensors = {}
  for shard in sorted(set(index["weight_map"].values())):
    tensors.update(safetensors.numpy.load_file(os.path.join(directory, shard)))
  return tensors


class _Tensors:
  """The encoder's tensors by name (without the "hubert." / "wav2vec2." prefix), each taken
  once, as float32."""

  def __init__(self, tensors: dict[str, np.ndarray]):
    prefix = ""
    if not any(k.startswith("feature_extractor.") for k in tensors):
      prefix = next((p for p in ("hubert.", "wav2vec2.")
                     if any(k.startswith(p + "feature_extractor.") for k in tensors)), None)
      if prefix is None:
        raise ValueError("the checkpoint holds no feature_extractor.* tensors: not a HuBERT / "
                         "wav2vec 2.0 model")
    self.tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    self.used: set[str] = set()

  def __contains__(self, name: str) -> bool:
    return name in self.tensors

  def __call__(self, name: str) -> np.ndarray:
    if name not in self.tensors:
      raise ValueError(f"the checkpoint lacks tensor {name!r}")
    self.used.add(name)
    return np.asarray(self.tensors[name], np.float32)

  def linear(self, name: str) -> dict:
    return {"kernel": self(name + ".weight").T, "bias": self(name + ".bias")}

  def norm(self, name: str) -> dict:
    return {"scale": self(name + ".weight"), "bias": self(name + ".bias")}

  def weight_norm(self, name: str) -> np.ndarray:
    """torch weight_norm(dim=2) of a Conv1d: g [1, 1, k] * v / ||v|| (norm over out, in)."""
    if name + ".weight_g" in self.tensors:
      g, v = self(name + ".weight_g"), self(name + ".weight_v")
    else:
      g = self(name + ".parametrizations.weight.original0")
      v = self(name + ".parametrizations.weight.original1")
    if g.shape != (1, 1, v.shape[2]):
      raise ValueError(f"{name}: weight norm magnitude of shape {g.shape}, expected "
                       f"(1, 1, {v.shape[2]}) (torch weight_norm dim=2)")
    return g * v / np.linalg.norm(v, axis=(0, 1), keepdims=True)


def convert(tensors: dict[str, np.ndarray], config: ml_collections.ConfigDict) -> dict:
  """HF state dict (numpy) -> `hubert.Model` params (without the head) for `model_config`'s
  `config`."""
  take = _Tensors(tensors)
  conv = lambda w: w.transpose(2, 1, 0)  # torch Conv1d [out, in, k] -> [k, in, out].
  params: dict[str, Any] = {}
  for i in range(len(config.conv_kernels)):
    layer = f"feature_extractor.conv_layers.{i}"
    bias = f"{layer}.conv.bias"
    params[f"conv_{i}"] = {"kernel": conv(take(f"{layer}.conv.weight")),
                           "bias": take(bias) if bias in take
                           else np.zeros((config.conv_channels,), np.float32)}
    if config.conv_norm == "layer":
      params[f"conv_norm_{i}"] = take.norm(f"{layer}.layer_norm")
    elif i == 0:
      params["conv_norm"] = take.norm(f"{layer}.layer_norm")
  params["frontend_norm"] = take.norm("feature_projection.layer_norm")
  params["projection"] = take.linear("feature_projection.projection")
  params["mask_embedding"] = (take("masked_spec_embed") if "masked_spec_embed" in take
                              else np.zeros((config.embed_dim,), np.float32))
  params["position_conv"] = {"kernel": conv(take.weight_norm("encoder.pos_conv_embed.conv")),
                             "bias": take("encoder.pos_conv_embed.conv.bias")}
  params["final_norm" if config.norm_first else "encoder_norm"] = take.norm("encoder.layer_norm")
  d, n = config.embed_dim, config.num_heads
  for i in range(config.num_layers):
    layer = f"encoder.layers.{i}"
    attention = {}
    for ours, theirs in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
      dense = take.linear(f"{layer}.attention.{theirs}")
      attention[ours] = {"kernel": dense["kernel"].reshape(d, n, d // n),
                         "bias": dense["bias"].reshape(n, d // n)}
    out = take.linear(f"{layer}.attention.out_proj")
    attention["out"] = {"kernel": out["kernel"].reshape(n, d // n, d), "bias": out["bias"]}
    params[f"layer_{i}"] = {
        "attention_norm": take.norm(f"{layer}.layer_norm"),
        "attention": attention,
        "mlp_norm": take.norm(f"{layer}.final_layer_norm"),
        "mlp": {"wi": take.linear(f"{layer}.feed_forward.intermediate_dense"),
                "wo": take.linear(f"{layer}.feed_forward.output_dense")}}
  unused = sorted(k for k in take.tensors if k not in take.used and k.startswith(
      ("feature_extractor.", "feature_projection.", "encoder.")))
  if unused:
    raise ValueError(f"the checkpoint has encoder tensors this model does not: {unused[:5]}"
                     + (f" and {len(unused) - 5} more" if len(unused) > 5 else ""))
  return params


def load_hf(directory: str) -> tuple[ml_collections.ConfigDict, dict]:
  """(`config.model` for `audiojax.models.get_model`, params without the head) of a local
  Hugging Face HuBERT / wav2vec 2.0 directory (module docstring)."""
  config = _read_json(os.path.join(directory, "config.json"))
  if config is None:
    raise FileNotFoundError(f"{directory} holds no config.json (a Hugging Face model "
                            "directory, as save_pretrained writes it)")
  model = model_config(config, _read_json(os.path.join(directory, "preprocessor_config.json")))
  return model, convert(read_tensors(directory), model)


def overlay(params: dict, imported: dict, path: str = "") -> dict:
  """`params` (a full initialised tree) with every leaf of `imported` in its place; a
  ValueError for an imported leaf the tree lacks or holds at another shape."""
  out = dict(params)
  for key, value in imported.items():
    where = f"{path}/{key}"
    if key not in params:
      raise ValueError(f"imported param {where} is not in the model")
    if isinstance(value, dict):
      out[key] = overlay(params[key], value, where)
    elif np.shape(params[key]) != np.shape(value):
      raise ValueError(f"imported param {where} has shape {np.shape(value)}, the model "
                       f"{np.shape(params[key])}")
    else:
      out[key] = np.asarray(value, params[key].dtype)
  return out
