"""Model modules, one family per file; `get_model` builds one from `config.model`."""

import importlib

import flax.linen as nn
import ml_collections


def get_model(model_config: ml_collections.ConfigDict) -> nn.Module:
  """`audiojax.models.<model_config.name>.Model(**other fields)`.

  Lists become tuples (a config read back from JSON has lists), so the model stays hashable for
  `jax.jit`'s static arguments.
  """
  module = importlib.import_module(f"audiojax.models.{model_config.name}")
  kwargs = {k: tuple(v) if isinstance(v, list) else v
            for k, v in model_config.to_dict().items() if k != "name"}
  return module.Model(**kwargs)
