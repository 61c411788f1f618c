r"""Text-to-speech with a WaveNet conditioned on linguistic features (`configs/wavenet.py:tts`),
or in two stages: an acoustic model (`configs/acoustic.py`) predicts log-mel frames from them
and a WaveNet vocoder (the quick start's) speaks them (`audiojax.sample.tts`).

  python -m launch.synthesize --workdir=runs/tts --text="The quick brown fox." --speaker=3 \
      --output=fox.wav [--temperature=1.0] [--seed=0]
  python -m launch.synthesize --workdir=runs/acoustic --vocoder=runs/wavenet_quickstart \
      --text="The quick brown fox." --speaker=3 --output=fox.wav [--voiced_temperature=0.6]

The front end is espeak-ng, as for the built-in corpus the model trained on: the text is read
by the training corpus' speaker K (its voice, language, rate and pitch), and espeak's phonemes
and durations become the frame features (`audiojax.data.phonemes`) the WaveNet is conditioned
on, together with speaker id K. Of espeak's own audio, a model with an excitation
(`configs/wavenet.py:tts`) takes the pitch: the glottal pulses Praat finds in it
(`audiojax.data.pitch`), i.e. espeak's F0 contour; the waveform is the WaveNet's.

Voice cloning (`configs/wavenet.py:tts_cloning`): --reference=voice.wav (a few seconds of the
voice to clone, any common format and rate) gives the speaker vector; --speaker then only picks
the espeak front end (language, rate) that reads the text, whose F0 contour is moved to the
reference's median pitch (Praat's pulses of both; `--noreference_pitch` keeps espeak's).
  python -m launch.synthesize --workdir=runs/tts_cloning --text="..." --reference=voice.wav \
      --output=cloned.wav

Intelligibility: --recognizer=RUN (a CTC phone recognizer, configs/phone_recognizer.py) hears
the synthesis and espeak's own reading of the text and prints both phone error rates against
the phonemes the model was given (`audiojax.eval.phone_recognizer`).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from audiojax.data import audio_io, espeak_speech, pipeline, pitch
from audiojax.eval import phone_recognizer, voicing
from audiojax.sample import tts
from audiojax.train import losses, tasks, trainer
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A text-to-speech run (configs/wavenet.py:tts) "
                                "or an acoustic model's (configs/acoustic.py, with --vocoder).")
_VOCODER = flags.DEFINE_string("vocoder", None, "With an acoustic model: the log-mel WaveNet "
                               "vocoder run that speaks its frames (configs/wavenet.py).")
_SAMPLING_KWARGS = common.define_sampling_flags()
_TEXT = flags.DEFINE_string("text", None, "What to say, in the speaker's language.")
_SPEAKER = flags.DEFINE_integer("speaker", 0, "Speaker id of the training corpus.")
_OUTPUT = flags.DEFINE_string("output", None, "Where the .wav goes.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Softmax temperature (0 = argmax).",
                                  lower_bound=0.0)
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_REFERENCE = flags.DEFINE_string("reference", None, "Voice-cloning models: a recording of the "
                                 "voice to speak in (any common format and rate).")
_REFERENCE_PITCH = flags.DEFINE_bool(
    "reference_pitch", True, "Voice cloning with a model that takes the pitch (an excitation): "
    "move espeak's F0 contour to the reference's median pitch (else espeak's own).")
_RECOGNIZER = flags.DEFINE_string(
    "recognizer", None, "A phone recognizer run (configs/phone_recognizer.py): print the phone "
    "error rate of the synthesis and of espeak's own reading.")
_HELD_OUT = flags.DEFINE_integer(
    "held_out", 0, "Instead of --text: speak the sentences of N utterances of the corpus' test "
    "split (speakers in turn, each sentence by its own speaker, in one batch, the shorter "
    "ones' frames zero-padded) into "
    "--output_dir; with --recognizer, also the mean phone error rates.", lower_bound=0)
_ESPEAK_MEL = flags.DEFINE_bool(
    "espeak_mel", False, "With an acoustic model: copy synthesis, the vocoder speaks the log-mel "
    "of espeak's own reading instead of the acoustic model's (the vocoder's share of the error).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "With --held_out: where the .wav go.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  config = trainer.load_config(_WORKDIR.value)
  if config.data.get("condition") != "phonemes":
    raise SystemExit(f"error: {_WORKDIR.value} is not a text-to-speech model "
                     "(configs/wavenet.py:tts: data.condition='phonemes')")
  corpus, _, corpus_config = config.data.name.partition("/")
  if corpus != "espeak_speech":
    raise SystemExit(f"error: the model trained on {config.data.name}; launch.synthesize "
                     "speaks with the voices of the built-in espeak_speech corpus")
  speakers = espeak_speech.corpus_speakers(corpus_config or "default")
  if _HELD_OUT.value:
    if _TEXT.value or _OUTPUT.value or not _OUTPUT_DIR.value:
      raise SystemExit("error: --held_out=N writes into --output_dir (no --text or --output)")
    candidates = _held_out_sentences(config.data)
  else:
    if not (_TEXT.value is not None and _OUTPUT.value):
      raise SystemExit("error: pass --text and --output (or --held_out=N and --output_dir)")
    if not 0 <= _SPEAKER.value < len(speakers):
      raise SystemExit(f"error: --speaker={_SPEAKER.value}: the corpus has speakers "
                       f"0..{len(speakers) - 1}")
    candidates = [(_TEXT.value, _SPEAKER.value)]
  rate, hop = config.data.sample_rate_hz, config.data.condition_hop
  reference = common.reference_recording(config, _REFERENCE.value, _WORKDIR.value)
  jobs, examples, conditions, pitch_notes = [], [], [], []
  for text, speaker_id in candidates:
    if len(jobs) == max(_HELD_OUT.value, 1):
      break
    try:
      spoken = {**espeak_speech.speak(speakers[speaker_id], text), "speaker": speaker_id}
      example = pipeline.decode_record(spoken, "speaker", espeak_speech.SAMPLE_RATE_HZ, rate)
      condition = pipeline.condition_fn(config.data, strict=True)(example)  # [frames, C]
    except ValueError as err:
      if not _HELD_OUT.value:
        raise SystemExit(f"error: {err}") from err
      print(f"skipped the held-out sentence {text!r} (speaker {speaker_id}): {err}")
      continue
    pitch_notes.append(_move_pitch(config.data, example, condition, reference))
    jobs.append((text, speaker_id))
    examples.append(example)
    conditions.append(condition)
  if not jobs:
    raise SystemExit("error: the test split holds no sentence this model can say")
  recognizer = _RECOGNIZER.value and common.load_recognizer(_RECOGNIZER.value, rate)
  model, task, variables, step = trainer.restore_variables(config, _WORKDIR.value)
  speaker = jnp.asarray([speaker_id for _, speaker_id in jobs], jnp.int32)
  if reference is not None:
    speaker = jnp.repeat(tasks.speaker_vectors(model, variables, reference), len(jobs), 0)
  outputs = [_OUTPUT.value] if not _HELD_OUT.value else [
      os.path.join(_OUTPUT_DIR.value, f"synthesis_{i}.wav") for i in range(len(jobs))]
  frames = [c.shape[0] for c in conditions]
  condition = jnp.asarray(np.stack([np.pad(c, ((0, max(frames) - c.shape[0]), (0, 0)))
                                    for c in conditions]))  # [n, frames, C], zero-padded
  stages = f"step {step} checkpoint"
  if config.model.name == "acoustic":  # Its log-mel frames, then the vocoder speaks them.
    acoustic, acoustic_variables = model, variables
    model, task, variables, vocoder_step = _load_vocoder(acoustic)
    condition = tts.vocoder_condition(
        acoustic, acoustic_variables, conditions,
        speaker if acoustic.num_speakers or acoustic.speaker_embedding_dim else None)
    if reference is not None and (model.num_speakers or model.speaker_embedding_dim):
      raise SystemExit(f"error: --vocoder={_VOCODER.value} is conditioned on speakers; a "
                       "voice-cloning acoustic model speaks through a vocoder without them "
                       "(configs/wavenet.py:quickstart --config.model.num_speakers=0)")
    stages = f"acoustic model step {step}, vocoder {_VOCODER.value} step {vocoder_step}"
    if _ESPEAK_MEL.value:
      readings = np.stack([np.pad(e["audio"], (0, max(frames) * hop - e["audio"].shape[0]))
                           for e in examples])
      mel = losses.mel_features(jnp.asarray(readings), rate, hop, acoustic.num_mels)
      condition = condition.at[..., :acoustic.num_mels].set(mel)
      stages = f"espeak's log-mel, vocoder {_VOCODER.value} step {vocoder_step}"
  elif _ESPEAK_MEL.value:
    raise SystemExit("error: --espeak_mel is for an acoustic model (configs/acoustic.py)")
  elif _VOCODER.value:
    raise SystemExit(f"error: --vocoder is for an acoustic model (configs/acoustic.py); "
                     f"{_WORKDIR.value} speaks by itself")
  audio = task.generate(model, variables, jax.random.PRNGKey(_SEED.value), len(jobs),
                        max(frames) * hop, speaker, _TEMPERATURE.value, condition=condition,
                        **_SAMPLING_KWARGS())
  audio = np.asarray(jax.device_get(audio))
  rates = []
  for i, ((_, speaker_id), example, output) in enumerate(zip(jobs, examples, outputs, strict=True)):
    clip = audio[i, :frames[i] * hop]
    audio_io.write_wav(output, clip, rate)
    stats = f": {voicing.voicing(clip, rate)}" if clip.shape[0] >= voicing.frame_samples(
        rate) else ""
    front_end = speakers[speaker_id].name
    voice = (f"the voice of {_REFERENCE.value}, read by {front_end}" if reference is not None
             else f"speaker {speaker_id} {front_end}")
    print(f"wrote {output} ({clip.shape[0] / rate:.2f} s at {rate} Hz, {voice}{pitch_notes[i]}, "
          f"{len(example['phonemes'])} phonemes, {stages}){stats}")
    if recognizer:
      phones = [phone for phone, _ in pipeline.recognizer_phones(example)]
      heard = [recognizer.transcribe(x) for x in (clip, example["audio"])]
      rates.append([phone_recognizer.phone_error_rate([phones] * 2, [h, h]) for h in heard]
                   + [len(phones)])
      print(f"phone error rate ({_RECOGNIZER.value}, {len(phones)} phones): synthesis "
            f"{rates[-1][0]:.1%}, espeak's own reading {rates[-1][1]:.1%}")
  if len(rates) > 1:  # Over all phones of all sentences.
    total = sum(r[2] for r in rates)
    mean = [sum(r[k] * r[2] for r in rates) / total for k in (0, 1)]
    print(f"phone error rate over the {len(rates)} sentences ({total} phones): synthesis "
          f"{mean[0]:.1%}, espeak's own readings {mean[1]:.1%}")


def _held_out_sentences(data_config) -> list[tuple[str, int]]:
  """(text, speaker) of the utterances of the test split, speakers in turn."""
  source = pipeline.get_source(data_config, data_config.test_split)
  by_speaker = {}
  for record in source.records:
    text = record["text"].decode() if isinstance(record["text"], bytes) else record["text"]
    by_speaker.setdefault(int(record["speaker"]), []).append(text)
  return [(by_speaker[k][turn], k) for turn in range(max(map(len, by_speaker.values())))
          for k in sorted(by_speaker) if turn < len(by_speaker[k])]


def _move_pitch(data_config, example: dict, condition: np.ndarray,
                reference: np.ndarray | None) -> str:
  """Voice cloning with an excitation (and --reference_pitch): espeak's F0 contour in
  `condition` moved to the reference's register (median pitch), in place; what was done."""
  channels = pipeline.excitation_channels(data_config)
  if reference is None or not channels or not _REFERENCE_PITCH.value:
    return ""
  rate, hop = data_config.sample_rate_hz, data_config.condition_hop
  points = pitch.pulses(example["audio"], rate)
  own, target = pitch.median_f0(points, rate), pitch.median_f0(pitch.pulses(reference[0], rate),
                                                               rate)
  if not (np.isfinite(own) and np.isfinite(target)):
    return ", F0 espeak's (no pitch found in the reference)"
  points = pitch.scale_pulses(points, target / own, rate)
  condition[:, condition.shape[1] - hop * channels:] = pitch.excitation_frames(
      example["audio"], rate, hop, points, channels)
  return f", F0 moved from espeak's {own:.0f} Hz to the reference's {target:.0f} Hz"


def _load_vocoder(acoustic):
  """--vocoder: (model, task, variables, step) of a log-mel WaveNet run that fits `acoustic`."""
  if not _VOCODER.value:
    raise SystemExit("error: an acoustic model (configs/acoustic.py) speaks through a vocoder: "
                     "pass --vocoder=RUN (e.g. the quick start's, runs/wavenet_quickstart)")
  try:
    config = trainer.load_config(_VOCODER.value)
    if config.model.name != "wavenet":
      raise ValueError(f"it holds a {config.model.name} model, not a WaveNet vocoder")
    model, task, variables, step = trainer.restore_variables(config, _VOCODER.value)
    tts.check_vocoder(acoustic, model)
  except (ValueError, FileNotFoundError) as err:
    raise SystemExit(f"error: --vocoder={_VOCODER.value}: {err}") from err
  return model, task, variables, step


if __name__ == "__main__":
  common.run(main)
