"""A trained SoundStream codec at each of its bitrates, against Opus at the same bitrates.

For each number of quantizer levels nq, every utterance of the split (whole, at the codec's
rate) is encoded and decoded with nq levels, i.e. at frame_rate * nq * log2(codebook_size)
bits per second, and scored with `codec_metrics` against the original; Opus encodes the same
utterances at the setting whose achieved bitrate is closest to each of those bitrates (6 kbps
at least: see `opus`). The table goes to WORKDIR/eval_<split>.json and .md:

  python -m launch.evaluate --workdir=runs/ss [--num_quantizers=1,2,4,8] [--max_examples=64]

Runs on one process: the codec, mel distance and SI-SNR on the default jax device, the rest
(MR-STFT, PESQ, STOI, Opus) on the CPU.
"""

import collections
import json
import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.data import pipeline
from audiojax.eval import codec_metrics, opus
from audiojax.models import rvq
from audiojax.sample import codec
from audiojax.train import trainer

COLUMNS = (("kbps", "kbps"), ("mel_distance", "mel"), ("mr_stft", "MR-STFT"),
           ("si_snr_db", "SI-SNR dB"), ("pesq", "PESQ"), ("stoi", "STOI"))


def load_utterances(data_config, split: str, max_examples: int | None) -> list[np.ndarray]:
  """The first `max_examples` utterances of `split` (all when None), float32 [samples] each at
  `data_config.sample_rate_hz`."""
  source = pipeline.get_source(data_config, split)
  num = len(source) if max_examples is None else min(len(source), max_examples)
  utterances = [np.asarray(source.decode(source.records[i])["audio"], np.float32)
                for i in range(num)]
  if not utterances:
    raise ValueError(f"split {split!r} of {data_config.name} has no utterances")
  return utterances


def reconstruct(model, variables, utterances: Sequence[np.ndarray], levels: Sequence[int],
                batch_size: int = 8, max_batch_samples: int = 1 << 21
                ) -> dict[int, list[np.ndarray]]:
  """{nq: [each utterance encoded and decoded with nq quantizer levels]}.

  Utterances are zero-padded to a power of two of frames and batched by length: the codec is
  causal, so padding after the end changes nothing before it (as in `sample.codec`). Codes
  are computed once with every level; nq levels are their first nq (residual VQ is greedy),
  and `rvq.ResidualVQ.decode` skips the levels set to -1, so each length compiles one encoder
  and one decoder whatever the levels.
  """
  hop = model.hop_samples
  encode = jax.jit(lambda v, a: model.apply(v, a, method=model.encode))
  decode = jax.jit(lambda v, c, nq: model.apply(
      v, jnp.where(jnp.arange(c.shape[-1]) < nq, c, -1), method=model.decode))
  by_length = collections.defaultdict(list)
  for i, audio in enumerate(utterances):
    frames = max(1, -(-audio.shape[0] // hop))
    by_length[hop * (1 << (frames - 1).bit_length())].append(i)
  out = {nq: [None] * len(utterances) for nq in levels}
  for length, indices in sorted(by_length.items()):
    rows = int(np.clip(max_batch_samples // length, 1, batch_size))
    for start in range(0, len(indices), rows):
      chunk = indices[start:start + rows]
      batch = np.zeros((rows, length), np.float32)
      for row, i in enumerate(chunk):
        batch[row, :utterances[i].shape[0]] = utterances[i]
      codes = encode(variables, jnp.asarray(batch))
      for nq in levels:
        audio = np.asarray(decode(variables, codes, nq))
        for row, i in enumerate(chunk):
          out[nq][i] = audio[row, :utterances[i].shape[0]]
  return out


def _row(system: str, scores: list[dict[str, float]], **fields) -> dict:
  """Means over utterances (PESQ and STOI over those they could score)."""
  row = {"system": system, **fields}
  for name in codec_metrics.METRICS:
    values = np.array([s[name] for s in scores], np.float64)
    scored = ~np.isnan(values)
    row[name] = float(values[scored].mean()) if scored.any() else float("nan")
    if name in ("pesq", "stoi"):
      row[f"{name}_unscored"] = int((~scored).sum())
  return row


def _check_levels(levels: Sequence[int] | None, num_quantizers: int) -> list[int]:
  levels = list(range(1, num_quantizers + 1)) if not levels else sorted(set(levels))
  bad = [nq for nq in levels if not 1 <= nq <= num_quantizers]
  if bad:
    raise ValueError(f"--num_quantizers={','.join(map(str, bad))}: this codec has 1 to "
                     f"{num_quantizers} levels")
  return levels


def evaluate(workdir: str, split: str = "test", max_examples: int | None = None,
             num_quantizers: Sequence[int] | None = None, dataset: str | None = None,
             opus_baseline: bool = True, speech_metrics: bool | None = None,
             batch_size: int = 8, dtype: str | None = None) -> dict:
  """The codec-vs-Opus table of a soundstream workdir's latest checkpoint (see the module
  docstring); also written to WORKDIR/eval_<split>.json and .md.

  num_quantizers: the levels to evaluate (default 1 ... all). dataset: another dataset name
  than the training one (`pipeline.get_source` names). speech_metrics: PESQ and STOI (default:
  unless the dataset's name says music). dtype: the codec's compute dtype (None: as trained;
  `codec.with_dtype`); another than float32 names the files eval_<split>_<dtype>.*.
  """
  config = trainer.load_config(workdir)
  if config.model.name != "soundstream":
    raise ValueError(f"{workdir} holds a {config.model.name} model, not a soundstream codec")
  model, _, variables, step = trainer.restore_variables(config, workdir)
  model, variables = codec.with_dtype(model, variables, dtype)
  levels = _check_levels(num_quantizers, model.num_quantizers)
  data_config = config.data.copy_and_resolve_references()
  data_config.sample_rate_hz = model.sample_rate_hz
  data_config.name = dataset or data_config.name
  speech = not pipeline.is_music(data_config.name) if speech_metrics is None else speech_metrics
  rate = model.sample_rate_hz
  utterances = load_utterances(data_config, split, max_examples)
  reconstructions = reconstruct(model, variables, utterances, levels, batch_size)

  frame_rate_hz = rate / model.hop_samples
  rows, opus_targets = [], collections.defaultdict(list)
  for nq in levels:
    kbps = rvq.bitrate_bps(frame_rate_hz, nq, model.codebook_size) / 1000
    scores = [codec_metrics.compute(ref, est, rate, speech)
              for ref, est in zip(utterances, reconstructions[nq], strict=True)]
    rows.append(_row("soundstream", scores, num_quantizers=nq, kbps=kbps))
    opus_targets[round(max(kbps, opus.MIN_KBPS), 3)].append(nq)  # Opus goes no lower.
  seconds = sum(u.shape[0] for u in utterances) / rate
  for target, matched in sorted(opus_targets.items()) if opus_baseline else []:
    scores, bits, file_bits = [], 0.0, 0.0
    for audio in utterances:
      decoded, encoded = opus.roundtrip(audio, rate, target)
      scores.append(codec_metrics.compute(audio, decoded, rate, speech))
      bits += encoded.kbps * encoded.seconds
      file_bits += encoded.file_kbps * encoded.seconds
    rows.append(_row("opus", scores, target_kbps=target, matches_num_quantizers=matched,
                     kbps=bits / seconds, file_kbps=file_bits / seconds))

  result = {"split": split, "step": step, "dataset": data_config.name, "sample_rate_hz": rate,
            "num_utterances": len(utterances), "seconds": seconds,
            "speech_metrics": speech, "dtype": jnp.dtype(model.dtype).name, "rows": rows}
  stem = os.path.join(workdir, f"eval_{split}" + ("" if dtype in (None, "float32")
                                                  else f"_{dtype}"))
  with open(stem + ".json", "w") as f:
    json.dump(_nan_to_none(result), f, indent=2)
  with open(stem + ".md", "w") as f:
    f.write(markdown(result) + "\n")
  return result


def _nan_to_none(value):
  """NaN is not JSON: unscored metrics are written as null."""
  if isinstance(value, dict):
    return {k: _nan_to_none(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_nan_to_none(v) for v in value]
  return None if isinstance(value, float) and math.isnan(value) else value


def markdown(result: dict) -> str:
  """The result as a markdown table (one row per codec level and per Opus target)."""
  lines = [f"{result['dataset']} {result['split']}: {result['num_utterances']} utterances, "
           f"{result['seconds']:.1f} s at {result['sample_rate_hz']} Hz; codec step "
           f"{result['step']}. Lower is better for mel and MR-STFT, higher for the rest; "
           "Opus kbps are achieved (Opus packets; whole file in brackets).", "",
           "| system | " + " | ".join(title for _, title in COLUMNS) + " |",
           "|---" * (len(COLUMNS) + 1) + "|"]
  for row in result["rows"]:
    if row["system"] == "opus":
      name = f"Opus (target {row['target_kbps']:g} kbps)"
    else:
      name = f"SoundStream nq={row['num_quantizers']}"
    cells = []
    for key, _ in COLUMNS:
      value = row[key]
      cells.append("n/a" if value is None or math.isnan(value) else f"{value:.2f}")
    if row["system"] == "opus":
      cells[0] += f" ({row['file_kbps']:.2f})"
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)
