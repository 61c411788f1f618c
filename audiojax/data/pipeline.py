"""One input pipeline for every model: a dataset -> random fixed-length crops -> batches.

Datasets are named in the config (`config.data.name`):
  - `espeak_speech` or `espeak_speech/large`: the built-in corpus (built on first use);
  - `music21_audio` or `music21_audio/<config>`: synthesized Bach chorales (built on first
    use); `speaker` is the instrument;
  - `tfds:NAME` (e.g. `tfds:ljspeech`, `tfds:librispeech`, `tfds:vctk`): any TFDS audio
    dataset already prepared in `data_dir` (reading TFDS `Audio` features needs TensorFlow:
    `pip install audiojax[tfds]`);
  - `folder:/path`: every wav/flac/ogg/mp3 file under a folder, resampled to the config rate;
    read from its array_record shards when `launch.prepare_data` prepared it into `data_dir`
    (`audiojax.data.folder_shards`), else listed and decoded directly;
  - `A+B+...`: several of the above as one dataset (e.g. `espeak_speech+music21_audio`, what
    the codec trains on); training draws from them in the proportions `config.data.mix_weights`
    (default: their sizes), speaker ids are offset so each part's stay distinct, and the
    evaluation splits are the parts' splits one after another;
  - `audiolm_tokens`: token sequences of an AudioLM stage, read from token datasets
    (`audiojax.data.audiolm_tokens`: batches of tokens and loss_mask instead of audio);
  - `chorale_notes`: the music21 chorales as note-event tokens (`audiojax.data.chorale_notes`),
    batched like `audiolm_tokens`, for the composer (`configs/composer.py`).

The pipeline is grain over random-access sources (TFDS array_record data sources or a file
list): every example is addressed by an index, so a seed fixes the whole stream, each host
reads only the records `process_index::process_count`, and the iterator state is a small
dict that the trainer saves in its checkpoint, so a resumed run sees exactly the batches it
would have seen. Examples are dicts of numpy arrays:
  audio: float32 [samples] in [-1, 1]; mask: float32 [samples] (0 on padding);
  speaker: int32 [];
and, when `config.data.condition` asks for them, time-aligned conditioning features:
  condition: float32 [samples / condition_hop, C]: row k describes the audio's samples
  [k * hop, (k + 1) * hop). "phonemes" = text-to-speech linguistic features from the espeak
  corpus' phoneme alignment (`audiojax.data.phonemes`), followed by the excitation below when
  `data.excitation_channels` > 0; "excitation" = the audio's
  pitch-synchronous excitation, hop x `data.excitation_channels` sample-rate features per frame
  (`audiojax.data.pitch`); "notes" = a score's frame features and harmonic source from the
  music corpus' note events (`audiojax.data.notes`);
  crops then start on a frame boundary;
and, when `config.data.reference_samples > 0` (voice cloning), reference audio of the speaker:
  reference: float32 [reference_samples], a random window of another utterance of the same
  speaker in training (evaluation: of the utterance itself, for a deterministic score);
and, when `config.data.targets == "phonemes"` (a phone recognizer's CTC targets, from the espeak
corpus' phoneme alignment; `label_fn`):
  phoneme_ids: int32 [max_phonemes], the ids (1 + index in `config.data.phonemes`; 0 pads) of
  the phones whose middle sample lies in the crop, in order; phoneme_lengths: int32 [], how many.
"""

import dataclasses
import hashlib
import importlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grain
import jax
import ml_collections
import numpy as np

from audiojax.data import (
  audio_io,
  audiolm_tokens,
  chorale_notes,
  notes,
  phonemes,
  pitch,
  voice_perturbation,
)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
DEFAULT_DATA_DIR = os.environ.get(
    "AUDIOJAX_DATA_DIR", os.path.join(os.path.expanduser("~"), ".cache", "audiojax", "data")
)


@dataclasses.dataclass
class Source:
  """A random-access split: `decode(records[i])` -> {'audio', 'speaker'} at the config rate."""

  records: Sequence[Any]
  decode: Callable[[Any], dict[str, Any]]
  name: str
  num_speakers: int = 1
  host_local: bool = False  # `records` are already this host's share (its own shards).
  speaker_of: Callable[[Any], int] | None = None  # A record's speaker without decoding audio.
  part_sizes: tuple[int, ...] = ()  # A mixture (`A+B`): its parts' sizes, in record order.

  def __len__(self) -> int:
    return len(self.records)


class BadExampleCounter:
  """Counts examples skipped under `skip_bad_files`, warning for each."""

  def __init__(self):
    self.count = 0

  def skip(self, error: Exception) -> None:
    self.count += 1
    logging.warning("skipping bad example (%d so far): %s", self.count, error)


# ----------------------------------------------------------------------------- sources


# Built-in corpora: dataset name -> (module in audiojax.data, label used as the speaker id).
BUILT_IN = {"espeak_speech": "speaker", "music21_audio": "instrument"}
# Token datasets: name -> the module that batches them ({tokens, loss_mask}, not audio).
TOKEN_SOURCES = {
    "audiolm_tokens": audiolm_tokens,  # AudioLM's stages read token datasets.
    "chorale_notes": chorale_notes,  # The composer reads the chorales' note tokens.
}


def _built_in_source(name: str, split: str, data_dir: str, sample_rate_hz: int) -> Source:
  """`espeak_speech[/config]` or `music21_audio[/config]`, built into `data_dir` if missing."""
  dataset, _, config = name.partition("/")
  module = importlib.import_module(f"audiojax.data.{dataset}")
  builder = module.prepare(data_dir, config=config or "default")
  native_hz = builder.info.metadata["sample_rate_hz"]
  label = BUILT_IN[dataset]
  num_speakers = builder.info.features[label].num_classes
  return Source(builder.as_data_source(split),
                lambda record: decode_record(record, label, native_hz, sample_rate_hz),
                f"{name}:{split}", num_speakers, speaker_of=lambda record: int(record[label]))


def decode_record(record: dict, label: str, native_hz: int, sample_rate_hz: int) -> dict:
  """A built-in corpus record (audio at `native_hz`, int label `label`, and for espeak_speech
  the phoneme alignment) -> an example at `sample_rate_hz`: {'audio', 'speaker'} (+ 'phonemes':
  [mnemonic], 'phoneme_starts', 'phoneme_ends': int64 samples at sample_rate_hz)."""
  audio = audio_io.to_mono_float(record["audio"])
  example = {
      "audio": audio_io.resample(audio, native_hz, sample_rate_hz),
      "speaker": int(record[label]),
  }
  if "notes" in record:  # music21_audio's score, in samples at sample_rate_hz.
    notes = record["notes"]
    example["notes"] = {key: np.asarray(notes[key]) for key in ("pitch_midi", "velocity")}
    for key in ("start", "end"):
      example["notes"][key] = np.round(np.asarray(notes[key], np.int64) * sample_rate_hz /
                                       native_hz).astype(np.int64)
  if "phonemes" in record:
    mnemonics = record["phonemes"]
    example["phonemes"] = (mnemonics.decode() if isinstance(mnemonics, bytes)
                           else str(mnemonics)).split()
    for key in ("phoneme_starts", "phoneme_ends"):
      example[key] = np.round(np.asarray(record[key], np.int64) * sample_rate_hz /
                              native_hz).astype(np.int64)
  return example


def _tfds_source(name: str, split: str, data_dir: str, sample_rate_hz: int) -> Source:
  import tensorflow_datasets as tfds

  builder = tfds.builder(name, data_dir=data_dir)
  features = builder.info.features
  audio_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Audio)]
  if not audio_keys:
    raise ValueError(f"tfds:{name} has no Audio feature (features: {list(features)})")
  audio_key = audio_keys[0]
  native_hz = features[audio_key].sample_rate
  speaker_key = next((k for k in ("speaker_id", "speaker") if k in features), None)
  num_speakers = 1
  if speaker_key and isinstance(features[speaker_key], tfds.features.ClassLabel):
    num_speakers = features[speaker_key].num_classes
  if native_hz != sample_rate_hz:
    logging.info("tfds:%s is %s Hz: resampling to %d Hz", name, native_hz, sample_rate_hz)

  def decode(record):
    audio = audio_io.check_audio(
        audio_io.to_mono_float(record[audio_key]), f"tfds:{name} example {record.get('id')}"
    )
    return {
        "audio": audio_io.resample(audio, native_hz, sample_rate_hz),
        "speaker": int(record[speaker_key]) if speaker_key else 0,
    }

  records = builder.as_data_source(split)
  return Source(records, decode, f"tfds:{name}:{split}", num_speakers)


def list_audio_files(folder: str) -> list[str]:
  """All audio files under `folder` (recursive), sorted for determinism."""
  if not os.path.isdir(folder):
    raise ValueError(f"folder dataset: {folder} is not a directory")
  paths = []
  for root, _, files in os.walk(folder):
    paths += [os.path.join(root, f) for f in files if f.lower().endswith(AUDIO_EXTENSIONS)]
  if not paths:
    raise ValueError(f"folder dataset: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {folder}")
  return sorted(paths)


def folder_split(path: str) -> str:
  """Deterministic split of a file by a hash of its name: 2% validation, 2% test."""
  bucket = int(hashlib.sha1(os.path.basename(path).encode()).hexdigest(), 16) % 100
  return "validation" if bucket < 2 else "test" if bucket < 4 else "train"


def folder_speakers(folder: str, paths: Sequence[str]):
  """(speaker names, path -> speaker id): speakers are the first-level sub-folders (one folder
  per speaker, as in VCTK and LibriSpeech); files directly in `folder` are speaker 0."""
  tops = [os.path.relpath(p, folder).split(os.sep) for p in paths]
  names = sorted({t[0] for t in tops if len(t) > 1})
  ids = {name: i for i, name in enumerate(names)}
  return names, lambda path: ids.get(os.path.relpath(path, folder).split(os.sep)[0], 0)


def _folder_source(folder: str, split: str, data_dir: str, sample_rate_hz: int,
                   process_index: int, process_count: int) -> Source:
  from audiojax.data import folder_shards

  manifest = folder_shards.read_manifest(folder, data_dir)
  if manifest is not None:
    if manifest["sample_rate_hz"] != sample_rate_hz:
      raise ValueError(f"folder:{folder} was prepared at {manifest['sample_rate_hz']} Hz, "
                       f"not {sample_rate_hz} Hz: prepare it again at this rate")
    paths, host_local = folder_shards.shard_paths(folder, data_dir, split, manifest,
                                                  process_index, process_count)
    return Source(grain.sources.ArrayRecordDataSource(paths), folder_shards.decode_record,
                  f"folder:{folder}:{split} (prepared)", max(1, len(manifest["speakers"])),
                  host_local=host_local)

  all_paths = list_audio_files(folder)
  paths = all_paths
  if split != "all":
    paths = [p for p in all_paths if folder_split(p) == split] or all_paths[:1]
  speakers, speaker_of = folder_speakers(folder, all_paths)

  def decode(path):
    return {"audio": audio_io.load_audio(path, sample_rate_hz), "speaker": speaker_of(path)}

  return Source(paths, decode, f"folder:{folder}:{split}", max(1, len(speakers)),
                speaker_of=speaker_of)


def _mixed_source(parts: Sequence[Source]) -> Source:
  """`parts` one after another: records are (part, record) pairs, speaker ids are offset by
  the speakers of the parts before."""
  if any(part.host_local for part in parts):
    raise ValueError("a dataset mixture (A+B) cannot include a prepared folder (its shards are "
                     "read per host); use the folder unprepared or train on it alone")
  offsets = np.cumsum([0] + [part.num_speakers for part in parts])

  def decode(pair):
    k, record = pair
    example = parts[k].decode(record)
    return {**example, "speaker": int(offsets[k] + example["speaker"])}

  def speaker_of(pair):
    k, record = pair
    return int(offsets[k] + parts[k].speaker_of(record))

  labelled = all(part.speaker_of for part in parts)  # Else, like each part, no speaker_of.
  records = [(k, r) for k, part in enumerate(parts) for r in part.records]
  return Source(records, decode, "+".join(part.name for part in parts), int(offsets[-1]),
                speaker_of=speaker_of if labelled else None,
                part_sizes=tuple(len(part) for part in parts))


def get_source(data_config: ml_collections.ConfigDict, split: str, process_index: int = 0,
               process_count: int = 1) -> Source:
  """The split `split` of the dataset named by `data_config.name` (`A+B`: a mixture).

  A source with `host_local` set holds only this host's records (its own shards).
  """
  if "+" in data_config.name:
    return _mixed_source([
        _named_source(name, data_config, split, process_index, process_count)
        for name in data_config.name.split("+")])
  return _named_source(data_config.name, data_config, split, process_index, process_count)


def _named_source(name: str, data_config: ml_collections.ConfigDict, split: str,
                  process_index: int, process_count: int) -> Source:
  data_dir = os.path.expanduser(data_config.get("data_dir") or DEFAULT_DATA_DIR)
  rate = data_config.sample_rate_hz
  if name.split("/")[0] in BUILT_IN:
    return _built_in_source(name, split, data_dir, rate)
  if name.startswith("tfds:"):
    return _tfds_source(name[len("tfds:"):], split, data_dir, rate)
  if name.startswith("folder:"):
    return _folder_source(os.path.expanduser(name[len("folder:"):]), split, data_dir, rate,
                          process_index, process_count)
  raise ValueError(
      f"unknown dataset {name!r}: use 'espeak_speech[/config]', 'music21_audio[/config]', "
      "'tfds:NAME' or 'folder:/path', or several joined by '+'"
  )


# ----------------------------------------------------------------------------- examples


def phoneme_inventory(data_config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The stress-free phonemes of the training split, sorted: `phonemes.inventory` for
  text-to-speech features, or with `data.targets == "phonemes"` the phone recognizer's
  (`recognizer_phones`: no pauses)."""
  examples = utterances(data_config, data_config.train_split, process_index=0, process_count=1)
  if data_config.get("targets") == "phonemes":
    return tuple(sorted({phone for example in examples
                         for phone, _ in recognizer_phones(example)}))
  return phonemes.inventory(" ".join(example.get("phonemes", ())) for example in examples)


def recognizer_phones(example: dict) -> list[tuple[str, int]]:
  """A corpus example's phones as a phone recognizer hears them: [(phone, middle sample)],
  normalised by `phonemes.espeak_phonemes` (stress marks dropped) and without pauses.

  Pauses are left out of the CTC targets: espeak's pause marks are mostly word-boundary
  markers with no sound (1598 of the default train split's 2807 last under 10 ms, less than
  a 20-ms frame), so as targets they would ask for a symbol the audio does not show; real
  silence is what CTC's blank absorbs, and the phone error rate should count phones.
  """
  if "phonemes" not in example:
    raise ValueError("a phone recognizer needs phoneme labels: train it on the built-in "
                     "espeak_speech corpus")
  record = {"phonemes": " ".join(example["phonemes"]),
            "phoneme_starts": example["phoneme_starts"], "phoneme_ends": example["phoneme_ends"]}
  return [(phone, (start + end) // 2) for phone, start, end in
          phonemes.espeak_phonemes(record) if phone != phonemes.PAUSE]


def _configured_inventory(data_config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """`data.phonemes` as a tuple; a clear error while the trainer has not filled it in."""
  inventory = tuple(data_config.phonemes.split())
  if not inventory:
    raise ValueError("data.phonemes is empty: the trainer fills it with the training split's "
                     "phoneme inventory (pipeline.phoneme_inventory)")
  return inventory


def label_fn(data_config: ml_collections.ConfigDict
             ) -> Callable[[dict], tuple[np.ndarray, np.ndarray]] | None:
  """example -> (phone ids int32 [n], middle samples int64 [n]) of its `recognizer_phones`,
  ids 1 + index in `data.phonemes` (0 is CTC's blank); None unless data.targets="phonemes".
  Phones outside the inventory (held-out sentences may hold some that the training split
  lacks) are left out."""
  kind = data_config.get("targets", "")
  if not kind:
    return None
  if kind != "phonemes":
    raise ValueError(f"data.targets={kind!r}: use '' or 'phonemes'")
  inventory = _configured_inventory(data_config)

  def labels(example: dict) -> tuple[np.ndarray, np.ndarray]:
    phones = recognizer_phones(example)
    ids = phonemes.ids([p for p, _ in phones], inventory, strict=False)
    middles = np.array([m for _, m in phones], np.int64)
    return ids[ids > 0], middles[ids > 0]

  return labels


def crop_labels(labels: tuple[np.ndarray, np.ndarray], start: int, crop_samples: int,
                max_phonemes: int) -> dict:
  """{'phoneme_ids': int32 [max_phonemes] (0-padded), 'phoneme_lengths': int32 []}: the phones
  of `labels` (`label_fn`) whose middle sample lies in [start, start + crop_samples)."""
  ids, middles = labels
  inside = ids[(middles >= start) & (middles < start + crop_samples)]
  if inside.shape[0] > max_phonemes:
    raise ValueError(f"a crop of {crop_samples} samples holds {inside.shape[0]} phonemes, more "
                     f"than data.max_phonemes={max_phonemes}: raise it")
  return {"phoneme_ids": np.pad(inside, (0, max_phonemes - inside.shape[0])).astype(np.int32),
          "phoneme_lengths": np.int32(inside.shape[0])}


def excitation_channels(data_config: ml_collections.ConfigDict) -> int:
  """Excitation channels per sample the condition carries (`audiojax.data.pitch`):
  `data.excitation_channels`; for runs whose configs do not name it (before the period
  channel), 4 with condition "excitation" and none with "phonemes"."""
  if "excitation_channels" in data_config:
    return data_config.excitation_channels
  return 4 if data_config.get("condition") == "excitation" else 0


def condition_fn(data_config: ml_collections.ConfigDict, strict: bool = False
                 ) -> Callable[[dict], np.ndarray] | None:
  """example -> its conditioning features [frames, C] (`config.data.condition`), or None.
  `strict`: phonemes outside the inventory are an error (else "none", `phonemes.ids`)."""
  kind = data_config.get("condition", "")
  if not kind:
    return None
  channels = excitation_channels(data_config)
  if kind == "notes":
    return score_fn(data_config)
  if channels:  # hop x channels per frame, from the audio itself.
    points = pitch.PulseCache(data_config.sample_rate_hz)
    excitation = lambda example: pitch.excitation_frames(
        example["audio"], data_config.sample_rate_hz, data_config.condition_hop,
        points(example["audio"]), channels)
  if kind == "excitation":
    if not channels:
      raise ValueError("data.condition='excitation' with data.excitation_channels=0: give the "
                       f"channels per sample (1..{pitch.EXCITATION_CHANNELS})")
    return excitation
  if kind != "phonemes":
    raise ValueError(f"data.condition={kind!r}: use '', 'phonemes', 'excitation' or 'notes'")
  inventory = _configured_inventory(data_config)

  def features(example: dict) -> np.ndarray:
    if "phonemes" not in example:
      raise ValueError(f"data.condition='phonemes' needs phoneme labels, which {data_config.name}"
                       " has not: train text-to-speech on the built-in espeak_speech corpus")
    rows = phonemes.frame_features(
        example["phonemes"], example["phoneme_starts"], example["phoneme_ends"],
        example["audio"].shape[0], data_config.condition_hop, inventory,
        data_config.num_phonemes, data_config.sample_rate_hz, strict)
    # With data.excitation_channels, the audio's pitch-synchronous excitation follows.
    return np.concatenate([rows, excitation(example)], axis=1) if channels else rows

  return features


def score_fn(data_config: ml_collections.ConfigDict) -> Callable[[dict], np.ndarray]:
  """example -> a score-conditioned model's features [frames, C] (`notes.packed`: frame
  features, then the harmonic source, `data.excitation_channels` = 1 + harmonics per sample,
  its partials starting in sine phase at each onset or, `data.note_phase="random"`, at
  seeded random phases), from the example's note events. Pieces played by several
  instruments share their score, so the features are computed once per score (by content)."""
  harmonics = excitation_channels(data_config) - 1
  if harmonics < 0:
    raise ValueError("data.condition='notes' needs data.excitation_channels = 1 + harmonics "
                     f">= 1, got {excitation_channels(data_config)}")
  phase = data_config.get("note_phase", "onset")
  if phase not in ("onset", "random"):
    raise ValueError(f"data.note_phase={phase!r}: use onset or random")
  random_phase = phase == "random"
  cache: dict[bytes, np.ndarray] = {}

  def features(example: dict) -> np.ndarray:
    if "notes" not in example:
      raise ValueError(f"data.condition='notes' needs note events, which {data_config.name} has "
                       "not: train on the built-in music21_audio corpus")
    events, num_samples = example["notes"], example["audio"].shape[0]
    key = hashlib.sha1(b"".join(np.ascontiguousarray(events[k], np.int64).tobytes() for k in (
        "pitch_midi", "start", "end", "velocity")) + str(num_samples).encode()).digest()
    if key not in cache:
      if len(cache) >= 256:  # ~10 MB a 20-s piece: a bound for large corpora.
        cache.clear()
      cache[key] = notes.packed(events, num_samples, data_config.condition_hop,
                                data_config.sample_rate_hz, harmonics, random_phase)
    return cache[key]

  return features


def condition_rows(condition: np.ndarray, start: int, crop_samples: int, hop: int) -> np.ndarray:
  """The conditioning frames of audio[start:start + crop_samples] (start a multiple of hop),
  zero-padded past the utterance: [crop_samples // hop, C]."""
  first, num = start // hop, crop_samples // hop
  rows = condition[first:first + num]
  return np.pad(rows, ((0, num - rows.shape[0]), (0, 0)))


def _check_condition_hop(data_config: ml_collections.ConfigDict) -> None:
  if data_config.get("condition") and data_config.crop_samples % data_config.condition_hop:
    raise ValueError(f"data.crop_samples={data_config.crop_samples} is not a multiple of "
                     f"condition_hop={data_config.condition_hop}")


def reference_window(audio: np.ndarray, num_samples: int,
                     rng: np.random.Generator | None = None) -> np.ndarray:
  """A window of `num_samples` of a speaker's reference audio: random with `rng`, else the
  start; audio shorter than that is repeated to fill it."""
  if audio.shape[0] == 0:
    return np.zeros(num_samples, np.float32)
  if audio.shape[0] <= num_samples:
    return np.resize(audio, num_samples).astype(np.float32)
  start = 0 if rng is None else int(rng.integers(0, audio.shape[0] - num_samples + 1))
  return audio[start:start + num_samples].astype(np.float32)


def _records_by_speaker(source: Source, indices: Sequence[int]) -> dict[int, list[int]]:
  """speaker id -> the record indices (of `indices`) of that speaker."""
  if source.speaker_of is None:
    raise ValueError(f"data.reference_samples > 0 needs speaker labels, which {source.name} "
                     "does not provide: use the built-in corpora or a folder of speaker folders")
  by_speaker: dict[int, list[int]] = {}
  for index in indices:
    by_speaker.setdefault(source.speaker_of(source.records[index]), []).append(index)
  return by_speaker


def crop_at(audio: np.ndarray, start: int, crop_samples: int) -> dict:
  """audio[start:start + crop_samples], zero-padded past the end (and before the start, for a
  negative `start`), with mask 0 on padding."""
  before = min(max(-start, 0), crop_samples)
  window = audio[max(start, 0):max(start + crop_samples, 0)]
  mask = np.zeros(crop_samples, np.float32)
  mask[before:before + window.shape[0]] = 1.0
  return {"audio": np.pad(window, (before, crop_samples - before - window.shape[0])),
          "mask": mask}


def crop_start(num_samples: int, crop_samples: int, rng: np.random.Generator,
               hop: int = 1) -> int:
  """A random start (a multiple of `hop`) of a window of `crop_samples` in `num_samples`; 0
  when the audio is shorter."""
  if num_samples < crop_samples:
    return 0
  return hop * int(rng.integers(0, (num_samples - crop_samples) // hop + 1))


def random_crop(audio: np.ndarray, crop_samples: int, rng: np.random.Generator,
                condition: np.ndarray | None = None, hop: int = 1,
                labels: tuple[np.ndarray, np.ndarray] | None = None,
                max_phonemes: int = 0, lead_in_samples: int = 0) -> dict:
  """A random window of `crop_samples`; shorter audio is zero-padded with mask 0 on padding.
  With `condition` [frames, C] (one per `hop` samples) the window starts on a frame boundary
  and brings its frames as 'condition'; with `labels` (`label_fn`) its phones (`crop_labels`).
  With `lead_in_samples` the window may start up to that many samples before the audio (silence
  there, mask 0): a model with a long context (WaveNet's context stack) then also learns to
  start from the silence its sampler starts from."""
  if lead_in_samples and (condition is not None or labels is not None):
    raise ValueError("data.lead_in_samples is for audio alone (no condition or labels)")
  start = crop_start(audio.shape[0] + lead_in_samples, crop_samples, rng, hop) - lead_in_samples
  cropped = crop_at(audio, start, crop_samples)
  if labels is not None:
    cropped.update(crop_labels(labels, start, crop_samples, max_phonemes))
  if condition is not None:
    cropped["condition"] = condition_rows(condition, start, crop_samples, hop)
  return cropped


def _decode_or_skip(source: Source, record: Any, skip_bad_files: bool,
                    counter: BadExampleCounter) -> dict | None:
  try:
    return source.decode(record)
  except audio_io.AudioError as err:
    if not skip_bad_files:
      raise audio_io.AudioError(
          f"{err} (set --config.data.skip_bad_files=True to skip bad files)") from err
    counter.skip(err)
    return None


def _perturbed(crop: dict, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
  """The crop's audio in another voice (`voice_perturbation.perturb_voice`), padding kept 0."""
  return voice_perturbation.perturb_voice(crop["audio"], sample_rate_hz, rng) * crop["mask"]


def train_dataset(data_config: ml_collections.ConfigDict, *, seed: int,
                  process_index: int | None = None, process_count: int | None = None,
                  counter: BadExampleCounter | None = None) -> grain.IterDataset:
  """Infinite, shuffled, cropped, batched training stream for this host.

  Yields {'audio': [per_host_batch, crop_samples], 'mask': same, 'speaker': [per_host_batch]};
  with `data.perturb_voice`, also 'perturbed' (the same crops in other voices).
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if data_config.batch_size % process_count:
    raise ValueError(f"data.batch_size={data_config.batch_size} is not divisible by the "
                     f"{process_count} processes")
  if data_config.name in TOKEN_SOURCES:
    return TOKEN_SOURCES[data_config.name].train_dataset(
        data_config, seed=seed, process_index=process_index, process_count=process_count)
  source = get_source(data_config, data_config.train_split, process_index, process_count)
  if len(source) < process_count and not source.host_local:
    raise ValueError(f"{source.name} has {len(source)} examples, fewer than the processes")
  counter = counter or BadExampleCounter()
  crop_samples = data_config.crop_samples
  _check_condition_hop(data_config)
  features = condition_fn(data_config)
  targets = label_fn(data_config)
  reference_samples = data_config.get("reference_samples", 0)
  ds = grain.MapDataset.range(len(source))
  if not source.host_local:
    ds = ds[process_index::process_count]
  by_speaker = (_records_by_speaker(source, list(ds)) if reference_samples else {})
  if source.part_sizes:  # A mixture: each part shuffled and repeated, then mixed by weight.
    ds = _mix(source.part_sizes, list(ds), data_config.get("mix_weights"), seed).seed(seed)
  else:
    ds = ds.seed(seed).shuffle().repeat()

  def load_and_crop(index, rng):
    example = _decode_or_skip(source, source.records[index], data_config.skip_bad_files,
                              counter)
    if example is None:
      return None
    cropped = random_crop(example["audio"], crop_samples, rng,
                          None if features is None else features(example),
                          data_config.get("condition_hop", 1),
                          None if targets is None else targets(example),
                          data_config.get("max_phonemes", 0),
                          data_config.get("lead_in_samples", 0))
    cropped["speaker"] = np.int32(example["speaker"])
    if data_config.get("perturb_voice"):
      cropped["perturbed"] = _perturbed(cropped, data_config.sample_rate_hz, rng)
    if reference_samples:  # Another utterance of the speaker (itself if it has no other).
      others = [i for i in by_speaker[example["speaker"]] if i != index] or [index]
      other = _decode_or_skip(source, source.records[others[rng.integers(len(others))]],
                              data_config.skip_bad_files, counter)
      if other is None:
        return None
      cropped["reference"] = reference_window(other["audio"], reference_samples, rng)
    return cropped

  ds = ds.random_map(load_and_crop)
  read = grain.ReadOptions(num_threads=data_config.get("num_threads", 2), prefetch_buffer_size=8)
  ds = ds.to_iter_dataset(read).filter(lambda ex: ex is not None)
  return ds.batch(data_config.batch_size // process_count, drop_remainder=True)


def _mix(part_sizes: Sequence[int], indices: Sequence[int], weights: Sequence[float] | None,
         seed: int) -> grain.MapDataset:
  """Endless stream of record indices of a mixture: this host's `indices` of each part,
  shuffled and repeated, drawn in proportion to `weights` (default: the parts' sizes)."""
  weights = tuple(weights or part_sizes)
  if len(weights) != len(part_sizes) or min(weights) < 0 or not sum(weights):
    raise ValueError(f"data.mix_weights={weights} must be {len(part_sizes)} non-negative "
                     "numbers, one per dataset of the mixture, not all zero")
  bounds = np.cumsum([0, *part_sizes])
  parts = []
  for k, weight in enumerate(weights):
    mine = [i for i in indices if bounds[k] <= i < bounds[k + 1]]
    if weight and not mine:
      raise ValueError(f"part {k} of the dataset mixture has no records for this host")
    if weight:
      parts.append((grain.MapDataset.source(mine).seed(seed + k).shuffle().repeat(), weight))
  return grain.MapDataset.mix([p for p, _ in parts], [w for _, w in parts])


def example_batch(data_config: ml_collections.ConfigDict, rows: int = 1) -> dict[str, np.ndarray]:
  """Zeros (all masked) shaped like this dataset's batches of `rows` rows: what a model is
  initialised on, and what a host with no data left evaluates."""
  if data_config.name in TOKEN_SOURCES:
    return TOKEN_SOURCES[data_config.name].example_batch(data_config, rows)
  crop = data_config.crop_samples
  batch = {"audio": np.zeros((rows, crop), np.float32),
           "mask": np.zeros((rows, crop), np.float32), "speaker": np.zeros((rows,), np.int32)}
  if data_config.get("condition"):
    channels = data_config.condition_hop * excitation_channels(data_config)
    if data_config.condition == "phonemes":
      channels += phonemes.num_features(data_config.num_phonemes)
    elif data_config.condition == "notes":
      channels += notes.num_features()
    batch["condition"] = np.zeros((rows, crop // data_config.condition_hop, channels),
                                  np.float32)
  if data_config.get("reference_samples", 0):
    batch["reference"] = np.zeros((rows, data_config.reference_samples), np.float32)
  if data_config.get("perturb_voice"):
    batch["perturbed"] = np.zeros((rows, crop), np.float32)
  if data_config.get("targets"):
    batch["phoneme_ids"] = np.zeros((rows, data_config.max_phonemes), np.int32)
    batch["phoneme_lengths"] = np.zeros((rows,), np.int32)
  return batch


def is_music(name: str) -> bool:
  """Whether a dataset name (as `get_source` takes it) holds music, which speech metrics and
  phone recognizers do not score: any name with "music" in it (`music21_audio`, a mixture
  with it, `folder:/data/music`)."""
  return "music" in name


def dataset_config(name: str, data_dir: str | None = None, sample_rate_hz: int = 16000,
                   skip_bad_files: bool = False) -> ml_collections.ConfigDict:
  """A minimal `config.data` for reading whole utterances (`utterances`) of a dataset."""
  return ml_collections.ConfigDict(dict(name=name, data_dir=data_dir or "",
                                        sample_rate_hz=sample_rate_hz,
                                        skip_bad_files=skip_bad_files))


def utterances(data_config: ml_collections.ConfigDict, split: str, *,
               max_examples: int | None = None, process_index: int | None = None,
               process_count: int | None = None) -> Iterator[dict[str, Any]]:
  """This host's share of the first `max_examples` utterances of a split (of each part of a
  mixture), in order, decoded: {'audio': float32 [samples] at the config rate, 'speaker':
  int}. Bad files raise (or are skipped and counted under `skip_bad_files`)."""
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  source = get_source(data_config, split, process_index, process_count)
  counter = BadExampleCounter()
  num = len(source) if max_examples is None else min(len(source), max_examples)
  indices = range(process_index, num, process_count)
  if source.part_sizes and max_examples is not None:
    starts = np.cumsum([0, *source.part_sizes])
    indices = [i for k, size in enumerate(source.part_sizes)
               for i in range(starts[k], starts[k] + min(size, max_examples))
               ][process_index::process_count]
  if source.host_local:  # Already this host's shards: take its share of max_examples.
    indices = range(len(source) if max_examples is None
                    else min(len(source), -(-max_examples // process_count)))
  for index in indices:
    example = _decode_or_skip(source, source.records[index], data_config.skip_bad_files, counter)
    if example is not None:
      yield example


def eval_batches(data_config: ml_collections.ConfigDict, split: str, *,
                 max_examples: int | None = None, batch_size: int | None = None,
                 process_index: int | None = None,
                 process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """Deterministic pass over a split: each utterance cut into consecutive crops.

  The last crop of an utterance is zero-padded with mask 0; the final batch is padded with
  all-zero-mask rows so every batch has the same shape (the mask excludes them from metrics).
  """
  process_count = jax.process_count() if process_count is None else process_count
  batch_size = batch_size or data_config.batch_size // process_count
  if data_config.name in TOKEN_SOURCES:
    process_index = jax.process_index() if process_index is None else process_index
    yield from TOKEN_SOURCES[data_config.name].eval_batches(
        data_config, split, max_examples=max_examples, batch_size=batch_size,
        process_index=process_index, process_count=process_count)
    return
  crop = data_config.crop_samples
  _check_condition_hop(data_config)
  features = condition_fn(data_config)
  targets = label_fn(data_config)
  rows, crops = [], 0
  for example in utterances(data_config, split, max_examples=max_examples,
                            process_index=process_index, process_count=process_count):
    audio = example["audio"]
    condition = None if features is None else features(example)
    labels = None if targets is None else targets(example)
    for start in range(0, audio.shape[0], crop):
      rows.append({**crop_at(audio, start, crop), "speaker": np.int32(example["speaker"])})
      if condition is not None:
        rows[-1]["condition"] = condition_rows(condition, start, crop,
                                               data_config.condition_hop)
      if data_config.get("reference_samples", 0):
        rows[-1]["reference"] = reference_window(audio, data_config.reference_samples)
      crops += 1
      if data_config.get("perturb_voice"):  # The same voices on every pass.
        rows[-1]["perturbed"] = _perturbed(rows[-1], data_config.sample_rate_hz,
                                           np.random.default_rng(crops))
      if labels is not None:
        rows[-1].update(crop_labels(labels, start, crop, data_config.max_phonemes))
      if len(rows) == batch_size:
        yield {k: np.stack([r[k] for r in rows]) for k in rows[0]}
        rows = []
  if rows:
    pad = {k: v[0] for k, v in example_batch(data_config).items()}
    rows += [pad] * (batch_size - len(rows))
    yield {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def held_out_examples(data_config: ml_collections.ConfigDict, split: str, num_clips: int,
                      num_samples: int, max_utterances: int = 200) -> list[dict[str, Any]]:
  """`num_clips` utterances of a split (decoded examples, as `utterances`), speakers taken in
  turn: each speaker's first utterance of at least `num_samples`, then each one's second, ...;
  what a vocoder resynthesises to show itself. Looks at the first `max_utterances`; shorter
  ones only when too few are long enough; repeated when the split has fewer."""
  found = list(utterances(data_config, split, max_examples=max_utterances, process_index=0,
                          process_count=1))
  if not found:
    raise ValueError(f"split {split!r} of {data_config.name} has no utterances to resynthesise")
  found.sort(key=lambda example: example["audio"].shape[0] < num_samples)  # Long ones first.
  by_speaker: dict[int, list[dict]] = {}
  for example in found:
    by_speaker.setdefault(int(example["speaker"]), []).append(example)
  order = [(rank, speaker) for speaker, clips in by_speaker.items() for rank in range(len(clips))]
  chosen = sorted(order)[:num_clips]
  while len(chosen) < num_clips:  # Fewer utterances than clips: repeat them.
    chosen += chosen[:num_clips - len(chosen)]
  return [by_speaker[s][r] for r, s in chosen]


def held_out_clips(data_config: ml_collections.ConfigDict, split: str, num_clips: int,
                   num_samples: int, max_utterances: int = 200
                   ) -> tuple[np.ndarray, np.ndarray]:
  """`clips_of` `held_out_examples`."""
  return clips_of(held_out_examples(data_config, split, num_clips, num_samples, max_utterances),
                  num_samples)


def clips_of(examples: Sequence[dict], num_samples: int) -> tuple[np.ndarray, np.ndarray]:
  """The first `num_samples` of each example (zero-padded): audio float32 [n, num_samples] and
  speaker ids int32 [n]."""
  audio = np.stack([crop_at(e["audio"], 0, num_samples)["audio"] for e in examples])
  return audio.astype(np.float32), np.array([e["speaker"] for e in examples], np.int32)
