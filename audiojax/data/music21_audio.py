"""`music21_audio`: Bach chorales from music21's bundled corpus, synthesized offline.

Each example is the first `excerpt_seconds` of one chorale (all parts mixed) played by one
instrument: a Karplus-Strong plucked string, an additive organ with an ADSR envelope, or a
piano-like tone with inharmonic, exponentially decaying partials. All synthesis is numpy;
nothing is downloaded and no TensorFlow is needed. Every piece is rendered in every
instrument. Tempo comes from the score's metronome marks, else `default_bpm` (the chorales
have none); ties are merged, repeats are not expanded. Audio is int16 at the config's
`sample_rate_hz`, peak-normalised to -3 dBFS. Note labels are [start, end) in samples (the
score's note-off; the sound rings on for up to `RELEASE_S`), clipped to the audio.
Features: `audio` int16 [samples] (a plain Tensor, as in espeak_speech, so reading needs no
TensorFlow; the rate is `info.metadata["sample_rate_hz"]`), `piece`, `instrument`, `notes`
{pitch_midi, start, end, velocity, part} [notes] and `seconds`.

Splits are by piece: a hash of the corpus path puts 10% of the chorales in `test`, 10% in
`validation` and the rest in `train`, so a piece has the same split in every config; a
config takes the first pieces of each split in a seeded hash order. Deterministic: the same
config gives byte-identical audio (Karplus-Strong noise bursts are seeded by the config
seed, the piece id and the note's index in the piece).
"""

import dataclasses
import hashlib
import os
import zlib
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from audiojax.data import builders
from audiojax.data.notes import midi_to_hz

INSTRUMENTS = ("plucked_string", "organ", "piano")
SPLITS = ("train", "validation", "test")
RELEASE_S = 0.3  # Sound after a note's score end (release / ring-out), seconds.
PEAK_DBFS = -3.0
_TAIL_S = 1.0  # Audio kept after the last note ends when a piece is shorter than the excerpt.


@dataclasses.dataclass
class Music21AudioConfig(tfds.core.BuilderConfig):
  """Pieces per split, excerpt length and sample rate.

  Attributes:
    train_pieces, validation_pieces, test_pieces: chorales in each split (each rendered in
      every instrument).
    excerpt_seconds: audio per example (the start of the piece; shorter pieces are whole).
    sample_rate_hz: audio and note-label rate.
    default_bpm: quarter notes per minute for scores without a metronome mark.
    default_velocity: MIDI velocity of notes without one.
    seed: orders the pieces within a split and seeds the Karplus-Strong bursts.
  """

  train_pieces: int = 0
  validation_pieces: int = 0
  test_pieces: int = 0
  excerpt_seconds: float = 20.0
  sample_rate_hz: int = 16000
  default_bpm: float = 90.0
  default_velocity: int = 80
  seed: int = 0


_TINY = Music21AudioConfig(
    name="tiny", description="For tests: 1 chorale per split x 3 instruments, 4 s each.",
    train_pieces=1, validation_pieces=1, test_pieces=1, excerpt_seconds=4.0,
)
_DEFAULT = Music21AudioConfig(
    name="default", description="14/3/3 chorales x 3 instruments, 20 s each (20 min), 16 kHz.",
    train_pieces=14, validation_pieces=3, test_pieces=3,
)
_DEFAULT_24KHZ = dataclasses.replace(
    _DEFAULT, name="default_24khz", description="The default pieces at 24 kHz.",
    sample_rate_hz=24000,
)


# ----------------------------------------------------------------------------- synthesis


def comb_filter(excitation: np.ndarray, num_samples: int, loop_samples: float,
                gain: float) -> np.ndarray:
  """Karplus-Strong feedback loop over `excitation` [..., n]: [..., num_samples] float64.

  y[n] = x[n] + gain * (c0 y[n-P] + c1 y[n-P-1] + c2 y[n-P-2]): a delay line of P samples
  with the two-point averaging filter and a linear-interpolation fractional delay, so the
  loop delays `loop_samples` = P + 0.5 + frac in all (the period: sample rate / f0).

  Vectorised over blocks (and all leading batch dimensions): a block of P samples depends
  only on earlier blocks. Once the excitation is over, the loop unrolled m times,
  y[n] = (h^{*m} * y)[n - mP] (h = the three taps), gives blocks of mP ~ 512 samples at once.
  """
  delay = loop_samples - 0.5
  period = int(np.floor(delay))
  if period < 1:
    raise ValueError(f"loop of {loop_samples} samples is too short (f0 above rate / 1.5)")
  frac = delay - period
  taps = gain * np.array([0.5 * (1 - frac), 0.5, 0.5 * frac])  # On y[n-P], y[n-P-1], y[n-P-2].
  unroll = max(1, 512 // period)
  taps_unrolled = taps
  for _ in range(unroll - 1):
    taps_unrolled = np.convolve(taps_unrolled, taps)  # On y[n-mP], ..., y[n-mP-2m].
  pad = unroll * (period + 2)
  batch, burst = excitation.shape[:-1], min(excitation.shape[-1], num_samples)
  y = np.zeros((*batch, pad + num_samples))
  y[..., pad:pad + burst] = excitation[..., :burst]
  end = pad + num_samples
  free = min(pad + burst + (unroll - 1) * (period + 2), end)  # Later y[n] ignore x.
  for start in range(pad, free, period):
    stop = min(start + period, free)
    a, b = start - period, stop - period  # One period back.
    y[..., start:stop] += (taps[0] * y[..., a:b] + taps[1] * y[..., a - 1:b - 1]
                           + taps[2] * y[..., a - 2:b - 2])
  step, width = unroll * period, taps_unrolled.shape[0]
  for start in range(free, end, step):
    stop = min(start + step, end)
    window = np.lib.stride_tricks.sliding_window_view(
        y[..., start - step - width + 1:stop - step], width, axis=-1)
    y[..., start:stop] = window @ taps_unrolled[::-1]
  return y[..., pad:]


def plucked_string(f0_hz: float, num_samples: int, sample_rate_hz: int,
                   rngs: list[np.random.Generator]) -> np.ndarray:
  """Karplus-Strong plucks of one string [len(rngs), num_samples], each from a one-period
  noise burst drawn from its rng; t60 ~ 4 s at 110 Hz, ~f0^-1/2."""
  loop = sample_rate_hz / f0_hz
  bursts = np.stack([rng.uniform(-1.0, 1.0, int(round(loop))) for rng in rngs])
  t60_s = 4.0 * np.sqrt(110.0 / f0_hz)
  gain = 10.0 ** (-3.0 / (t60_s * f0_hz))  # -60 dB after t60_s (f0 * t60_s round trips).
  return comb_filter(bursts - bursts.mean(axis=1, keepdims=True), num_samples, loop, gain)


def _damp(audio: np.ndarray, note_samples: int, time_constant_s: float,
          sample_rate_hz: int) -> np.ndarray:
  """`audio` [samples] times exp(-t / time_constant_s) after `note_samples` (in place)."""
  t = np.arange(audio.shape[0] - note_samples) / sample_rate_hz
  audio[note_samples:] *= np.exp(-t / time_constant_s)
  return audio


def _sines(freqs_hz: np.ndarray, num_samples: int, sample_rate_hz: int) -> np.ndarray:
  """sin(2 pi f t) [partials, num_samples] in float32 (10x faster than float64; the phase
  error stays below 1e-3 rad for a few seconds of the lower partials)."""
  t = np.arange(num_samples, dtype=np.float32) / np.float32(sample_rate_hz)
  return np.sin((2 * np.pi * freqs_hz).astype(np.float32)[:, None] * t)


def organ(f0_hz: float, note_samples: int, num_samples: int, sample_rate_hz: int) -> np.ndarray:
  """Drawbar-like harmonics 1, 2, 3, 4, 6, 8 under an ADSR envelope (sustains while held)."""
  harmonics = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
  amps = np.array([1.0, 0.55, 0.3, 0.25, 0.12, 0.08])
  freqs = harmonics * f0_hz
  keep = freqs < 0.45 * sample_rate_hz  # No aliasing.
  tone = amps[keep] @ _sines(freqs[keep], num_samples, sample_rate_hz)
  attack, decay, sustain, release = 0.02, 0.08, 0.75, 0.08
  hold = max(note_samples / sample_rate_hz, attack + decay)
  envelope = np.interp(np.arange(num_samples) / sample_rate_hz,
                       [0.0, attack, attack + decay, hold, hold + release],
                       [0.0, 1.0, sustain, sustain, 0.0])
  return tone * envelope


def piano(f0_hz: float, note_samples: int, num_samples: int, sample_rate_hz: int,
          velocity: int = 100) -> np.ndarray:
  """Stiff-string partials f_n = n f0 sqrt(1 + B n^2), each decaying exponentially (upper
  partials faster, low notes longer); louder notes are brighter; dampers at the note's end."""
  n = np.arange(1, 17, dtype=np.float64)
  pitch = 12 * np.log2(f0_hz / 440.0) + 69
  inharmonicity = 1.5e-4 * 2.0 ** ((pitch - 60) / 24)
  freqs = n * f0_hz * np.sqrt(1 + inharmonicity * n**2)
  brightness = 0.25 + 0.35 * velocity / 127
  amps = np.exp(-(n - 1) / (4 * brightness)) / n
  tau_s = 1.5 * (261.63 / f0_hz) ** 0.6 / (1 + 0.4 * (n - 1))
  keep = (freqs < 0.45 * sample_rate_hz) & (amps > 1e-3)  # No aliasing; audible.
  t = np.arange(num_samples, dtype=np.float32) / np.float32(sample_rate_hz)
  decays = np.exp(-t / tau_s[keep, None].astype(np.float32))
  tone = amps[keep] @ (decays * _sines(freqs[keep], num_samples, sample_rate_hz))
  tone = tone * np.minimum(t / 0.003, 1.0)  # 3 ms attack.
  return _damp(tone.astype(np.float64), note_samples, 0.06, sample_rate_hz)


def render_pitch(instrument: str, pitch_midi: int, note_samples: list[int],
                 velocities: list[int], sample_rate_hz: int,
                 rngs: list[np.random.Generator]) -> list[np.ndarray]:
  """Notes of one pitch, each [note_samples[i] + RELEASE_S * rate] float64 with peak about
  velocities[i] / 127. Plucks share one batched string loop (rngs[i] draws note i's burst);
  organ and piano notes of equal length and velocity are rendered once."""
  f0_hz = midi_to_hz(pitch_midi)
  release = int(round(RELEASE_S * sample_rate_hz))
  if instrument == "plucked_string":
    plucks = plucked_string(f0_hz, max(note_samples) + release, sample_rate_hz, rngs)
    return [_damp(pluck[:n + release] * (v / 127), n, 0.04, sample_rate_hz)
            for pluck, n, v in zip(plucks, note_samples, velocities, strict=True)]
  if instrument not in INSTRUMENTS:
    raise ValueError(f"unknown instrument {instrument!r}; known: {', '.join(INSTRUMENTS)}")
  sounds = {}
  for n, v in zip(note_samples, velocities, strict=True):
    if (n, v) not in sounds:
      if instrument == "organ":
        tone = organ(f0_hz, n, n + release, sample_rate_hz) / 2.3  # Peak ~1.
      else:
        tone = piano(f0_hz, n, n + release, sample_rate_hz, v) / 1.5  # Peak ~1.
      sounds[n, v] = tone * (v / 127)
  return [sounds[n, v] for n, v in zip(note_samples, velocities, strict=True)]


def render_note(instrument: str, pitch_midi: int, duration_s: float, sample_rate_hz: int,
                velocity: int = 100, rng: np.random.Generator | None = None) -> np.ndarray:
  """One note [round(duration_s * rate) + round(RELEASE_S * rate)] float64."""
  rng = rng if rng is not None else np.random.default_rng(0)
  [audio] = render_pitch(instrument, pitch_midi, [int(round(duration_s * sample_rate_hz))],
                         [velocity], sample_rate_hz, [rng])
  return audio


def render(notes: dict[str, np.ndarray], instrument: str, num_samples: int,
           sample_rate_hz: int, seed: int, piece: str) -> np.ndarray:
  """Mixes `notes` (pitch_midi, start, end, velocity, index: [notes]) into int16 audio
  [num_samples], peak-normalised to PEAK_DBFS. `index` (the note's index in the whole piece)
  seeds its Karplus-Strong burst with `seed` and the piece id."""
  mix = np.zeros(num_samples)
  piece_hash = zlib.crc32(piece.encode())
  for pitch in np.unique(notes["pitch_midi"]):
    group = np.flatnonzero(notes["pitch_midi"] == pitch)
    rngs = [np.random.default_rng([seed, piece_hash, int(notes["index"][i])]) for i in group]
    lengths = (notes["end"][group] - notes["start"][group]).tolist()
    sounds = render_pitch(instrument, int(pitch), lengths, notes["velocity"][group].tolist(),
                          sample_rate_hz, rngs)
    for start, sound in zip(notes["start"][group], sounds, strict=True):
      sound = sound[:num_samples - start]
      mix[start:start + sound.shape[0]] += sound
  peak = np.abs(mix).max()
  if peak == 0:
    raise ValueError(f"{piece}: silent rendering ({len(notes['start'])} notes)")
  mix *= 10 ** (PEAK_DBFS / 20) / peak
  return np.round(mix * 32767).astype(np.int16)


# ----------------------------------------------------------------------------- scores


def _hash(text: str) -> int:
  return int(hashlib.sha1(text.encode()).hexdigest(), 16)


def piece_split(piece: str) -> str:
  """The split of a corpus path, e.g. "bach/bwv66.6": 10% test, 10% validation, by hash."""
  bucket = _hash(f"music21_audio:{piece}") % 10
  return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def list_chorales() -> list[str]:
  """The Bach chorales in music21's corpus, as sorted corpus paths ("bach/bwv10.7", ...)."""
  from music21 import corpus

  return sorted(set(corpus.chorales.Iterator(returnType="filename")))


def select_pieces(config: Music21AudioConfig) -> dict[str, list[str]]:
  """Split -> its first pieces in the config's seeded hash order."""
  ordered = sorted(list_chorales(), key=lambda p: _hash(f"{config.seed}:{p}"))
  counts = {"train": config.train_pieces, "validation": config.validation_pieces,
            "test": config.test_pieces}
  return {s: [p for p in ordered if piece_split(p) == s][:counts[s]] for s in SPLITS}


def read_notes(piece: str, default_bpm: float = 90.0,
               default_velocity: int = 80) -> dict[str, np.ndarray]:
  """A corpus piece's notes (`bach/bwv66.6`), or a score file's (MusicXML, MIDI, ... as music21
  reads them), sorted by (start, pitch, part): pitch_midi, part, velocity (int32), start_s and
  end_s (float64 seconds), start_q and end_q (float64 quarter notes) [notes]. Ties are merged;
  chords split. ValueError for a piece that is neither a file nor in the corpus."""
  from music21 import converter, corpus, tempo

  if os.path.isfile(piece):
    paths = piece
  else:
    try:
      paths = corpus.getWork(piece)
    except Exception as err:  # music21 raises its own CorpusException.
      raise ValueError(f"{piece!r} is neither a score file nor a music21 corpus work (e.g. "
                       f"bach/bwv66.6): {err}") from err
    if not paths:
      raise ValueError(f"{piece!r} is neither a score file nor a music21 corpus work")
  if isinstance(paths, list):  # Several encodings of one work: prefer MusicXML.
    paths = sorted(paths, key=lambda p: (p.suffix not in (".mxl", ".xml"), str(p)))[0]
  parser = converter.Converter()
  try:
    parser.parseFileNoPickle(paths)  # The pickle cache would write outside data_dir.
  except Exception as err:  # music21's parsers raise many kinds.
    raise ValueError(f"could not read the score {paths}: {err}") from err
  score = parser.stream
  score.stripTies(inPlace=True)  # A copy would take longer than the parse.
  if score.recurse().getElementsByClass(tempo.MetronomeMark):
    bounds = score.metronomeMarkBoundaries()
    knots_q = [b[0] for b in bounds] + [bounds[-1][1]]
    per_quarter = [60.0 / (m.getQuarterBPM() or default_bpm) for _, _, m in bounds]
    knots_s = np.concatenate([[0.0], np.cumsum([(e - s) * spq for (s, e, _), spq in zip(
        bounds, per_quarter, strict=True)])])
  else:
    knots_q, knots_s = [0.0, 1.0], [0.0, 60.0 / default_bpm]
  rows = []
  for part_index, part in enumerate(score.parts):
    for element in part.flatten().notes:
      quarters = float(element.duration.quarterLength)
      if quarters <= 0:  # Grace notes.
        continue
      velocity = element.volume.velocity or default_velocity
      offset = float(element.offset)
      for pitch in element.pitches:
        rows.append((offset, pitch.midi, part_index, offset + quarters, velocity))
  if not rows:
    raise ValueError(f"{piece}: no notes")
  rows.sort()
  offsets, pitches, parts, ends, velocities = (np.array(c) for c in zip(*rows, strict=True))

  def seconds(q):  # Piecewise-linear in quarters; extrapolated at the last tempo.
    slope = (knots_s[-1] - knots_s[-2]) / (knots_q[-1] - knots_q[-2])
    return np.where(q <= knots_q[-1], np.interp(q, knots_q, knots_s),
                    knots_s[-1] + (q - knots_q[-1]) * slope)

  return {"pitch_midi": pitches.astype(np.int32), "part": parts.astype(np.int32),
          "velocity": velocities.astype(np.int32), "start_s": seconds(offsets),
          "end_s": seconds(ends), "start_q": offsets.astype(np.float64),
          "end_q": ends.astype(np.float64)}


def excerpt(notes: dict[str, np.ndarray], seconds: float,
            sample_rate_hz: int) -> tuple[dict[str, np.ndarray], int]:
  """(notes in samples, clipped to the audio, with `index` into the piece; num_samples):
  the first `seconds`, or the whole piece and _TAIL_S more if it is shorter."""
  start = np.round(notes["start_s"] * sample_rate_hz).astype(np.int64)
  end = np.round(notes["end_s"] * sample_rate_hz).astype(np.int64)
  num_samples = int(min(round(seconds * sample_rate_hz),
                        end.max() + round(_TAIL_S * sample_rate_hz)))
  keep = (start < num_samples) & (end > start)
  return {"pitch_midi": notes["pitch_midi"][keep], "start": start[keep],
          "end": np.minimum(end[keep], num_samples), "velocity": notes["velocity"][keep],
          "part": notes["part"][keep], "index": np.flatnonzero(keep)}, num_samples


# ----------------------------------------------------------------------------- builder


class Music21Audio(tfds.core.GeneratorBasedBuilder):
  """Bach chorales from the music21 corpus, synthesized in several timbres, with notes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [_TINY, _DEFAULT, _DEFAULT_24KHZ]
  DEFAULT_CONFIG_NAME = "default"
  code_path = epath.Path(__file__)  # As in espeak_speech: avoids TFDS's importlib_resources.

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
            "piece": tfds.features.Text(),
            "instrument": tfds.features.ClassLabel(names=INSTRUMENTS),
            "notes": tfds.features.Sequence({
                "pitch_midi": np.int32, "start": np.int64, "end": np.int64,
                "velocity": np.int32, "part": np.int32,
            }),
            "seconds": np.float32,
        }),
        metadata=tfds.core.MetadataDict(sample_rate_hz=self.builder_config.sample_rate_hz),
        homepage="https://github.com/cuthbertLab/music21",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
    del dl_manager  # Nothing to download.
    pieces = select_pieces(self.builder_config)
    return {split: self._generate_examples(pieces[split]) for split in SPLITS}

  def _generate_examples(self, pieces: list[str]) -> Iterator[tuple[str, dict]]:
    """Yields (piece/instrument, example): each piece parsed once, played by each instrument."""
    config = self.builder_config
    rate = config.sample_rate_hz
    for piece in pieces:
      notes = read_notes(piece, config.default_bpm, config.default_velocity)
      events, num_samples = excerpt(notes, config.excerpt_seconds, rate)
      logging.info("music21_audio/%s: %s, %d notes, %.1f s", config.name, piece,
                   len(events["start"]), num_samples / rate)
      labels = {k: events[k] for k in ("pitch_midi", "start", "end", "velocity", "part")}
      for instrument in INSTRUMENTS:
        audio = render(events, instrument, num_samples, rate, config.seed, piece)
        yield f"{piece}/{instrument}", {
            "audio": audio, "piece": piece, "instrument": instrument, "notes": labels,
            "seconds": np.float32(num_samples / rate),
        }


def prepare(data_dir: str, config: str = "default") -> tfds.core.DatasetBuilder:
  """Builds `music21_audio/<config>` into `data_dir` unless already built; returns the builder."""
  return builders.prepare(Music21Audio, data_dir, config)
