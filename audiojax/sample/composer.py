"""Scores from the composer (`configs/composer.py`): note-event tokens sampled with the KV
cache (`audiojax.sample.lm`), decoded into notes (`audiojax.data.chorale_notes`)."""

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.data import chorale_notes, music21_audio
from audiojax.sample import lm
from audiojax.train import trainer


def load(workdir: str):
  """(model, params) of a composer run; a clear error for any other run."""
  config, model, variables = trainer.restore_model(workdir, "transformer", "a composer")
  if config.data.name != "chorale_notes":
    raise ValueError(f"{workdir} holds a transformer over {config.data.name!r}, not a composer "
                     "(configs/composer.py)")
  return model, variables["params"]


def prompt_tokens(piece: str | None, quarters: float) -> np.ndarray:
  """int32 [p]: BOS alone, or BOS and a piece's notes that start in its first `quarters`
  quarter notes (a music21 corpus work or a score file: `music21_audio.read_notes`)."""
  if not piece:
    return np.asarray([chorale_notes.BOS], np.int32)
  notes = music21_audio.read_notes(piece)
  keep = notes["start_q"] < quarters
  return chorale_notes.encode({k: notes[k][keep] for k in ("pitch_midi", "start_q",
                                                            "end_q")})[:-1]  # without EOS


def compose(model, params, prompt: np.ndarray, num_pieces: int, num_tokens: int, seed: int,
            temperature: float = 1.0, top_p: float = 1.0) -> list[tuple[dict, int]]:
  """num_pieces scores continuing prompt int32 [p]: [(notes {pitch_midi, start_q, end_q},
  tokens skipped as out of order)], each cut at its first EOS."""
  prompts = jnp.repeat(jnp.asarray(prompt, jnp.int32)[None], num_pieces, axis=0)
  new = lm.sample(model, params, prompts, num_tokens, jax.random.key(seed),
                  temperature=temperature, top_p=top_p)
  tokens = np.concatenate([np.asarray(prompts), np.asarray(new)], axis=1)
  return [chorale_notes.decode(row) for row in tokens]
