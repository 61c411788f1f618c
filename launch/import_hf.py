"""Import a pretrained HuBERT / wav2vec 2.0 encoder from a local Hugging Face model directory.

  python -m launch.import_hf --hf_dir=checkpoints/hubert-base-ls960 --workdir=runs/hubert_base
  python -m launch.fit_kmeans --workdir=runs/hubert_base --layer=6 --num_clusters=500

--hf_dir holds what `save_pretrained` writes (config.json, model.safetensors and, when there,
preprocessor_config.json); nothing is downloaded. The workdir gets a step-0 checkpoint whose
config is configs/semantic.py:paper with the model section replaced by the imported
architecture (`audiojax.models.hf_import`), so whatever reads a speech-encoder workdir takes it
(`audiojax.sample.semantic.load_encoder`, fit_kmeans, extract_tokens, a HuBERT run's
--config.model.teacher_workdir). HuBERT's prediction head is not in HF checkpoints: it is
freshly initialised, as is the optimizer state.
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from absl import flags

from audiojax.models import hf_import
from audiojax.train import checkpoint, trainer
from configs import semantic as semantic_config
from launch import common

_HF_DIR = flags.DEFINE_string("hf_dir", None, "A Hugging Face HuBERT / wav2vec 2.0 directory.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where to write the checkpoint (a new workdir).")
flags.mark_flags_as_required(["hf_dir", "workdir"])


def import_to_workdir(hf_dir: str, workdir: str) -> ml_collections.ConfigDict:
  """Writes `hf_dir`'s encoder into `workdir` as a step-0 checkpoint; returns its config."""
  if os.path.exists(os.path.join(workdir, "checkpoints")):
    raise ValueError(f"{workdir} holds checkpoints already: use another --workdir")
  model_config, imported = hf_import.load_hf(hf_dir)
  config = semantic_config.get_config("paper")
  config.model = ml_collections.ConfigDict({**config.model.to_dict(),
                                            **model_config.to_dict()})
  config.data.sample_rate_hz = model_config.sample_rate_hz
  model, task, tx, _, _, _ = trainer.build(config, mesh_config={})
  crop = config.data.crop_samples
  batch = {"audio": jnp.zeros((1, crop)), "mask": jnp.ones((1, crop))}
  state = jax.jit(lambda: nn.meta.unbox(
      trainer.create_train_state(model, task, tx, batch, config.seed)))()
  params = jax.tree.map(jnp.asarray, hf_import.overlay(state.params, imported))
  state = state.replace(params=params, opt_state=tx.init(params))
  manager = checkpoint.make_manager(workdir, async_save=False)
  checkpoint.save(manager, 0, state, {}, checkpoint.make_meta(config))
  manager.wait_until_finished()
  return config


def main(argv):
  del argv
  if not os.path.isdir(_HF_DIR.value):
    raise FileNotFoundError(f"--hf_dir={_HF_DIR.value} is not a directory")
  config = import_to_workdir(_HF_DIR.value, _WORKDIR.value)
  m = config.model
  print(f"wrote {_WORKDIR.value}: {m.num_layers} layers of width {m.embed_dim} "
        f"({'pre' if m.norm_first else 'post'}-norm), {m.sample_rate_hz / m.hop_samples:g} Hz "
        f"frames. Semantic tokens: python -m launch.fit_kmeans --workdir={_WORKDIR.value} "
        f"--layer=L")


if __name__ == "__main__":
  common.run(main)
