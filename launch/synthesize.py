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

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from audiojax.data import audio_io, espeak_speech, pipeline, pitch
from audiojax.eval import phone_recognizer, voicing
from audiojax.sample import tts
from audiojax.train import tasks, trainer
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A text-to-speech run (configs/wavenet.py:tts) "
                                "or an acoustic model's (configs/acoustic.py, with --vocoder).")
_VOCODER = flags.DEFINE_string("vocoder", None, "With an acoustic model: the log-mel WaveNet "
                               "vocoder run that speaks its frames (configs/wavenet.py).")
_VOICED_TEMPERATURE = flags.DEFINE_float(
    "voiced_temperature", None, "Vocoders with an excitation (the quick start's): the "
    "temperature of voiced samples (default: --temperature).", lower_bound=0.0)
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
flags.mark_flags_as_required(["workdir", "text", "output"])


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
  if not 0 <= _SPEAKER.value < len(speakers):
    raise SystemExit(f"error: --speaker={_SPEAKER.value}: the corpus has speakers "
                     f"0..{len(speakers) - 1}")
  front_end = speakers[_SPEAKER.value]
  try:
    spoken = {**espeak_speech.speak(front_end, _TEXT.value), "speaker": _SPEAKER.value}
    example = pipeline.decode_record(spoken, "speaker", espeak_speech.SAMPLE_RATE_HZ,
                                     config.data.sample_rate_hz)
    condition = pipeline.condition_fn(config.data, strict=True)(example)  # [frames, C]
  except ValueError as err:
    raise SystemExit(f"error: {err}") from err
  rate, hop = config.data.sample_rate_hz, config.data.condition_hop
  reference = common.reference_recording(config, _REFERENCE.value, _WORKDIR.value)
  channels = pipeline.excitation_channels(config.data)
  pitch_note = ""
  if reference is not None and channels and _REFERENCE_PITCH.value:
    # espeak's F0 contour, moved to the reference's register (median pitch).
    points = pitch.pulses(example["audio"], rate)
    own, target = pitch.median_f0(points, rate), pitch.median_f0(pitch.pulses(reference[0], rate),
                                                                 rate)
    if np.isfinite(own) and np.isfinite(target):
      points = pitch.scale_pulses(points, target / own, rate)
      condition[:, condition.shape[1] - hop * channels:] = pitch.excitation_frames(
          example["audio"], rate, hop, points, channels)
      pitch_note = f", F0 moved from espeak's {own:.0f} Hz to the reference's {target:.0f} Hz"
    else:
      pitch_note = ", F0 espeak's (no pitch found in the reference)"
  recognizer = _RECOGNIZER.value and common.load_recognizer(_RECOGNIZER.value, rate)
  model, task, variables, step = trainer.restore_variables(config, _WORKDIR.value)
  speaker = jnp.full((1,), _SPEAKER.value, jnp.int32)
  if reference is not None:
    speaker = tasks.speaker_vectors(model, variables, reference)  # [1, E]
  condition = jnp.asarray(condition)[None]
  stages = f"step {step} checkpoint"
  if config.model.name == "acoustic":  # Its log-mel frames, then the vocoder speaks them.
    acoustic, acoustic_variables = model, variables
    model, task, variables, vocoder_step = _load_vocoder(acoustic)
    condition = tts.vocoder_condition(acoustic, acoustic_variables, condition,
                                      speaker if acoustic.num_speakers else None)
    stages = f"acoustic model step {step}, vocoder {_VOCODER.value} step {vocoder_step}"
  elif _VOCODER.value:
    raise SystemExit(f"error: --vocoder is for an acoustic model (configs/acoustic.py); "
                     f"{_WORKDIR.value} speaks by itself")
  kwargs = {}
  if _VOICED_TEMPERATURE.value is not None:
    if not getattr(model, "excitation_channels", 0):
      raise SystemExit("error: --voiced_temperature needs a model with an excitation")
    kwargs["voiced_temperature"] = _VOICED_TEMPERATURE.value
  length = condition.shape[1] * hop
  audio = task.generate(model, variables, jax.random.PRNGKey(_SEED.value), 1, length, speaker,
                        _TEMPERATURE.value, condition=condition, **kwargs)
  audio = np.asarray(jax.device_get(audio))[0]
  audio_io.write_wav(_OUTPUT.value, audio, rate)
  stats = f": {voicing.voicing(audio, rate)}" if length >= voicing.frame_samples(rate) else ""
  voice = (f"the voice of {_REFERENCE.value}, read by {front_end.name}" if reference is not None
           else f"speaker {_SPEAKER.value} {front_end.name}")
  print(f"wrote {_OUTPUT.value} ({length / rate:.2f} s at {rate} Hz, {voice}{pitch_note}, "
        f"{len(example['phonemes'])} phonemes, {stages}){stats}")
  if recognizer:
    phones = [phone for phone, _ in pipeline.recognizer_phones(example)]
    rates = [phone_recognizer.phone_error_rate([phones], [recognizer.transcribe(clip)])
             for clip in (audio, example["audio"])]
    print(f"phone error rate ({_RECOGNIZER.value}, {len(phones)} phones): synthesis "
          f"{rates[0]:.1%}, espeak's own reading {rates[1]:.1%}")


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
