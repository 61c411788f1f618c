"""AudioLM generation: prompt audio -> semantic tokens -> coarse -> fine acoustic tokens -> audio.

A pipeline is three trained stages (`configs/audiolm.py`) plus the tokenizers their token
datasets were made with, found through those datasets' info.json: the semantic tokenizer
(speech encoder + k-means, `audiojax.sample.semantic`) and the codec (`audiojax.sample.codec`).
Their fingerprints must match the datasets' (else the stages would read foreign tokens).

Generation (Borsos et al., 2022), all rows of a batch in step:
  1. semantic: the prompt's semantic tokens (deduplicated when the stage was trained so) are
     continued by the semantic stage to cover the requested duration (the number of tokens is
     estimated from the prompt's tokens per second after deduplication), in windows of the
     stage's length;
  2. coarse: for windows of the stage's length (`coarse_seconds`) sliding by half a window, the
     semantic tokens of the window (mapped to time in proportion: deduplicated tokens carry no
     timestamps) then SEP then the acoustic frames so far; each new frame's Q' levels are drawn
     level by level, each from its own slice of the vocabulary; the prompt's frames are given;
  3. fine: non-overlapping windows of `fine_seconds`: the window's coarse levels, then its fine
     levels drawn frame by frame; the prompt's fine codes are kept;
  4. the codec decodes all levels; the output holds the prompt then the continuation.
Sampling temperatures per stage default to the paper's 0.6 / 0.8 / 0.6.
"""

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.data import audio_io, audiolm_tokens, token_dataset
from audiojax.models import transformer
from audiojax.sample import lm
from audiojax.train import trainer

TEMPERATURES = {"semantic": 0.6, "coarse": 0.8, "fine": 0.6}


@dataclasses.dataclass
class Stage:
  model: object
  params: dict
  data: object  # The stage's config.data: layout, window sizes, deduplication.
  bfloat16_cache: bool = False  # lm.sample's

  @property
  def layout(self) -> audiolm_tokens.Layout:
    return audiolm_tokens.layout_of(self.data)

  def sample(self, prompt: np.ndarray, num_tokens: int, rng: jax.Array, temperature: float,
             allowed_range) -> np.ndarray:
    """`lm.sample` in global ids: prompt int [b, p] -> [b, num_tokens] drawn within
    `allowed_range` (global [lo, hi), or [num_tokens, 2] of them); the model sees its own."""
    vocab = audiolm_tokens.stage_vocab(self.data)
    new = lm.sample(self.model, self.params, jnp.asarray(vocab.to_model(prompt)), num_tokens,
                    rng, temperature=temperature, allowed_range=vocab.model_range(allowed_range),
                    bfloat16_cache=self.bfloat16_cache)
    return vocab.to_global(np.asarray(new))


WEIGHTS = {"float32": None, "bfloat16": transformer.bfloat16_weights,
           "int8": transformer.int8_weights}


def load_stage(workdir: str, stage: str, weights: str = "float32",
               bfloat16_cache: bool = False) -> Stage:
  """The stage trained in `workdir`, its dense kernels stored for sampling as `weights`
  (`WEIGHTS`) and, with `bfloat16_cache`, its KV cache as bfloat16 (`lm.sample`). Batch-1
  decoding on a CPU: bfloat16 / int8 weights ~1.8x / ~2.4x the tokens/s of float32, int8 with
  the bfloat16 cache ~3.7x, each with slightly different draws (benchmarks/RESULTS.md)."""
  if weights not in WEIGHTS:
    raise ValueError(f"weights={weights!r}: use one of {', '.join(WEIGHTS)}")
  config, model, variables = trainer.restore_model(workdir, "transformer",
                                                   f"an AudioLM {stage} stage")
  if config.data.get("stage") != stage:
    raise ValueError(f"{workdir} holds the AudioLM {config.data.get('stage')!r} stage, not "
                     f"the {stage} stage")
  if bfloat16_cache and model.layer_head_dim % transformer.TILE:
    raise ValueError(f"a bfloat16 cache needs a head_dim that is a multiple of "
                     f"{transformer.TILE}; the {stage} stage in {workdir} has "
                     f"{model.layer_head_dim}")
  params = variables["params"]
  if WEIGHTS[weights]:
    params = WEIGHTS[weights](params)
  return Stage(model, params, config.data, bfloat16_cache)


@dataclasses.dataclass
class Pipeline:
  coarse: Stage
  semantic: Stage | None  # None: the acoustic_only ablation.
  fine: Stage | None  # None when the coarse levels are all the codec's levels.
  tokenizer: object | None  # semantic.Tokenizer
  codec_model: object
  codec_variables: dict

  @property
  def layout(self) -> audiolm_tokens.Layout:
    return self.coarse.layout


def stage_workdirs(root: str | None, semantic: str | None = None, coarse: str | None = None,
                   fine: str | None = None) -> tuple[str | None, str, str | None]:
  """(semantic, coarse, fine) workdirs: each one given, else ROOT/<stage> where it exists
  (None for a missing semantic or fine stage); the coarse stage is required."""
  pick = lambda given, name: given or (os.path.join(root, name) if root and os.path.isdir(
      os.path.join(root, name)) else None)
  coarse = pick(coarse, "coarse")
  if coarse is None:
    raise ValueError(f"no coarse stage: {root or 'no workdir'} holds no coarse/ run and no "
                     "coarse workdir was given")
  return pick(semantic, "semantic"), coarse, pick(fine, "fine")


def _tokenizer_of(directory: str) -> tuple[str, str]:
  info = token_dataset.read_info(os.path.expanduser(directory))
  return info["tokenizer"], info["fingerprint"]


def load_pipeline(coarse_workdir: str, semantic_workdir: str | None = None,
                  fine_workdir: str | None = None, weights: str = "float32",
                  bfloat16_cache: bool = False, codec_dtype: str | None = None) -> Pipeline:
  """The stages (`load_stage`) and the tokenizers of their training tokens, the codec computing
  in `codec_dtype` (`codec.with_dtype`); clear errors on mismatches."""
  from audiojax.sample import codec, semantic
  from audiojax.train import checkpoint

  load = lambda workdir, stage: (load_stage(workdir, stage, weights, bfloat16_cache)
                                 if workdir else None)
  coarse = load(coarse_workdir, "coarse")
  layout = coarse.layout
  semantic_stage, fine = load(semantic_workdir, "semantic"), load(fine_workdir, "fine")
  if layout.semantic_vocab and semantic_stage is None:
    raise ValueError("this coarse stage reads semantic tokens: pass the semantic stage too")
  if fine is None and layout.coarse_levels < layout.num_levels:
    raise ValueError(f"the codec has {layout.num_levels} levels and the coarse stage models "
                     f"{layout.coarse_levels}: pass the fine stage too")
  # The fine stage never sees semantic ids (it maps coarse codes to fine codes in its own
  # layout), so one fine stage serves the full hierarchy and the acoustic-only ablation.
  acoustic = lambda lay: (lay.codebook_size, lay.num_levels, lay.coarse_levels)
  if semantic_stage is not None and (semantic_stage.layout.semantic_vocab, *acoustic(
      semantic_stage.layout)) != (layout.semantic_vocab, *acoustic(layout)):
    raise ValueError("the stages were trained on different token layouts")
  codec_dir, acoustic_fingerprint = _tokenizer_of(coarse.data.acoustic_dir)
  if fine is not None and (acoustic(fine.layout) != acoustic(layout) or _tokenizer_of(
      fine.data.acoustic_dir) != (codec_dir, acoustic_fingerprint)):
    raise ValueError("the fine and coarse stages were trained on different acoustic tokens")

  codec_config, codec_model, codec_variables = codec.load(codec_dir, codec_dtype)
  if checkpoint.model_fingerprint(codec_config.model) != acoustic_fingerprint:
    raise ValueError(f"the codec in {codec_dir} is not the one that made the coarse stage's "
                     "acoustic tokens")
  tokenizer = None
  if layout.semantic_vocab:
    kmeans_path, semantic_fingerprint = _tokenizer_of(coarse.data.semantic_dir)
    tokenizer = semantic.load_tokenizer(kmeans_path)
    if tokenizer.fingerprint != semantic_fingerprint:
      raise ValueError(f"the semantic tokenizer {kmeans_path} is not the one that made the "
                       "stages' semantic tokens")
  return Pipeline(coarse, semantic_stage, fine, tokenizer, codec_model, codec_variables)


def _level_ranges(layout: audiolm_tokens.Layout, first_level: int, levels: int,
                  num_tokens: int, start: int = 0) -> np.ndarray:
  """[num_tokens, 2]: token t (of a flattened run starting at level slot `start`) may only be
  a code of its level."""
  slots = (start + np.arange(num_tokens)) % levels + first_level
  lo = np.array([layout.level_offset(s) for s in slots])
  return np.stack([lo, lo + layout.codebook_size], 1).astype(np.int32)


def semantic_continuation(stage: Stage, prompt: np.ndarray, num_tokens: int, rng: jax.Array,
                          temperature: float) -> np.ndarray:
  """prompt: int [b, p] semantic tokens (starting with SEP if it is an utterance's start) ->
  [b, num_tokens] drawn, in windows of the stage's length (half a window of context)."""
  layout, length = stage.layout, stage.data.semantic_tokens
  tokens = np.asarray(prompt, np.int32)
  drawn = 0
  while drawn < num_tokens:
    context = tokens[:, -max(1, min(tokens.shape[1], length // 2 if drawn else length - 1)):]
    n = min(num_tokens - drawn, length - context.shape[1])
    new = stage.sample(context, n, jax.random.fold_in(rng, drawn), temperature,
                       (0, layout.semantic_vocab))
    tokens = np.concatenate([tokens, new], axis=1)
    drawn += n
  return tokens[:, tokens.shape[1] - num_tokens:]


def coarse_frames(stage: Stage, semantic: np.ndarray | None, prompt_codes: np.ndarray,
                  total_frames: int, rng: jax.Array, temperature: float) -> np.ndarray:
  """semantic: int [b, S] tokens of the whole clip (None: acoustic only); prompt_codes: int
  [b, P, >= Q'] -> coarse codes int32 [b, total_frames, Q'] (the prompt's first)."""
  layout = stage.layout
  q = layout.coarse_levels
  window = round(stage.data.coarse_seconds * layout.acoustic_rate_hz)
  max_semantic = layout.max_semantic(stage.data.coarse_seconds)
  codes = np.asarray(prompt_codes[:, :total_frames, :q], np.int32)
  batch = codes.shape[0]
  while codes.shape[1] < total_frames:
    have = codes.shape[1]
    start = 0 if have < window else have - window // 2
    end = min(start + window, total_frames)
    parts = []
    if layout.semantic_vocab:
      s = semantic.shape[1]
      a, b = math.floor(start / total_frames * s), math.ceil(end / total_frames * s)
      prefix = semantic[:, a:b][:, :max_semantic]
      pad = np.full((batch, max_semantic - prefix.shape[1]), layout.pad, np.int32)
      parts += [pad, prefix]
    parts += [np.full((batch, 1), layout.sep, np.int32),
              np.stack([layout.flatten(c) for c in codes[:, start:have]]).reshape(batch, -1)]
    n = (end - have) * q
    new = stage.sample(np.concatenate(parts, 1), n, jax.random.fold_in(rng, have),
                       temperature, _level_ranges(layout, 0, q, n))
    new = np.stack([layout.unflatten(row, q) for row in new])
    codes = np.concatenate([codes, new], axis=1)
  return codes


def fine_frames(stage: Stage, coarse: np.ndarray, rng: jax.Array, temperature: float
                ) -> np.ndarray:
  """coarse: int [b, T, Q'] -> fine codes int32 [b, T, Q - Q'], window by window."""
  layout = stage.layout
  q, fine_levels = layout.coarse_levels, layout.num_levels - layout.coarse_levels
  window = round(stage.data.fine_seconds * layout.acoustic_rate_hz)
  out = []
  for start in range(0, coarse.shape[1], window):
    chunk = coarse[:, start:start + window]
    prompt = np.stack([layout.flatten(c) for c in chunk])
    n = chunk.shape[1] * fine_levels
    new = stage.sample(prompt, n, jax.random.fold_in(rng, start), temperature,
                       _level_ranges(layout, q, fine_levels, n))
    out.append(np.stack([layout.unflatten(row, fine_levels, q) for row in new]))
  return np.concatenate(out, axis=1)


def _codec_codes(pipe: Pipeline, audio_16k: np.ndarray) -> np.ndarray:
  from audiojax.sample import codec

  model = pipe.codec_model
  audio = audio_io.resample(audio_16k, 16000, model.sample_rate_hz)
  return codec.encode_utterances(model, pipe.codec_variables, [audio])[0]


def generate(pipe: Pipeline, seconds: float, rng: jax.Array, num_samples: int = 1,
             prompt: np.ndarray | None = None, semantic_source: np.ndarray | None = None,
             temperatures: dict[str, float] | None = None) -> np.ndarray:
  """-> float32 audio [num_samples, seconds * codec rate] at the codec's sample rate.

  prompt: float audio [samples] at 16 kHz (the clip's start, kept), or None (unconditional).
  semantic_source: float audio at 16 kHz whose semantic tokens are spoken after the prompt
  (acoustic generation: the prompt gives the voice), instead of sampling them.
  """
  temperatures = {**TEMPERATURES, **(temperatures or {})}
  layout = pipe.layout
  rate = layout.acoustic_rate_hz
  total_frames = max(1, round(seconds * rate))
  prompt_codes = np.zeros((0, layout.num_levels), np.int32)
  if prompt is not None:
    prompt_codes = _codec_codes(pipe, prompt)[:, :layout.num_levels]
    if len(prompt_codes) >= total_frames:
      raise ValueError(f"the prompt ({len(prompt_codes) / rate:.2f} s) is not shorter than the "
                       f"requested {seconds} s")
  codes = np.broadcast_to(prompt_codes, (num_samples, *prompt_codes.shape))
  semantic = None
  if layout.semantic_vocab:
    dedup = pipe.semantic.data.deduplicate
    prepare = lambda t: audiolm_tokens.deduplicate(t) if dedup else np.asarray(t)
    known = np.array([layout.sep], np.int32)  # The stage's start-of-utterance token.
    per_second = layout.semantic_rate_hz
    if prompt is not None:
      raw = pipe.tokenizer.tokens([prompt])[0]
      tokens = prepare(raw)
      known = np.concatenate([known, tokens])
      per_second *= len(tokens) / max(len(raw), 1)
    if semantic_source is not None:
      known = np.concatenate([known, prepare(pipe.tokenizer.tokens([semantic_source])[0])])
      semantic = np.broadcast_to(known, (num_samples, len(known)))
    else:
      remaining = max(1, round((seconds - len(prompt_codes) / rate) * per_second))
      start = np.broadcast_to(known, (num_samples, len(known)))
      new = semantic_continuation(pipe.semantic, start, remaining,
                                  jax.random.fold_in(rng, 0), temperatures["semantic"])
      semantic = np.concatenate([start, new], axis=1)
    semantic = semantic[:, 1:]  # Without the start token.
  coarse = coarse_frames(pipe.coarse, semantic, codes, total_frames, jax.random.fold_in(rng, 1),
                         temperatures["coarse"])
  full = coarse
  if pipe.fine is not None:
    fine = fine_frames(pipe.fine, coarse, jax.random.fold_in(rng, 2), temperatures["fine"])
    fine[:, :len(prompt_codes)] = prompt_codes[:, layout.coarse_levels:]
    full = np.concatenate([coarse, fine], axis=2)
  decode = jax.jit(lambda v, c: pipe.codec_model.apply(v, c, method=pipe.codec_model.decode))
  audio = decode(pipe.codec_variables, jnp.asarray(full))
  return np.asarray(audio)[:, :round(seconds * pipe.codec_model.sample_rate_hz)]
