"""The papers' ablations as sweeps of configs: `python -m launch.ablate --sweep=NAME`.

`get_sweep(name) -> {row name: config}`; every row of a sweep shares data, steps and seed, so
its rows differ only in what the ablation varies.

  wavenet  (van den Oord et al., 2016, at CPU scale on the built-in speech corpus; base
           `configs/wavenet.py:unconditional`):
    receptive field: 1, 2 and 3 dilation cycles (dilations 1..256) and a non-dilated stack as
      deep as the base (2 cycles: 18 layers of dilation 1);
    output: the 256-way mu-law softmax vs a mixture of 10 logistics over 16-bit audio (compare
      mu_law_bits_per_sample: the same event for both);
    conditioning: none vs the speaker id vs a speaker vector from 2 s of reference audio of the
      speaker (a jointly trained speaker encoder, `speaker_embedding_dim`; or one trained
      alone first, its own row, and frozen), scored by the speaker probe on samples
      (launch/ablate.py).
  conditioning  (the same three conditionings where samples are speech: `configs/wavenet.py:
           tts`, given each held-out clip's phonemes, durations and pitch-synchronous
           excitation, so rows differ only in what tells the voice: nothing, the speaker id, or
           `tts_cloning`'s speaker vector from 2 s of another utterance of the speaker, that
           vector also trained to name the speaker (`model.speaker_classes`), or from a
           speaker encoder trained alone (`configs/speaker_encoder.py`, its own row) and
           frozen; the unconditional rows' samples are noise-like at CPU scale, which no probe
           can place.)
  vocoder  (the quick start's vocoder, configs/wavenet.py:quickstart, and what makes it voiced):
    log-mel; + the pitch-synchronous excitation; + the samples one period back (1 and 3 taps).
    Scored on resyntheses of held-out clips: speaker probe and pYIN's voiced share.
"""

import importlib.util
import os
import re

import ml_collections

# A row's train.init_from "row:NAME": the run of the sweep's row NAME (launch.ablate trains the
# rows in order, so NAME comes first).
ROW_PREFIX = "row:"


def _config(file: str, variant: str) -> ml_collections.ConfigDict:
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{file}.py")
  spec = importlib.util.spec_from_file_location(f"_{file}_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


def _wavenet(variant: str = "unconditional") -> ml_collections.ConfigDict:
  return _config("wavenet", variant)


def wavenet_sweep(base: str = "unconditional") -> dict[str, ml_collections.ConfigDict]:
  """The rows on `configs/wavenet.py:<base>` (`tiny` for tests)."""
  rows = {}
  for cycles in (1, 2, 3):
    config = _wavenet(base)
    config.model.dilation_cycles = cycles
    rows[f"dilated x{cycles}"] = config
  config = _wavenet(base)
  config.model.dilated = False  # Not in the base config: older runs keep their fingerprint.
  layers = len(wavenet_dilations(config))
  rows[f"non-dilated ({layers} layers)"] = config
  config = _wavenet(base)
  config.model.update(output="mol", num_mixtures=10, log_scale_min=-12.0)
  rows["mixture of logistics"] = config
  config = _wavenet(base)
  config.model.num_speakers = 0
  rows["no speaker conditioning"] = config
  config = _wavenet(base)
  tiny = base == "tiny"
  config.model.update(num_speakers=0, speaker_embedding_dim=4 if tiny else 64,
                      reference_mels=8 if tiny else 40, reference_hop=160)
  config.data.reference_samples = 640 if tiny else 32000
  rows["speaker embedding"] = config
  _add_frozen_encoder_rows(rows, "speaker embedding", "speaker embedding from the frozen encoder",
                           tiny)
  for config in rows.values():
    config.train.update(sample_every=0, num_samples_to_write=0)
  return rows


def wavenet_dilations(config: ml_collections.ConfigDict) -> list[int]:
  """Layers of a WaveNet config: log2(max_dilation) + 1 per cycle."""
  return [0] * (config.model.max_dilation.bit_length() * config.model.dilation_cycles)


def vocoder_sweep(base: str = "unconditional") -> dict[str, ml_collections.ConfigDict]:
  """What makes the quick start's vocoder voiced and intelligible, row by row on the same recipe
  (`tiny` base: the variants' tiny versions): the log-mel alone, plus the pitch-synchronous
  excitation, plus the samples one period back (1 tap, then 3: `vocoder_period`), plus
  amplitude inputs; then LPCNet's prediction from the log-mel envelope, plus the excitation one
  period back (`vocoder_lpc`), then the softmax over the excitation instead of the sample, plus
  a frame network, plus pre-emphasis (the quick start)."""
  tiny = "_tiny" if base == "tiny" else ""
  rows = {"log-mel": _wavenet(f"vocoder{tiny}"),
          "log-mel + excitation": _wavenet(f"vocoder_pitch{tiny}")}
  rows["log-mel + excitation + period input (1 tap)"] = _wavenet(f"vocoder_period{tiny}")
  rows["log-mel + excitation + period input (1 tap)"].model.period_taps = 1
  rows["log-mel + excitation + period input (3 taps: vocoder_period)"] = _wavenet(
      f"vocoder_period{tiny}")
  rows["vocoder_period + amplitude input"] = _wavenet(f"vocoder_period{tiny}")
  rows["vocoder_period + amplitude input"].model.amplitude_input = True
  rows["vocoder_period + LPC from the log-mel"] = _wavenet(f"vocoder_lpc{tiny}")
  rows["vocoder_period + LPC from the log-mel"].model.lpc_period = False
  rows["+ excitation one period back (vocoder_lpc)"] = _wavenet(f"vocoder_lpc{tiny}")
  rows["+ softmax over the excitation"] = _wavenet(f"quickstart{tiny}")
  rows["+ softmax over the excitation"].model.update(condition_layers=0, pre_emphasis=0.0)
  rows["+ frame network"] = _wavenet(f"quickstart{tiny}")
  rows["+ frame network"].model.pre_emphasis = 0.0
  rows["+ pre-emphasis (the quick start)"] = _wavenet(f"quickstart{tiny}")
  for config in rows.values():
    config.train.update(sample_every=0, num_samples_to_write=0)
  return rows


def conditioning_sweep(base: str = "unconditional") -> dict[str, ml_collections.ConfigDict]:
  """Speaker conditioning on the text-to-speech recipe (`tiny` base: its tiny versions): none,
  the speaker id (`tts`), a speaker vector from reference audio (`tts_cloning`), the same with
  its encoder also trained to name the speaker (`speaker_classes`), and with the encoder
  trained alone first (configs/speaker_encoder.py, a row of its own) and kept frozen."""
  tiny = "_tiny" if base == "tiny" else ""
  rows = {"tts: no speaker conditioning": _wavenet(f"tts{tiny}"),
          "tts: speaker id": _wavenet(f"tts{tiny}"),
          "tts: speaker embedding (tts_cloning)": _wavenet(f"tts_cloning{tiny}")}
  rows["tts: no speaker conditioning"].model.num_speakers = 0
  rows["tts: speaker embedding + speaker loss"] = _wavenet(f"tts_cloning{tiny}")
  rows["tts: speaker embedding + speaker loss"].model.update(speaker_classes=16,
                                                             speaker_loss_weight=1.0)
  _add_frozen_encoder_rows(rows, "tts: speaker embedding (tts_cloning)",
                           "tts: speaker embedding from the frozen encoder", bool(tiny))
  for config in rows.values():
    config.train.update(sample_every=0, num_samples_to_write=0)
  return rows


def _add_frozen_encoder_rows(rows: dict[str, ml_collections.ConfigDict], like: str, name: str,
                             tiny: bool) -> None:
  """Two rows: a speaker encoder trained alone (configs/speaker_encoder.py), then row `like`
  (a speaker-embedding row) started from it with the encoder frozen, named `name`."""
  encoder = "speaker encoder (trained alone)"
  rows[encoder] = _config("speaker_encoder", "tiny" if tiny else "quickstart")
  rows[name] = rows[like].copy_and_resolve_references()
  rows[name].train.init_from = ROW_PREFIX + encoder
  rows[name].optimizer.frozen = "speaker_encoder"


def row_key(name: str) -> str:
  """A row's name as a directory name: "dilated x2" -> "dilated_x2"."""
  return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


SWEEPS = {"wavenet": wavenet_sweep, "conditioning": conditioning_sweep,
          "vocoder": vocoder_sweep}


def get_sweep(name: str, base: str = "unconditional") -> dict[str, ml_collections.ConfigDict]:
  if name not in SWEEPS:
    raise ValueError(f"unknown sweep {name!r}: use one of {', '.join(SWEEPS)}")
  return SWEEPS[name](base)
