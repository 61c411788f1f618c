"""AudioLM's token sequences: one vocabulary for all stages, and the examples each stage trains on.

Vocabulary (`Layout`): semantic tokens take ids [0, K_s); RVQ level l (0-based) of the codec
takes [K_s + l * K_a, K_s + (l + 1) * K_a); then SEP (ends the semantic prefix) and PAD. With
no semantic stage (the `acoustic_only` ablation) K_s = 0.

Stages (Borsos et al., 2022; `papers.md`), each a decoder-only transformer over a flat sequence:
  semantic  a window of `semantic_tokens` consecutive tokens of SEP (the utterance's start)
            followed by its semantic tokens (consecutive repeats removed: `deduplicate`).
            Loss on every token but the window's first.
  coarse    PAD... semantic tokens of the window (deduplicated, left-padded to the most a window
            can hold), SEP, then the window's first Q' RVQ levels flattened frame by frame
            (frame 0 levels 0..Q'-1, frame 1 ...). Loss on the acoustic tokens.
  fine      the window's coarse levels flattened, then its levels Q'..Q-1 flattened. Loss on
            the fine tokens. Windows of `fine_seconds` (3 s in the paper), no semantic tokens.
A window shorter than the stage's (the end of an utterance) is padded with PAD at the end,
with no loss there. Examples are dicts of numpy arrays: tokens int32 [length], loss_mask
float32 [length] (1 where tokens[i] is a target, i.e. predicted from tokens[:i]).

Each stage's model has its own vocabulary, the ids its sequences can hold (`Layout.stage_ids`,
as in the paper: the semantic stage predicts K_s + 2 ids, not every codec level's): examples
come out in the stage's ids (`StageVocab`), and generation maps them back. A stage trained
before this (its config without `data.stage_vocab`) keeps the full vocabulary.

Semantic and acoustic token datasets (`audiojax.data.token_dataset`) are paired by split and
utterance index: extract both from the same dataset and splits.
"""

import dataclasses
import functools
import math
import os

import numpy as np

from audiojax.data import token_dataset

STAGES = ("semantic", "coarse", "fine")


def deduplicate(tokens: np.ndarray) -> np.ndarray:
  """Consecutive repeats removed: [5, 5, 2, 2, 2, 5] -> [5, 2, 5]."""
  tokens = np.asarray(tokens)
  if tokens.size == 0:
    return tokens
  keep = np.concatenate([[True], tokens[1:] != tokens[:-1]])
  return tokens[keep]


@dataclasses.dataclass(frozen=True)
class Layout:
  """Token ids of every stage (module docstring). Rates in frames per second."""
  semantic_vocab: int  # K_s; 0 without a semantic stage.
  codebook_size: int  # K_a, per RVQ level.
  num_levels: int  # Q
  coarse_levels: int  # Q'
  semantic_rate_hz: float = 50.0
  acoustic_rate_hz: float = 50.0

  def __post_init__(self):
    if not 0 < self.coarse_levels <= self.num_levels:
      raise ValueError(f"coarse_levels={self.coarse_levels} must be in 1..num_levels="
                       f"{self.num_levels}")

  @property
  def sep(self) -> int:
    return self.semantic_vocab + self.num_levels * self.codebook_size

  @property
  def pad(self) -> int:
    return self.sep + 1

  @property
  def vocab_size(self) -> int:
    return self.pad + 1

  def stage_ids(self, stage: str) -> np.ndarray:
    """The global ids a stage's sequences hold, increasing: its model's vocabulary.
    semantic: the semantic ids, SEP, PAD; coarse: the semantic ids and the first Q' levels'
    codes, SEP, PAD; fine: every level's codes, PAD."""
    if stage == "semantic":
      used = np.arange(self.semantic_vocab)
    elif stage == "coarse":
      used = np.arange(self.level_offset(self.coarse_levels))
    elif stage == "fine":
      used = np.arange(self.level_offset(0), self.sep)
    else:
      raise ValueError(f"stage {stage!r}: use one of {', '.join(STAGES)}")
    return np.concatenate([used, [self.pad] if stage == "fine" else [self.sep, self.pad]]
                          ).astype(np.int32)

  def level_offset(self, level: int) -> int:
    return self.semantic_vocab + level * self.codebook_size

  def flatten(self, codes: np.ndarray, first_level: int = 0) -> np.ndarray:
    """codes int [frames, levels] (levels first_level, first_level + 1, ...) -> ids
    [frames * levels], frame by frame, each level with its offset."""
    codes = np.asarray(codes, np.int64)
    offsets = np.array([self.level_offset(first_level + j) for j in range(codes.shape[1])])
    return (codes + offsets).reshape(-1).astype(np.int32)

  def unflatten(self, ids: np.ndarray, levels: int, first_level: int = 0) -> np.ndarray:
    """Inverse of `flatten`: ids [frames * levels] -> codes int32 [frames, levels]. Ids that are
    not codes of the expected level (a sampler's mistake) raise."""
    ids = np.asarray(ids, np.int64).reshape(-1, levels)
    offsets = np.array([self.level_offset(first_level + j) for j in range(levels)])
    codes = ids - offsets
    if codes.min(initial=0) < 0 or codes.max(initial=0) >= self.codebook_size:
      raise ValueError("token ids out of their RVQ level's range")
    return codes.astype(np.int32)

  def max_semantic(self, seconds: float) -> int:
    """The most semantic tokens a window of `seconds` can hold (before deduplication); 0
    without a semantic stage."""
    return math.ceil(seconds * self.semantic_rate_hz) if self.semantic_vocab else 0

  def sequence_length(self, stage: str, semantic_tokens: int, coarse_seconds: float,
                      fine_seconds: float) -> int:
    if stage == "semantic":
      return semantic_tokens
    if stage == "coarse":
      frames = round(coarse_seconds * self.acoustic_rate_hz)
      return self.max_semantic(coarse_seconds) + 1 + frames * self.coarse_levels
    if stage == "fine":
      return round(fine_seconds * self.acoustic_rate_hz) * self.num_levels
    raise ValueError(f"stage {stage!r}: use one of {', '.join(STAGES)}")

  # ------------------------------------------------------------------------ examples

  def _padded(self, parts: list[tuple[np.ndarray, float]], length: int, left: int = 0) -> dict:
    """Concatenates (ids, loss weight) parts after `left` PADs, PAD-fills to `length`."""
    tokens = np.full(length, self.pad, np.int32)
    loss = np.zeros(length, np.float32)
    at = left
    for ids, weight in parts:
      tokens[at:at + len(ids)] = ids
      loss[at:at + len(ids)] = weight
      at += len(ids)
    if at > length:
      raise ValueError(f"example of {at} tokens exceeds the sequence length {length}")
    return {"tokens": tokens, "loss_mask": loss}

  def semantic_example(self, semantic: np.ndarray, length: int) -> dict:
    """A window of `length` (deduplicated) semantic tokens; loss on all but the first."""
    example = self._padded([(np.asarray(semantic[:length], np.int32), 1.0)], length)
    example["loss_mask"][0] = 0.0
    return example

  def coarse_example(self, semantic: np.ndarray, codes: np.ndarray, seconds: float) -> dict:
    """semantic: the window's deduplicated tokens; codes [frames, >= Q'] of the window."""
    max_semantic = self.max_semantic(seconds)
    frames = round(seconds * self.acoustic_rate_hz)
    semantic = np.asarray(semantic[:max_semantic], np.int32)
    acoustic = self.flatten(codes[:frames, :self.coarse_levels])
    return self._padded([(semantic, 0.0), (np.array([self.sep], np.int32), 0.0),
                         (acoustic, 1.0)],
                        max_semantic + 1 + frames * self.coarse_levels,
                        left=max_semantic - len(semantic))

  def fine_example(self, codes: np.ndarray, seconds: float) -> dict:
    """codes [frames, Q] of the window: coarse levels (context), then the fine ones (loss)."""
    if self.coarse_levels == self.num_levels:
      raise ValueError("the fine stage needs num_levels > coarse_levels")
    frames = round(seconds * self.acoustic_rate_hz)
    codes = codes[:frames]
    return self._padded([(self.flatten(codes[:, :self.coarse_levels]), 0.0),
                         (self.flatten(codes[:, self.coarse_levels:], self.coarse_levels), 1.0)],
                        frames * self.num_levels)


@dataclasses.dataclass(frozen=True, eq=False)
class StageVocab:
  """A stage model's ids <-> global ids: model id i is global id `ids[i]` (increasing)."""
  ids: np.ndarray

  @property
  def size(self) -> int:
    return len(self.ids)

  def to_model(self, tokens) -> np.ndarray:
    """Global ids (any shape) -> the model's; an id outside the stage's vocabulary raises."""
    tokens = np.asarray(tokens)
    index = np.minimum(np.searchsorted(self.ids, tokens), self.size - 1)
    if tokens.size and not np.array_equal(self.ids[index], tokens):
      bad = tokens[self.ids[index] != tokens]
      raise ValueError(f"token ids {sorted(set(bad.tolist()))[:5]} are not in this stage's "
                       "vocabulary")
    return index.astype(np.int32)

  def to_global(self, tokens) -> np.ndarray:
    return self.ids[np.asarray(tokens)]

  def model_range(self, ranges) -> np.ndarray:
    """Global [lo, hi) ranges (shape [..., 2]) of ids the stage holds -> model-id ranges."""
    return np.searchsorted(self.ids, np.asarray(ranges)).astype(np.int32)


@functools.lru_cache(maxsize=16)
def _stage_vocab(layout: Layout, stage: str, compact: bool) -> StageVocab:
  ids = layout.stage_ids(stage) if compact else np.arange(layout.vocab_size, dtype=np.int32)
  return StageVocab(ids)


def stage_vocab(data_config, layout: Layout | None = None) -> StageVocab:
  """The vocabulary of `data_config`'s stage: its own ids (`stage_ids`) when
  `data_config.stage_vocab`, else (stages trained before it existed) every id."""
  layout = layout or layout_of(data_config)
  return _stage_vocab(layout, data_config.stage, bool(data_config.get("stage_vocab", False)))


def window(rng: np.random.Generator, num_frames: int, window_frames: int) -> int:
  """A random start frame of a window of `window_frames` in an utterance of `num_frames`."""
  return int(rng.integers(0, max(num_frames - window_frames, 0) + 1))


def semantic_span(layout: Layout, start_frame: int, frames: int) -> tuple[int, int]:
  """Semantic token indices [a, b) covering acoustic frames [start, start + frames)."""
  ratio = layout.semantic_rate_hz / layout.acoustic_rate_hz
  return math.floor(start_frame * ratio), math.ceil((start_frame + frames) * ratio)


# ----------------------------------------------------------------------------- datasets


def layout_of(data_config) -> Layout:
  """The token layout `config.data` (an `audiolm_tokens` dataset) describes."""
  return Layout(data_config.semantic_vocab, data_config.codebook_size, data_config.num_levels,
                data_config.coarse_levels, data_config.semantic_rate_hz,
                data_config.acoustic_rate_hz)


def check_token_datasets(data_config) -> Layout:
  """The layout, after checking that the token datasets hold what it describes (kind,
  vocabulary, levels, frame rate and, when the config names one, the tokenizer fingerprint)."""
  layout = layout_of(data_config)
  semantic, acoustic = _needs(data_config.stage, layout)
  for kind, directory, vocab, rate, needed in (
      ("semantic", data_config.semantic_dir, layout.semantic_vocab, layout.semantic_rate_hz,
       semantic),
      ("acoustic", data_config.acoustic_dir, layout.codebook_size, layout.acoustic_rate_hz,
       acoustic)):
    if not needed:
      continue
    if not directory:
      raise ValueError(f"the {data_config.stage} stage needs config.data.{kind}_dir (a token "
                       "dataset written by launch.extract_tokens)")
    info = token_dataset.read_info(os.path.expanduser(directory))
    expected = data_config.get(f"{kind}_fingerprint")
    field = "semantic_vocab" if kind == "semantic" else "codebook_size"
    problems = []
    if info["kind"] != kind:
      problems.append(f"it holds {info['kind']} tokens")
    if expected and info["fingerprint"] != expected:
      problems.append(f"its tokenizer is {info['fingerprint']}, the config expects {expected} "
                      "(re-extract the tokens with launch.extract_tokens)")
    if info["vocab_size"] != vocab:
      problems.append(f"its vocabulary is {info['vocab_size']}, config.data.{field}={vocab}")
    if kind == "acoustic" and info["levels"] < layout.num_levels:
      problems.append(f"it has {info['levels']} RVQ levels, the config needs "
                      f"{layout.num_levels}")
    if abs(info["frame_rate_hz"] - rate) > 1e-6:
      problems.append(f"its frame rate is {info['frame_rate_hz']} Hz, "
                      f"config.data.{kind}_rate_hz={rate}")
    if problems:
      raise token_dataset.TokenDatasetError(f"{directory}: " + "; ".join(problems))
  return layout


def _needs(stage: str, layout: Layout) -> tuple[bool, bool]:
  """(semantic tokens needed, acoustic tokens needed) by a stage."""
  return stage == "semantic" or (stage == "coarse" and layout.semantic_vocab > 0), \
      stage != "semantic"


class StageSource:
  """Utterance i of a split -> (semantic tokens [n] or None, codes [frames, Q] or None)."""

  def __init__(self, data_config, split: str, layout: Layout):
    semantic, acoustic = _needs(data_config.stage, layout)
    self.semantic = self.acoustic = None
    if semantic:
      self.semantic = token_dataset.open_split(
          os.path.expanduser(data_config.semantic_dir), split,
          data_config.get("semantic_fingerprint") or None)
    if acoustic:
      self.acoustic = token_dataset.open_split(
          os.path.expanduser(data_config.acoustic_dir), split,
          data_config.get("acoustic_fingerprint") or None)
    if self.semantic is not None and self.acoustic is not None and \
        len(self.semantic) != len(self.acoustic):
      raise token_dataset.TokenDatasetError(
          f"split {split!r}: {len(self.semantic)} semantic but {len(self.acoustic)} acoustic "
          "utterances: extract both from the same dataset and splits")

  def __len__(self) -> int:
    return len(self.semantic if self.semantic is not None else self.acoustic)

  def __getitem__(self, i: int):
    semantic = None if self.semantic is None else self.semantic[i]["tokens"][:, 0]
    codes = None if self.acoustic is None else self.acoustic[i]["tokens"]
    return semantic, codes


def _window_seconds(data_config) -> float:
  """The window of an acoustic stage (coarse or fine), in seconds."""
  return data_config.coarse_seconds if data_config.stage == "coarse" else \
      data_config.fine_seconds


def _semantic_sequence(data_config, layout: Layout, semantic: np.ndarray) -> np.ndarray:
  """An utterance's semantic stage sequence: SEP (its start: what unconditional generation
  starts from), then its tokens (deduplicated unless the config says not to)."""
  tokens = deduplicate(semantic) if data_config.deduplicate else np.asarray(semantic)
  return np.concatenate([[layout.sep], tokens]).astype(np.int32)


def stage_examples(data_config, layout: Layout, semantic, codes, start: int | None = None,
                   rng: np.random.Generator | None = None) -> dict:
  """The stage's example from one utterance's tokens, in the stage model's ids: the window at
  `start` (frames of the stage's unit: semantic tokens after deduplication, or acoustic
  frames), else a random one."""
  example = _global_example(data_config, layout, semantic, codes, start, rng)
  example["tokens"] = stage_vocab(data_config, layout).to_model(example["tokens"])
  return example


def _global_example(data_config, layout: Layout, semantic, codes, start: int | None,
                    rng: np.random.Generator | None) -> dict:
  """`stage_examples` in global ids."""
  stage = data_config.stage
  pick = lambda total, size: start if start is not None else window(rng, total, size)
  if stage == "semantic":
    tokens = _semantic_sequence(data_config, layout, semantic)
    length = data_config.semantic_tokens
    at = pick(len(tokens), length)
    return layout.semantic_example(tokens[at:at + length], length)
  seconds = _window_seconds(data_config)
  frames = round(seconds * layout.acoustic_rate_hz)
  at = pick(len(codes), frames)
  codes = codes[at:at + frames, :layout.num_levels]
  if stage == "fine":
    return layout.fine_example(codes, seconds)
  prefix = np.zeros((0,), np.int32)
  if layout.semantic_vocab:
    a, b = semantic_span(layout, at, len(codes))
    prefix = semantic[a:b]
    prefix = deduplicate(prefix) if data_config.deduplicate else prefix
  return layout.coarse_example(prefix, codes, seconds)


def num_windows(data_config, layout: Layout, semantic, codes) -> int:
  """Consecutive windows covering an utterance (for evaluation)."""
  if data_config.stage == "semantic":
    tokens = _semantic_sequence(data_config, layout, semantic)
    return max(1, math.ceil((len(tokens) - 1) / max(data_config.semantic_tokens - 1, 1)))
  seconds = _window_seconds(data_config)
  return max(1, math.ceil(len(codes) / round(seconds * layout.acoustic_rate_hz)))


def window_start(data_config, layout: Layout, k: int) -> int:
  """Start of the k-th consecutive window (semantic windows overlap by one token, so every
  token but the utterance's first is a target once)."""
  if data_config.stage == "semantic":
    return k * (data_config.semantic_tokens - 1)
  seconds = _window_seconds(data_config)
  return k * round(seconds * layout.acoustic_rate_hz)


def sequence_length(data_config, layout: Layout) -> int:
  return layout.sequence_length(data_config.stage, data_config.semantic_tokens,
                                data_config.coarse_seconds, data_config.fine_seconds)


def train_dataset(data_config, *, seed: int, process_index: int, process_count: int):
  """Infinite shuffled batches {'tokens': int32 [b, L], 'loss_mask': float32 [b, L]}: one random
  window per utterance visit (as `pipeline.train_dataset` crops audio)."""
  import grain

  layout = check_token_datasets(data_config)
  source = StageSource(data_config, data_config.train_split, layout)
  if len(source) < process_count:
    raise ValueError(f"{len(source)} utterances, fewer than the {process_count} processes")

  def example(index, rng):
    return stage_examples(data_config, layout, *source[index], rng=rng)

  ds = grain.MapDataset.range(len(source))[process_index::process_count]
  ds = ds.seed(seed).shuffle().repeat().random_map(example)
  read = grain.ReadOptions(num_threads=data_config.get("num_threads", 2), prefetch_buffer_size=8)
  return ds.to_iter_dataset(read).batch(data_config.batch_size // process_count,
                                        drop_remainder=True)


def eval_batches(data_config, split: str, *, max_examples: int | None, batch_size: int,
                 process_index: int, process_count: int):
  """Every window of the first `max_examples` utterances, in order; the last batch padded with
  all-PAD rows (loss_mask 0)."""
  layout = check_token_datasets(data_config)
  source = StageSource(data_config, split, layout)
  num = len(source) if max_examples is None else min(len(source), max_examples)
  rows = []
  for index in range(process_index, num, process_count):
    semantic, codes = source[index]
    for k in range(num_windows(data_config, layout, semantic, codes)):
      rows.append(stage_examples(data_config, layout, semantic, codes,
                                 start=window_start(data_config, layout, k)))
      if len(rows) == batch_size:
        yield {key: np.stack([r[key] for r in rows]) for key in rows[0]}
        rows = []
  if rows:
    length = sequence_length(data_config, layout)
    pad = {"tokens": stage_vocab(data_config, layout).to_model(np.full(length, layout.pad)),
           "loss_mask": np.zeros(length, np.float32)}
    rows += [pad] * (batch_size - len(rows))
    yield {key: np.stack([r[key] for r in rows]) for key in rows[0]}


def example_batch(data_config, rows: int) -> dict:
  """All-PAD rows of the stage's shape (for initialising the model without reading data)."""
  layout = layout_of(data_config)
  length = sequence_length(data_config, layout)
  pad = stage_vocab(data_config, layout).to_model(layout.pad)
  return {"tokens": np.full((rows, length), pad, np.int32),
          "loss_mask": np.zeros((rows, length), np.float32)}
