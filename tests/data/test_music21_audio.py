"""The `music21_audio` dataset (`tiny` config), its synthesizers and score reading."""

import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
import soundfile as sf

from audiojax.data import music21_audio, pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPLITS = music21_audio.SPLITS
RATE = 16000


def _read(builder) -> dict[str, list[dict]]:
  """Split -> examples sorted by (piece, instrument), notes as numpy arrays."""
  result = {}
  for split in SPLITS:
    source = builder.as_data_source(split)
    examples = [source[i] for i in range(len(source))]
    for example in examples:
      example["notes"] = {k: np.asarray(v) for k, v in example["notes"].items()}
    result[split] = sorted(examples, key=lambda e: (e["piece"], e["instrument"]))
  return result


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
  """(data_dir, builder, examples, examples of a second build in another folder)."""
  data_dir = str(tmp_path_factory.mktemp("music21_a"))
  first = music21_audio.prepare(data_dir, "tiny")
  second = music21_audio.prepare(str(tmp_path_factory.mktemp("music21_b")), "tiny")
  return data_dir, first, _read(first), _read(second)


def _peak_hz(audio: np.ndarray, rate: int, near_hz: float) -> float:
  """The strongest spectral peak within 6% of `near_hz`, parabolically interpolated."""
  n = 1 << 18
  spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[0]), n))
  freqs = np.fft.rfftfreq(n, 1 / rate)
  lo, hi = np.searchsorted(freqs, [near_hz * 0.94, near_hz * 1.06])
  k = lo + int(np.argmax(spectrum[lo:hi]))
  a, b, c = np.log(spectrum[k - 1:k + 2])
  return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / n


def _cents(hz: float, reference_hz: float) -> float:
  return 1200 * np.log2(hz / reference_hz)


def test_two_builds_are_identical(builds):
  _, _, first, second = builds
  for split in SPLITS:
    assert len(first[split]) == len(second[split]) > 0
    for a, b in zip(first[split], second[split], strict=True):
      assert a["audio"].dtype == b["audio"].dtype == np.int16
      assert a["audio"].tobytes() == b["audio"].tobytes()
      assert (a["piece"], a["instrument"], a["seconds"]) == (b["piece"], b["instrument"],
                                                             b["seconds"])
      for key in a["notes"]:
        np.testing.assert_array_equal(a["notes"][key], b["notes"][key])


def test_features_and_split_sizes(builds):
  _, builder, examples, _ = builds
  config = builder.builder_config
  assert builder.info.features["instrument"].names == list(music21_audio.INSTRUMENTS)
  assert builder.info.metadata["sample_rate_hz"] == config.sample_rate_hz == RATE
  pieces = music21_audio.select_pieces(config)
  counts = {"train": config.train_pieces, "validation": config.validation_pieces,
            "test": config.test_pieces}
  for split in SPLITS:
    assert len(pieces[split]) == counts[split]
    assert len(examples[split]) == counts[split] * len(music21_audio.INSTRUMENTS)
    # Every piece of the split in every instrument, and nothing else.
    assert sorted((e["piece"].decode(), e["instrument"]) for e in examples[split]) == sorted(
        (p, i) for p in pieces[split] for i in range(len(music21_audio.INSTRUMENTS)))
    for example in examples[split]:
      assert piece_split_of(example) == split
      assert example["audio"].ndim == 1
      assert example["seconds"] == pytest.approx(example["audio"].shape[0] / RATE)
      assert example["seconds"] <= config.excerpt_seconds
  train = {e["piece"] for e in examples["train"]}
  held_out = {e["piece"] for s in ("validation", "test") for e in examples[s]}
  assert not train & held_out


def piece_split_of(example: dict) -> str:
  return music21_audio.piece_split(example["piece"].decode())


def test_splits_by_piece_hash_are_the_same_in_every_config():
  tiny, default = (music21_audio.select_pieces(c) for c in music21_audio.Music21Audio
                   .BUILDER_CONFIGS[:2])
  for split in SPLITS:
    assert all(music21_audio.piece_split(p) == split for p in default[split])
    assert len(set(default[split])) == len(default[split])
    assert tiny[split] == default[split][:len(tiny[split])]  # Same seed: same order.
  chorales = music21_audio.list_chorales()
  shares = {s: np.mean([music21_audio.piece_split(p) == s for p in chorales]) for s in SPLITS}
  assert 0.05 < shares["test"] < 0.15 and 0.05 < shares["validation"] < 0.15


def test_note_events_lie_inside_the_audio_and_are_sorted(builds):
  _, _, examples, _ = builds
  for split in SPLITS:
    for example in examples[split]:
      notes, n = example["notes"], example["audio"].shape[0]
      assert notes["start"].shape[0] > 10
      assert notes["start"].dtype == notes["end"].dtype == np.int64
      assert notes["pitch_midi"].dtype == notes["part"].dtype == np.int32
      assert np.all(0 <= notes["start"]) and np.all(notes["start"] < notes["end"])
      assert np.all(notes["end"] <= n)
      assert np.all(np.diff(notes["start"]) >= 0)
      assert np.all((30 <= notes["pitch_midi"]) & (notes["pitch_midi"] <= 90))
      assert set(notes["part"].tolist()) == {0, 1, 2, 3}  # SATB.
      assert np.all((1 <= notes["velocity"]) & (notes["velocity"] <= 127))


def test_notes_follow_the_score():
  """read_notes against an independent reading: tied notes skipped instead of stripped."""
  from music21 import converter, corpus

  piece = music21_audio.select_pieces(music21_audio.Music21Audio.BUILDER_CONFIGS[0])["test"][0]
  notes = music21_audio.read_notes(piece, default_bpm=90.0, default_velocity=80)
  parser = converter.Converter()
  parser.parseFileNoPickle(corpus.getWork(piece))
  for part_index, part in enumerate(parser.stream.parts):
    expected = [(float(n.offset) * 60 / 90, n.pitch.midi) for n in part.flatten().notes
                if n.tie is None or n.tie.type == "start"]
    mine = notes["part"] == part_index
    assert notes["pitch_midi"][mine].tolist() == [pitch for _, pitch in expected]
    np.testing.assert_allclose(notes["start_s"][mine], [start for start, _ in expected])
  assert notes["end_s"].max() == pytest.approx(parser.stream.highestTime * 60 / 90)


@pytest.mark.parametrize("instrument", music21_audio.INSTRUMENTS)
@pytest.mark.parametrize("rate", [16000, 24000])
def test_a_note_sounds_at_its_pitch(instrument, rate):
  for pitch in (43, 60, 69, 81):  # G2, C4, A4, A5.
    f0 = music21_audio.midi_to_hz(pitch)
    audio = music21_audio.render_note(instrument, pitch, 0.8, rate)
    assert audio.shape[0] == round((0.8 + music21_audio.RELEASE_S) * rate)
    assert abs(_cents(_peak_hz(audio, rate, f0), f0)) < 2, pitch
    # After the attack, nearly all the energy lies within 3% of the note's harmonics.
    spectrum = np.abs(np.fft.rfft(audio[rate // 20:])) ** 2
    freqs = np.fft.rfftfreq(audio[rate // 20:].shape[0], 1 / rate)
    off_grid = np.abs(freqs / f0 - np.round(freqs / f0))  # In units of f0.
    harmonic = off_grid < np.maximum(0.1, 0.03 * freqs / f0)  # Piano partials are stretched.
    assert spectrum[harmonic & (freqs > f0 * 0.9)].sum() > 0.95 * spectrum.sum(), pitch


def test_dataset_audio_plays_the_labelled_notes(builds):
  """Chroma of the audio matches the chroma of the note labels, and not a transposition."""
  _, _, examples, _ = builds
  frame, hop = 2048, 1024
  freqs = np.fft.rfftfreq(frame, 1 / RATE)
  band = (freqs > 60) & (freqs < 2000)
  pitch_class = np.round(12 * np.log2(freqs[band] / 440) + 69).astype(int) % 12
  for split in SPLITS:
    for example in examples[split]:
      audio = example["audio"] / 32768
      assert 0.5 < np.abs(audio).max() < 0.75  # -3 dBFS peak.
      starts = np.arange(0, audio.shape[0] - frame, hop)
      power = np.abs(np.fft.rfft(np.stack([audio[s:s + frame] for s in starts])
                                 * np.hanning(frame), axis=1)) ** 2
      heard = np.stack([power[:, band][:, pitch_class == k].sum(1) for k in range(12)], 1)
      labelled = np.zeros_like(heard)
      centers = starts + frame // 2
      notes = example["notes"]
      for pitch, start, end in zip(notes["pitch_midi"], notes["start"], notes["end"],
                                   strict=True):
        labelled[(centers >= start) & (centers < end), pitch % 12] += 1
      keep = labelled.sum(1) > 0
      assert keep.mean() > 0.8
      heard, labelled = heard[keep], labelled[keep]
      heard /= np.linalg.norm(heard, axis=1, keepdims=True)
      similarity = [np.mean(np.sum(heard * np.roll(labelled, k, axis=1), 1)
                            / np.linalg.norm(labelled, axis=1)) for k in range(12)]
      assert similarity[0] > 0.6 and similarity[0] == max(similarity), similarity


def test_instruments_sound_different():
  n_hold = RATE * 2
  notes = {name: music21_audio.render_note(name, 57, 2.0, RATE)
           for name in music21_audio.INSTRUMENTS}

  def level(audio, at_s):  # RMS of 50 ms at `at_s`.
    start = int(at_s * RATE)
    return np.sqrt(np.mean(audio[start:start + RATE // 20] ** 2))

  decay = {name: level(a, 1.8) / level(a, 0.2) for name, a in notes.items()}
  assert decay["organ"] > 0.9  # Sustains while held.
  assert decay["plucked_string"] < 0.1  # The string's loop loses energy every period.
  assert 0.1 < decay["piano"] < 0.6  # Exponential partial decay, slower than the pluck.
  for name, audio in notes.items():  # Released: silent within RELEASE_S of the note's end.
    assert np.abs(audio[n_hold + RATE // 4:]).max() < 0.01 * np.abs(audio).max(), name
  # Piano partials are stretched (stiff string); the organ's are exact harmonics.
  f0 = music21_audio.midi_to_hz(57)
  assert 5 < _cents(_peak_hz(notes["piano"][:n_hold], RATE, 8 * f0), 8 * f0) < 30
  assert abs(_cents(_peak_hz(notes["organ"][:n_hold], RATE, 8 * f0), 8 * f0)) < 1


def test_each_piece_differs_across_instruments(builds):
  """Same notes and length; the organ's level is the steadiest, the plucked string's the
  least steady (10th / 90th percentile of 20 ms frame levels)."""
  _, _, examples, _ = builds
  for split in SPLITS:
    by_instrument = {music21_audio.INSTRUMENTS[e["instrument"]]: e for e in examples[split]}
    steadiness = {}
    for name, example in by_instrument.items():
      np.testing.assert_array_equal(example["notes"]["start"],
                                    by_instrument["organ"]["notes"]["start"])
      audio = example["audio"] / 32768
      assert audio.shape == by_instrument["organ"]["audio"].shape
      frames = audio[:audio.shape[0] // 320 * 320].reshape(-1, 320)
      level = np.sqrt(np.mean(frames**2, axis=1))
      steadiness[name] = np.percentile(level, 10) / np.percentile(level, 90)
    assert steadiness["organ"] > steadiness["piano"] > 0.4, steadiness
    assert steadiness["plucked_string"] < 0.3, steadiness


def test_comb_filter_is_the_karplus_strong_recurrence():
  """Against the recurrence sample by sample, for plain and unrolled blocks and a batch."""
  rng = np.random.default_rng(0)
  bursts = rng.uniform(-1, 1, (2, 37))
  num_samples, gain = 4000, 0.99
  for loop_samples in (36.7, 5.2, 100.5, 700.3):
    period = int(np.floor(loop_samples - 0.5))
    frac = loop_samples - 0.5 - period
    taps = gain * np.array([0.5 * (1 - frac), 0.5, 0.5 * frac])
    expected = np.zeros((2, num_samples))
    for n in range(num_samples):  # y[n] = x[n] + taps . (y[n-P], y[n-P-1], y[n-P-2]).
      expected[:, n] = (bursts[:, n] if n < bursts.shape[1] else 0.0) + sum(
          t * expected[:, n - period - k] for k, t in enumerate(taps) if n - period - k >= 0)
    got = music21_audio.comb_filter(bursts, num_samples, loop_samples, gain)
    np.testing.assert_allclose(got, expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(music21_audio.comb_filter(bursts[1], num_samples,
                                                         loop_samples, gain), got[1], atol=1e-12)
  with pytest.raises(ValueError, match="too short"):
    music21_audio.comb_filter(bursts, 100, 1.2, gain)


def test_plucks_are_seeded():
  def pluck(seed):
    return music21_audio.render_note("plucked_string", 60, 0.5, RATE,
                                     rng=np.random.default_rng(seed))

  assert pluck(1).tobytes() == pluck(1).tobytes()
  assert not np.allclose(pluck(1), pluck(2))
  f0 = music21_audio.midi_to_hz(60)
  assert abs(_cents(_peak_hz(pluck(2), RATE, f0), f0)) < 2


def _data_config(data_dir: str, name: str, rate: int) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name, data_dir=data_dir, sample_rate_hz=rate, crop_samples=400, batch_size=4,
      train_split="train", skip_bad_files=False, num_threads=1))


def test_pipeline_reads_it(builds):
  data_dir, _, examples, _ = builds
  source = pipeline.get_source(_data_config(data_dir, "music21_audio/tiny", RATE), "train")
  assert len(source) == len(examples["train"]) and source.num_speakers == 3
  decoded = [source.decode(source.records[i]) for i in range(len(source))]
  assert sorted(d["speaker"] for d in decoded) == [0, 1, 2]
  by_speaker = {e["instrument"]: e["audio"] for e in examples["train"]}
  for d in decoded:
    assert d["audio"].dtype == np.float32
    np.testing.assert_array_equal(d["audio"], by_speaker[d["speaker"]] / np.float32(32768))
  half = pipeline.get_source(_data_config(data_dir, "music21_audio/tiny", RATE // 2), "test")
  test_samples = examples["test"][0]["audio"].shape[0]  # One piece: all the same length.
  assert half.decode(half.records[0])["audio"].shape[0] == test_samples // 2
  batch = next(iter(pipeline.train_dataset(_data_config(data_dir, "music21_audio/tiny", RATE),
                                           seed=0, process_index=0, process_count=1)))
  assert batch["audio"].shape == (4, 400) and set(batch["speaker"].tolist()) <= {0, 1, 2}


def test_unknown_config_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="known: tiny, default, default_24khz"):
    music21_audio.prepare(str(tmp_path), "huge")
  with pytest.raises(ValueError, match="'kazoo'"):
    music21_audio.render_note("kazoo", 60, 0.1, RATE)
  configs = {c.name: c for c in music21_audio.Music21Audio.BUILDER_CONFIGS}
  assert configs["default_24khz"].sample_rate_hz == 24000
  assert music21_audio.select_pieces(configs["default_24khz"]) == music21_audio.select_pieces(
      configs["default"])


def test_prepare_data_command_summarizes_the_built_dataset(builds):
  data_dir, _, _, _ = builds
  result = subprocess.run(
      [sys.executable, "-m", "launch.prepare_data", "--dataset=music21_audio", "--config=tiny",
       f"--data_dir={data_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "music21_audio/tiny" in result.stdout and "(16000 Hz)" in result.stdout
  lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line}
  assert lines["train"][1] == "3" and lines["train"][3] == "3"  # 3 examples, 3 instruments.


@pytest.mark.parametrize("variant", ["music_tiny", "music_context_tiny"])
def test_wavenet_trains_on_music_and_plays_each_instrument(builds, tmp_path, variant):
  """configs/wavenet.py:music_tiny: the instrument label conditions the model like a speaker;
  music_context_tiny: with a context stack, whose loss counts the crop's positions only."""
  import jax

  from audiojax.train import trainer
  from configs import wavenet as wavenet_config

  data_dir = builds[0]
  config = wavenet_config.get_config(variant)
  config.data.data_dir = data_dir
  config.train.num_steps = 2
  batch = next(iter(pipeline.train_dataset(config.data, seed=0, process_index=0,
                                           process_count=1)))
  assert set(batch["speaker"].tolist()) <= {0, 1, 2}
  workdir = str(tmp_path / "music")
  state = trainer.train_and_evaluate(config, workdir)
  assert int(state.step) == 2
  model, task, variables, _ = trainer.restore_variables(config, workdir)
  audio = task.generate(model, variables, jax.random.key(0), 3, 40, np.arange(3, dtype=np.int32))
  assert audio.shape == (3, 40) and np.isfinite(np.asarray(audio)).all()
  _, (metrics, _) = task.loss_fn(model, variables, jax.tree.map(np.asarray, batch),
                                 jax.random.key(1), train=False)
  positions = config.model.context_crop or config.data.crop_samples - 1
  assert metrics["num_predictions"] <= batch["audio"].shape[0] * positions
  assert metrics["num_predictions"] > (batch["audio"].shape[0] - 1) * positions


def test_read_notes_takes_a_score_file_and_names_a_bad_piece(tmp_path):
  from music21 import note, stream

  melody = stream.Stream([note.Note("C4", quarterLength=1), note.Note("E4", quarterLength=2)])
  path = str(tmp_path / "two.mid")
  melody.write("midi", fp=path)
  events = music21_audio.read_notes(path)
  assert events["pitch_midi"].tolist() == [60, 64]
  np.testing.assert_allclose(events["start_s"], [0.0, 0.5], atol=1e-6)  # MIDI: 120 bpm.
  with pytest.raises(ValueError, match="neither a score file nor"):
    music21_audio.read_notes("bach/no_such_work_1234")
  garbage = tmp_path / "garbage.mid"
  garbage.write_bytes(b"not a midi file")
  with pytest.raises(ValueError, match="could not read the score"):
    music21_audio.read_notes(str(garbage))


def test_score_condition_follows_each_example_s_notes(builds):
  """data.condition='notes': every example's frames are `notes.packed` of its own note events
  (one computation per score, shared by the instruments), crops bring their frames, and the
  batch matches `example_batch`; a corpus without notes is a clear error."""
  from audiojax.data import notes
  from configs import wavenet as wavenet_config

  config = wavenet_config.get_config("music_score_tiny")
  config.data.data_dir = builds[0]
  features = pipeline.condition_fn(config.data)
  example = next(pipeline.utterances(config.data, "train", process_index=0, process_count=1))
  hop, harmonics = config.data.condition_hop, config.data.excitation_channels - 1
  np.testing.assert_array_equal(features(example), notes.packed(
      example["notes"], example["audio"].shape[0], hop, RATE, harmonics))
  assert features(example) is features({**example, "speaker": 2})  # Cached by content.
  batch = next(iter(pipeline.train_dataset(config.data, seed=0, process_index=0,
                                           process_count=1)))
  assert batch["condition"].shape == pipeline.example_batch(config.data, 2)["condition"].shape
  speech = pipeline.condition_fn(config.data)
  with pytest.raises(ValueError, match="needs note events"):
    speech({"audio": np.zeros(100, np.float32), "speaker": 0})
  config.data.note_phase = "random"
  np.testing.assert_array_equal(pipeline.condition_fn(config.data)(example), notes.packed(
      example["notes"], example["audio"].shape[0], hop, RATE, harmonics, random_phase=True))
  config.data.note_phase = "sideways"
  with pytest.raises(ValueError, match="note_phase"):
    pipeline.condition_fn(config.data)


@pytest.mark.slow  # ~40 s on 2 cores (two runs trained, four launch.sample calls).
def test_music_score_model_plays_held_out_pieces_and_scores(builds, tmp_path):
  """configs/wavenet.py:music_score_tiny end to end: trained, it resynthesises held-out
  pieces from their notes and plays a corpus score on an instrument; --score refuses a
  model without notes and names a bad score."""
  from tests.launch.test_cli import run

  data_dir, workdir = builds[0], str(tmp_path / "score")
  run("launch.train", "--config=configs/wavenet.py:music_score_tiny", f"--workdir={workdir}",
      f"--config.data.data_dir={data_dir}", "--config.train.num_steps=2",
      "--config.train.eval_every=0")
  out = str(tmp_path / "out")
  held_out = run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}",
                 "--num_samples=2", "--seconds=0.05", "--resynthesize=test")
  assert "energy at the score's partials" in held_out.stdout and "originals" in held_out.stdout
  for name in ("sample_0", "sample_1", "original_0", "original_1"):
    assert sf.info(os.path.join(out, f"{name}.wav")).frames == 800
  played = run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}", "--num_samples=1",
               "--seconds=0.1", "--score=bach/bwv66.6", "--speaker=1")
  assert sf.info(os.path.join(out, "sample_0.wav")).frames == 1600, played.stdout
  bad = run("launch.sample", f"--workdir={workdir}", f"--output_dir={out}",
            "--score=bach/no_such_work_1234", check=False)
  assert bad.returncode != 0 and "neither a score file nor" in bad.stderr
  assert "Traceback" not in bad.stderr
  plain = str(tmp_path / "plain")
  run("launch.train", "--config=configs/wavenet.py:music_tiny", f"--workdir={plain}",
      f"--config.data.data_dir={data_dir}", "--config.train.num_steps=1",
      "--config.train.eval_every=0")
  refused = run("launch.sample", f"--workdir={plain}", f"--output_dir={out}",
                "--score=bach/bwv66.6", check=False)
  assert refused.returncode != 0 and "needs a score-conditioned model" in refused.stderr
