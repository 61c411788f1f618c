"""Semantic tokens: k-means clusters of a layer of a trained speech encoder (`models.hubert`).

AudioLM's first-stage vocabulary. A tokenizer is an encoder checkpoint, a layer and a k-means
model fitted on that layer's features (`python -m launch.fit_kmeans --workdir=... --layer=L`);
its fingerprint covers all three, so token files record exactly what wrote them.
"""

import dataclasses
import functools
import hashlib
from collections.abc import Sequence

import jax
import numpy as np

from audiojax.models import kmeans
from audiojax.sample import framewise
from audiojax.train import trainer


def load_encoder(workdir: str):
  """(config, model, variables) of a speech-encoder workdir's latest checkpoint."""
  return trainer.restore_model(workdir, "hubert", "a hubert speech encoder")


def params_fingerprint(params) -> str:
  """16 hex digits of the encoder's weights (names, shapes and values)."""
  digest = hashlib.sha256()
  for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(params),
                           key=lambda x: jax.tree_util.keystr(x[0])):
    array = np.asarray(jax.device_get(leaf), "<f4")
    digest.update(f"{jax.tree_util.keystr(path)}:{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()[:16]


@functools.cache
def _features_fn(model, layer: int):
  return jax.jit(lambda params, audio, mask: model.apply(
      {"params": params}, audio, layer, mask, method="features"))


def layer_features(model, variables, audio: Sequence[np.ndarray], layer: int,
                   batch_size: int = 8) -> list[np.ndarray]:
  """Each utterance (float32 [samples] at the encoder's rate) -> float32 [frames, embed_dim],
  the hidden state after transformer layer `layer` (padding hidden from attention)."""
  features = _features_fn(model, layer)
  return framewise.map_utterances(
      lambda a, m: features(variables["params"], a, m), audio, model.hop_samples, batch_size)


@dataclasses.dataclass
class Tokenizer:
  model: object
  variables: dict
  layer: int
  clusters: kmeans.KMeans
  encoder_fingerprint: str

  @property
  def fingerprint(self) -> str:
    text = f"semantic:{self.encoder_fingerprint}:{self.layer}:{self.clusters.fingerprint()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]

  @property
  def frame_rate_hz(self) -> float:
    return self.model.sample_rate_hz / self.model.hop_samples

  def tokens(self, audio: Sequence[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
    """Each utterance -> int32 tokens [frames]."""
    features = layer_features(self.model, self.variables, audio, self.layer, batch_size)
    labels = kmeans.assign(np.concatenate(features), self.clusters)
    return np.split(labels, np.cumsum([len(f) for f in features])[:-1])


def load_tokenizer(kmeans_path: str, workdir: str | None = None) -> Tokenizer:
  """The tokenizer of a k-means file written by `launch.fit_kmeans --workdir=... --layer=...`
  (its encoder from `workdir`, default the one recorded in the file). A clear error when the
  encoder's weights are not the ones the k-means was fitted on."""
  metadata = kmeans.load_metadata(kmeans_path)
  if metadata.get("features") != "hubert":
    raise ValueError(f"{kmeans_path} clusters {metadata.get('features', 'unknown')} features, "
                     "not a speech encoder's layer (fit one with launch.fit_kmeans --workdir)")
  _, model, variables = load_encoder(workdir or metadata["workdir"])
  fingerprint = params_fingerprint(variables["params"])
  if fingerprint != metadata["encoder_fingerprint"]:
    raise ValueError(
        f"{kmeans_path} was fitted on encoder weights {metadata['encoder_fingerprint']}, but "
        f"{workdir or metadata['workdir']} now holds {fingerprint} (trained further?): refit "
        "the k-means with launch.fit_kmeans")
  return Tokenizer(model, variables, int(metadata["layer"]), kmeans.load(kmeans_path),
                   fingerprint)
