"""`espeak_speech`: a multi-speaker speech corpus synthesized offline with espeak-ng.

Speakers are espeak voice variants x languages (`en-us+f3`, `de+m4`, ...), each with its own
fixed rate, pitch and pitch range; they read generated sentences (`sentences.py`) in their
language. Audio is 16 kHz int16 with espeak phoneme labels (start/end samples at 16 kHz).
Everything is built locally (no download, no TensorFlow) into array_record files, readable
with `builder.as_data_source(split)`.

Splits: `train` (seen speakers x train sentences: each speaker reads its own sentences),
`validation` and `test` (every seen speaker reads the same held-out sentences of its
language; the three sentence sets are disjoint) and `test_unseen_speakers` (unseen speakers
read the test sentences of their language).
"""

import concurrent.futures
import dataclasses
import random
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from audiojax.data import audio_io, builders, espeak, sentences

SAMPLE_RATE_HZ = 16000
_MAX_WORKERS = 2  # Synthesis subprocesses run at once.
# Speaker language label -> espeak language voice, where they differ.
_ESPEAK_LANGUAGE = {"en-gb": "en"}


@dataclasses.dataclass(frozen=True)
class Speaker:
  """A voice variant in a language, with a fixed rate (words/minute), pitch and range."""

  language: str  # Label, e.g. "en-us", "en-gb", "de".
  variant: str  # espeak voice variant, e.g. "f3".
  rate_wpm: int
  pitch: int
  pitch_range: int

  @property
  def name(self) -> str:
    return f"{self.language}+{self.variant}_r{self.rate_wpm}_p{self.pitch}"

  @property
  def voice(self) -> str:
    return f"{_ESPEAK_LANGUAGE.get(self.language, self.language)}+{self.variant}"

  @property
  def sentence_language(self) -> str:
    return self.language.split("-")[0]


@dataclasses.dataclass
class EspeakSpeechConfig(tfds.core.BuilderConfig):
  """Speakers as "language+variant" and sentence counts.

  Attributes:
    seen: speakers of train/validation/test, e.g. ("en-us+f3", "de+m4").
    unseen: speakers of `test_unseen_speakers` only.
    train_per_speaker: train sentences read by each seen speaker (all distinct).
    held_out_per_language: sentences per language in validation, and as many in test.
    seed: seeds speakers' rate/pitch/range and the sentences.
  """

  seen: tuple[str, ...] = ()
  unseen: tuple[str, ...] = ()
  train_per_speaker: int = 0
  held_out_per_language: int = 0
  seed: int = 0

  def speakers(self) -> tuple[list[Speaker], list[Speaker]]:
    """(seen, unseen) speakers, with rate/pitch/range drawn deterministically from the seed."""
    specs = (*self.seen, *self.unseen)
    if len(set(specs)) != len(specs):
      raise ValueError(f"config {self.name!r} lists a speaker twice: {specs}")
    result = []
    for i, spec in enumerate(specs):
      language, _, variant = spec.partition("+")
      rng = random.Random(f"speaker:{self.seed}:{i}:{spec}")
      result.append(Speaker(
          language=language, variant=variant, rate_wpm=rng.randrange(130, 205, 5),
          pitch=rng.randrange(25, 80, 5), pitch_range=rng.randrange(30, 90, 5),
      ))
    return result[:len(self.seen)], result[len(self.seen):]


_TINY = EspeakSpeechConfig(
    name="tiny", description="For tests: 3 seen + 1 unseen speaker, 26 utterances.",
    seen=("en-us+m3", "en-gb+f2", "de+m1"), unseen=("en-us+f4",),
    train_per_speaker=4, held_out_per_language=2,
)
_DEFAULT = EspeakSpeechConfig(
    name="default",
    description="10 seen (8 English) + 3 unseen speakers, 1100 train utterances (~1 h).",
    seen=(
        "en-us+m1", "en-us+f1", "en-us+m3", "en-us+f3", "en-gb+m2", "en-gb+f2", "en-gb+m5",
        "en-us+m7", "de+m4", "es+f4",
    ),
    unseen=("en-us+f5", "en-gb+m6", "de+f2"),
    train_per_speaker=110, held_out_per_language=8,
)
_LARGE = EspeakSpeechConfig(
    name="large",
    description="24 seen (16 English) + 8 unseen speakers in 4 languages, 3840 train "
    "utterances (~3 h).",
    seen=(
        "en-us+m1", "en-us+m2", "en-us+m3", "en-us+m5", "en-us+m7", "en-us+f1", "en-us+f2",
        "en-us+f3", "en-gb+m1", "en-gb+m3", "en-gb+m4", "en-gb+m8", "en-gb+f1", "en-gb+f4",
        "en-gb-scotland+m2", "en-029+f2", "de+m1", "de+f3", "de+m5", "es+m2", "es+f1",
        "es+m7", "fr+m3", "fr+f2",
    ),
    unseen=(
        "en-us+linda", "en-us+m6", "en-gb+john", "en-gb+f5", "en-us-nyc+steph", "de+Andy",
        "es+belinda", "fr+m6",
    ),
    train_per_speaker=160, held_out_per_language=12,
)


class EspeakSpeech(tfds.core.GeneratorBasedBuilder):
  """Multi-speaker speech synthesized offline with espeak-ng, with phoneme alignments."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [_TINY, _DEFAULT, _LARGE]
  DEFAULT_CONFIG_NAME = "default"
  # TFDS's own `code_path` lookup imports `importlib_resources` (a backport it only installs on
  # Python < 3.9) for builders that live in a package; this file is the answer anyway.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    seen, unseen = self.builder_config.speakers()
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
            "speaker": tfds.features.ClassLabel(names=[s.name for s in seen + unseen]),
            "language": tfds.features.Text(),
            "text": tfds.features.Text(),
            "id": tfds.features.Text(),
            "phonemes": tfds.features.Text(),
            "phoneme_starts": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "phoneme_ends": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        }),
        metadata=tfds.core.MetadataDict(sample_rate_hz=SAMPLE_RATE_HZ),
        homepage="https://github.com/espeak-ng/espeak-ng",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
    del dl_manager  # Nothing to download.
    splits = split_readings(self.builder_config)
    return {split: self._generate_examples(split) for split in splits}

  def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
    """Yields (id, example); each speaker's utterances come from one fresh subprocess."""
    readings = split_readings(self.builder_config)[split]
    tasks = [
        [espeak.Request(text, s.voice, s.rate_wpm, s.pitch, s.pitch_range) for text in texts]
        for s, texts in readings
    ]
    with concurrent.futures.ThreadPoolExecutor(_MAX_WORKERS) as pool:
      results = pool.map(espeak.synthesize_many, tasks)
      for k, ((speaker, texts), utterances) in enumerate(zip(readings, results, strict=True)):
        logging.info("espeak_speech/%s %s: speaker %d/%d (%s)", self.builder_config.name,
                     split, k + 1, len(readings), speaker.name)
        for j, (text, (audio, phonemes)) in enumerate(zip(texts, utterances, strict=True)):
          uid = f"{split}/{speaker.name}/{j:04d}"
          yield uid, _example(uid, speaker, text, audio, phonemes)


def split_readings(config: EspeakSpeechConfig) -> dict[str, list[tuple[Speaker, list[str]]]]:
  """Split name -> [(speaker, sentences it reads)], deterministic in the config."""
  seen, unseen = config.speakers()
  n_held = config.held_out_per_language
  readings = {"train": [], "validation": [], "test": [], "test_unseen_speakers": []}
  for language in dict.fromkeys(s.sentence_language for s in seen + unseen):
    readers = [s for s in seen if s.sentence_language == language]
    pool = sentences.generate(
        language, 2 * n_held + config.train_per_speaker * len(readers), config.seed
    )
    validation, test, train = pool[:n_held], pool[n_held:2 * n_held], pool[2 * n_held:]
    for k, speaker in enumerate(readers):
      n = config.train_per_speaker
      readings["train"].append((speaker, train[k * n:(k + 1) * n]))
      readings["validation"].append((speaker, validation))
      readings["test"].append((speaker, test))
    for speaker in unseen:
      if speaker.sentence_language == language:
        readings["test_unseen_speakers"].append((speaker, test))
  order = {s.name: i for i, s in enumerate(seen + unseen)}  # Config order within splits.
  return {k: sorted(v, key=lambda r: order[r[0].name]) for k, v in readings.items()}


def _example(
    uid: str, speaker: Speaker, text: str, audio: np.ndarray, phonemes: list[tuple[str, int]]
) -> dict:
  """espeak output at 22050 Hz -> a 16 kHz example with phoneme [start, end) in samples."""
  audio = audio_io.resample(audio_io.to_mono_float(audio), espeak.SAMPLE_RATE_HZ,
                            SAMPLE_RATE_HZ)
  audio = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
  starts = np.array([start for _, start in phonemes], np.int64)
  starts = np.round(starts * SAMPLE_RATE_HZ / espeak.SAMPLE_RATE_HZ).astype(np.int64)
  starts = np.maximum.accumulate(np.clip(starts, 0, audio.shape[0])) if starts.size else starts
  ends = np.append(starts[1:], audio.shape[0])
  return {
      "audio": audio,
      "speaker": speaker.name,
      "language": speaker.language,
      "text": text,
      "id": uid,
      "phonemes": " ".join(mnemonic for mnemonic, _ in phonemes),
      "phoneme_starts": starts.astype(np.int32),
      "phoneme_ends": ends.astype(np.int32),
  }


def corpus_speakers(config: str = "default") -> list[Speaker]:
  """The speakers of `espeak_speech/<config>` in label order: speaker id k is element k."""
  by_name = {c.name: c for c in EspeakSpeech.BUILDER_CONFIGS}
  if config not in by_name:
    raise ValueError(f"unknown espeak_speech config {config!r}: use one of {sorted(by_name)}")
  seen, unseen = by_name[config].speakers()
  return seen + unseen


def speak(speaker: Speaker, text: str) -> dict:
  """`text` read by a corpus speaker, as a corpus example: 16 kHz int16 audio and espeak's
  phoneme alignment (what text-to-speech conditions on). Raises ValueError on empty text."""
  if not text.strip():
    raise ValueError("the text is empty")
  request = espeak.Request(text, speaker.voice, speaker.rate_wpm, speaker.pitch,
                           speaker.pitch_range)
  audio, phonemes = espeak.synthesize_many([request])[0]
  if not phonemes:
    raise ValueError(f"espeak found nothing to say in {text!r}")
  return _example("text", speaker, text, audio, phonemes)


def prepare(data_dir: str, config: str = "default") -> tfds.core.DatasetBuilder:
  """Builds `espeak_speech/<config>` into `data_dir` unless already built; returns the builder."""
  return builders.prepare(EspeakSpeech, data_dir, config)
