"""Writes audio sampled from a trained workdir's latest checkpoint.

  python -m launch.sample --workdir=runs/wavenet --output_dir=samples --num_samples=4 \
      --seconds=2 [--speaker=3] [--temperature=1.0] [--seed=0]

A locally conditioned WaveNet (e.g. `configs/wavenet.py:vocoder`) resynthesises a recording
from its log-mel features (the features the model was trained on, computed from the file):
  python -m launch.sample --workdir=runs/vocoder --output_dir=resynth \
      --condition_audio=in.wav [--speaker=3]
Each clip then has the recording's length (--seconds is ignored). Or it resynthesises
held-out clips of its own dataset, each with its own speaker, written next to the originals:
  python -m launch.sample --workdir=runs/vocoder --output_dir=resynth --resynthesize=test \
      --num_samples=4 --seconds=2
A score-conditioned model (`configs/wavenet.py:music_score`) plays a score, the first --seconds
of a music21 corpus work or a MusicXML / MIDI file, on instrument --speaker:
  python -m launch.sample --workdir=runs/music_score --output_dir=music --score=bach/bwv66.6 \
      --speaker=1 --seconds=8
or resynthesises held-out pieces from their notes (--resynthesize); it prints the share of the
audio's energy at the score's partials (`music_metrics.score_energy`; noise scores the share of
the spectrum they cover).
With --recognizer=RUN (a CTC phone recognizer, configs/phone_recognizer.py), how intelligible
the resyntheses are: the phone error rate of what it hears in them against what it hears in
the originals (or the recording). Resyntheses are also scored against their originals (they are
time-aligned through the features): mean log-mel distance (`codec_metrics.mel_distance`) and,
with the `eval` extra, STOI and wide-band PESQ.
--prompt_audio=speech.wav
continues a recording: each clip starts with its first --prompt_seconds (teacher-forced through
the sampler, not drawn). A voice-cloning model
(`speaker_embedding_dim > 0`) speaks in the voice of --reference=voice.wav instead of --speaker.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from audiojax.data import audio_io, music21_audio, notes, pipeline
from audiojax.eval import codec_metrics, music_metrics, phone_recognizer, voicing
from audiojax.train import sharding, tasks, trainer
from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by launch.train.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the .wav files go.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 4, "How many clips.", lower_bound=1)
_SECONDS = flags.DEFINE_float("seconds", 2.0, "Length of each clip.", lower_bound=0.001)
_SPEAKER = flags.DEFINE_integer("speaker", None, "Speaker id (models with speakers); "
                                "default: clip i uses speaker i mod num_speakers.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Softmax temperature (0 = argmax).",
                                  lower_bound=0.0)
_SAMPLING_KWARGS = common.define_sampling_flags()
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_CONDITION_AUDIO = flags.DEFINE_string(
    "condition_audio", None, "Locally conditioned models: resynthesise this recording from its "
    "features (any common format and rate).")
_RESYNTHESIZE = flags.DEFINE_string(
    "resynthesize", None, "Locally conditioned models: resynthesise --num_samples clips of "
    "--seconds from this split of the model's dataset (speakers in turn, each with its own "
    "speaker id), next to the originals (original_<i>.wav). The default for such a model "
    "when --condition_audio is not given: the test split.")
_SCORE = flags.DEFINE_string(
    "score", None, "Score-conditioned models (configs/wavenet.py:music_score): play the first "
    "--seconds of this score, a music21 corpus work (bach/bwv66.6) or a MusicXML / MIDI file, "
    "on instrument --speaker.")
_PROMPT_AUDIO = flags.DEFINE_string(
    "prompt_audio", None, "Continue this recording (any common format and rate): each clip "
    "starts with its first --prompt_seconds, then the model's continuation.")
_PROMPT_SECONDS = flags.DEFINE_float("prompt_seconds", 0.25, "Length of the prompt.",
                                     lower_bound=0.001)
_REFERENCE = flags.DEFINE_string("reference", None, "Voice-cloning models: a recording of the "
                                 "voice to speak in (any common format and rate).")
_RECOGNIZER = flags.DEFINE_string(
    "recognizer", None, "Resyntheses: a phone recognizer run (configs/phone_recognizer.py); "
    "print their phone error rate against what it hears in the originals.")
flags.mark_flags_as_required(["workdir", "output_dir"])


def main(argv):
  del argv
  sharding.use_cpu_cores()  # On a CPU, clips are drawn in parallel, one core each.
  config = trainer.load_config(_WORKDIR.value)
  model, task, variables, step = trainer.restore_variables(config, _WORKDIR.value)
  if task.generate is None:
    hint = (": it speaks through a vocoder, launch.synthesize --vocoder=RUN"
            if config.model.name == "acoustic" else "")
    raise SystemExit(f"error: the {config.model.name} model in {_WORKDIR.value} does not draw "
                     f"audio samples{hint}")
  num_speakers = config.model.get("num_speakers", 0)
  if _SPEAKER.value is not None and not 0 <= _SPEAKER.value < max(num_speakers, 1):
    raise SystemExit(f"error: --speaker={_SPEAKER.value} but the model has "
                     f"{num_speakers} speakers (ids 0..{max(num_speakers - 1, 0)})")
  n = _NUM_SAMPLES.value
  speaker = (jnp.full((n,), _SPEAKER.value, jnp.int32) if _SPEAKER.value is not None
             else jnp.arange(n, dtype=jnp.int32) % max(num_speakers, 1))
  rate = config.data.sample_rate_hz
  reference = common.reference_recording(config, _REFERENCE.value, _WORKDIR.value)
  if reference is not None:
    speaker = jnp.repeat(tasks.speaker_vectors(model, variables, reference), n, axis=0)
  length = int(round(_SECONDS.value * rate))
  kwargs = {}
  conditioned = config.model.get("condition_channels", 0) > 0
  resynthesize = _RESYNTHESIZE.value
  score_model = config.model.get("condition_source") == "notes"
  if _SCORE.value and not score_model:
    raise SystemExit(f"error: --score needs a score-conditioned model (configs/wavenet.py:"
                     f"music_score); {_WORKDIR.value} has none")
  if conditioned and not (_CONDITION_AUDIO.value or resynthesize or _SCORE.value):
    resynthesize = config.data.get("test_split", "test")  # What else it can draw.
    print(f"a locally conditioned model: resynthesising held-out clips of the {resynthesize} "
          "split (--condition_audio=FILE for a recording, --score for a score model)")
  sources = bool(_CONDITION_AUDIO.value) + bool(resynthesize) + bool(_SCORE.value)
  if conditioned != bool(sources) or sources > 1:
    raise SystemExit(
        "error: pass only one of --condition_audio=FILE, --resynthesize=SPLIT and --score"
        if conditioned
        else "error: --condition_audio and --resynthesize need a locally conditioned model "
        f"(configs/wavenet.py:vocoder); {_WORKDIR.value} has none")
  if _CONDITION_AUDIO.value and score_model:
    raise SystemExit("error: a score-conditioned model plays notes, not a recording's features: "
                     "pass --score or --resynthesize")
  if _CONDITION_AUDIO.value and num_speakers and _SPEAKER.value is None:
    raise SystemExit(f"error: this model is also conditioned on the speaker ({num_speakers} ids): "
                     "pass the recording's speaker as --speaker=K; another speaker's voice "
                     "against the recording's features resynthesises neither")
  if _RECOGNIZER.value and not sources:
    raise SystemExit("error: --recognizer scores resyntheses: it needs --resynthesize or "
                     "--condition_audio (a locally conditioned model)")
  recognizer = _RECOGNIZER.value and common.load_recognizer(_RECOGNIZER.value, rate)
  originals = []
  if _CONDITION_AUDIO.value:
    recording = audio_io.load_audio(_CONDITION_AUDIO.value, rate)
    originals = recording[None]
    length = recording.shape[0]
    features = tasks.condition_features(model, jnp.asarray(recording)[None])  # [1, frames, C]
    kwargs["condition"] = jnp.repeat(features, n, axis=0)
  elif _SCORE.value:
    try:
      events, length = music21_audio.excerpt(music21_audio.read_notes(_SCORE.value),
                                             _SECONDS.value, rate)
    except ValueError as err:
      raise SystemExit(f"error: --score={_SCORE.value}: {err}") from err
    features = pipeline.score_fn(config.data)({"audio": np.zeros(length), "notes": events})
    kwargs["condition"] = jnp.repeat(jnp.asarray(features)[None], n, axis=0)
  elif resynthesize:  # Held-out clips, each with its own speaker (not --speaker).
    originals, speaker, kwargs["condition"] = tasks.resynthesis_inputs(
        model, config.data, resynthesize, n, length)
    speaker = jnp.asarray(speaker)
  if _PROMPT_AUDIO.value:
    prompt = audio_io.load_audio(_PROMPT_AUDIO.value, rate)[:int(_PROMPT_SECONDS.value * rate)]
    if not 0 < prompt.shape[0] < length:
      raise SystemExit(f"error: the prompt has {prompt.shape[0]} samples; the clips need more "
                       f"than that and it needs at least one (clips: {length} samples)")
    kwargs["prompt"] = jnp.repeat(jnp.asarray(prompt)[None], n, axis=0)
  kwargs.update(_SAMPLING_KWARGS())
  mesh = sharding.make_mesh()
  mesh = mesh if mesh.size > 1 and n % mesh.size == 0 else None
  audio = task.generate(model, variables, jax.random.PRNGKey(_SEED.value), n, length, speaker,
                        _TEMPERATURE.value, mesh, **kwargs)
  given = kwargs["prompt"].shape[1] if "prompt" in kwargs else 0
  audio = np.asarray(jax.device_get(audio))
  for i, clip in enumerate(audio):
    path = os.path.join(_OUTPUT_DIR.value, f"sample_{i}.wav")
    audio_io.write_wav(path, clip, rate)
    drawn = clip[given:]  # Voicing of what the model drew (not of the prompt).
    stats = (f": {'continuation: ' if given else ''}{voicing.voicing(drawn, rate)}"
             if drawn.shape[0] >= voicing.frame_samples(rate) else "")
    print(f"wrote {path} ({length / rate:.2f} s at {rate} Hz, step {step} checkpoint){stats}")
  if resynthesize:
    for i, clip in enumerate(np.asarray(originals)):
      audio_io.write_wav(os.path.join(_OUTPUT_DIR.value, f"original_{i}.wav"), clip, rate)
    stats = [f"{voicing.voicing(clip, rate)}" for clip in np.asarray(originals)
             if clip.shape[0] >= voicing.frame_samples(rate)]
    print(f"the originals (speakers {', '.join(map(str, np.asarray(speaker)))}): "
          f"{_OUTPUT_DIR.value}/original_*.wav{': ' if stats else ''}{'; '.join(stats)}")
  if len(originals) and not given:
    speech = not pipeline.is_music(config.data.name)
    print(f"the resyntheses against their originals: "
          f"{_closeness(originals, audio, rate, speech)}")
  if score_model:
    roll = np.asarray(kwargs["condition"])[..., :notes.NUM_PITCHES]  # [n, frames, pitches]
    energy = lambda clips: np.nanmean([music_metrics.score_energy(
        clip, roll[i], config.model.condition_hop, rate) for i, clip in enumerate(clips)])
    chance = np.nanmean([music_metrics.score_coverage(r, config.model.condition_hop,
                                                      audio.shape[1], rate) for r in roll])
    print(f"energy at the score's partials (music_metrics.score_energy): samples "
          f"{energy(audio):.3f}" + (f", originals {energy(np.asarray(originals)):.3f}"
                                    if len(originals) else "") + f", noise {chance:.3f}")
  if recognizer:
    heard = [recognizer.transcribe(clip) for clip in np.asarray(originals)]
    heard = heard * (len(audio) // len(heard))  # One recording, n resyntheses of it.
    if not any(heard):
      print(f"phone error rate: {_RECOGNIZER.value} hears no phone in the originals")
    else:
      rate_of = phone_recognizer.phone_error_rate(heard, [recognizer.transcribe(c) for c in audio])
      print(f"phone error rate of the resyntheses against what {_RECOGNIZER.value} hears in "
            f"the originals ({sum(map(len, heard))} phones): {rate_of:.1%}")


def _closeness(originals: np.ndarray, resyntheses: np.ndarray, rate: int, speech: bool) -> str:
  """Mean mel distance (and for speech STOI, PESQ where installed) of resyntheses
  [n, samples] to their originals [n or 1, samples]."""
  originals = np.asarray(originals)
  pairs = [(originals[i % len(originals)], clip) for i, clip in enumerate(resyntheses)]
  scores = {"mel distance": [codec_metrics.mel_distance(a, b, rate) for a, b in pairs]}
  try:
    if speech:
      scores["STOI"] = [codec_metrics.stoi(a, b, rate) for a, b in pairs]
      scores["PESQ"] = [codec_metrics.pesq_wb(a, b, rate) for a, b in pairs]
  except ImportError:  # The `eval` extra is not installed: the mel distance alone.
    pass
  means = {name: np.asarray(values)[np.isfinite(values)] for name, values in scores.items()}
  return ", ".join(f"{name} {np.mean(kept):.3f}" if kept.size else f"{name} n/a (clips too short)"
                   for name, kept in means.items())


if __name__ == "__main__":
  common.run(main)
