"""AudioLM continuations of held-out prompts, scored: is the voice kept, is it speech?

  python -m launch.evaluate --workdir=runs/audiolm --recognizer=runs/phone_recognizer \
      [--compare_workdir=runs/audiolm_acoustic_only] [--split=test_unseen_speakers]

Prompts: `max_prompts` utterances of a speech split (the corpus the stages were trained on) at
least `seconds` long, speakers taken in turn (each speaker's first, then each one's second,
...); the first `prompt_seconds` of each is the prompt and every
pipeline continues it to `seconds` (one draw per prompt, fixed seeds). The part after the prompt
is scored for each pipeline (rows) and for two references cut at the same place:
  real         the utterance's own continuation: what real speech of that voice scores.
  other voice  the real continuation of another speaker's utterance: what a continuation that
               ignores the prompt's voice would score on speaker agreement.
Metrics (columns):
  speaker agreement  share of continuations the speaker probe (`eval.speaker_probe`, fitted on
                     the corpus's training split) assigns to the same speaker as their prompt.
                     For unseen speakers the probe names their nearest training voice, so
                     agreement still asks whether the voice stayed where the prompt put it.
                     Twice: with every clip's features standardised as the probe's training
                     utterances' ("plain"), and with the prompts standardised over the
                     prompts and each row's continuations over themselves ("standardised";
                     `speaker_probe`: generated audio sits apart from recordings in the
                     probe's feature space, and the plain probe can put every continuation on
                     one speaker; over a set that covers the speakers evenly, as the prompts
                     taken in turn do, a shift common to the whole set does not decide).
  phone confidence   mean per-frame confidence of the CTC phone recognizer
                     (`eval.phone_recognizer.confidence`) on the continuation. Chosen over a
                     phone error rate: a continuation has no transcript to score against
                     (AudioLM invents the words), while a recognizer trained only on real
                     speech is confident on clearly articulated phones and not on babble or
                     noise; the real row is the ceiling, and `noise` (white noise at the
                     continuations' level) the floor, measured in the same run.
  phones / s         phones the recognizer transcribes per second (silence and hum give ~0;
                     the corpus's speech ~10-15).
Music (a music corpus, no recognizer; `launch.evaluate --dataset=music21_audio`): the probe
names the instrument instead of the speaker ("other voice": another instrument's piece), and
the content columns are the pitched share of loud frames (pYIN over 60-1000 Hz: notes, not
noise) and the median spectral flatness (0 for pure tones, ~0.56 for white noise).
The paper's comparison (Borsos et al. 2022, table 3: speaker accuracy of continuations of the
full hierarchy vs acoustic tokens only) is the generated rows side by side.
"""

import dataclasses
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np

from audiojax.data import audio_io, pipeline

SAMPLE_RATE_HZ = 16000  # Prompts, probe and recognizer.


@dataclasses.dataclass
class Prompt:
  audio: np.ndarray  # float32 [samples] at 16 kHz: the whole utterance.
  speaker: int


def prompts(data_config: ml_collections.ConfigDict, split: str, seconds: float,
            max_prompts: int) -> list[Prompt]:
  """Up to `max_prompts` utterances of `split` at least `seconds` long, speakers in turn (each
  speaker's first such utterance in split order, then each one's second, ...; among the
  split's first 50 x max_prompts), with 2+ speakers among them (needed for the other-voice
  reference)."""
  if data_config.sample_rate_hz != SAMPLE_RATE_HZ:
    raise ValueError(f"prompts are read at {SAMPLE_RATE_HZ} Hz (the semantic tokenizer's "
                     f"rate); the dataset is at {data_config.sample_rate_hz} Hz")
  by_speaker: dict[int, list[Prompt]] = {}
  for example in pipeline.utterances(data_config, split, max_examples=50 * max_prompts,
                                     process_index=0, process_count=1):
    if example["audio"].shape[0] >= seconds * SAMPLE_RATE_HZ:
      speaker = int(example["speaker"])
      by_speaker.setdefault(speaker, []).append(Prompt(example["audio"], speaker))
  turns = sorted((rank, order, speaker) for order, (speaker, found) in
                 enumerate(by_speaker.items()) for rank in range(len(found)))
  out = [by_speaker[speaker][rank] for rank, _, speaker in turns[:max_prompts]]
  if len({p.speaker for p in out}) < 2:
    raise ValueError(f"{split}: need prompts of at least two speakers at least {seconds} s "
                     f"long; found {len(out)} prompts of {len({p.speaker for p in out})}")
  return out


def other_voice(prompts: Sequence[Prompt]) -> list[int]:
  """For each prompt, the index of the next prompt (cyclically) of another speaker."""
  n = len(prompts)
  return [next(j % n for j in range(i + 1, i + n) if prompts[j % n].speaker != p.speaker)
          for i, p in enumerate(prompts)]


def score(prompt_audio: Sequence[np.ndarray], continuations: Sequence[np.ndarray], probe,
          recognizer=None) -> dict[str, float]:
  """Metrics of `continuations` (16 kHz) after `prompt_audio` (16 kHz); module docstring.

  Speech (a `recognizer`): speaker agreement, phone confidence and phones / s. Music (None):
  instrument agreement (the probe's label), the pitched share of loud frames and the median
  spectral flatness (`eval.voicing`, pitch searched over 60-1000 Hz).
  """
  from audiojax.eval import phone_recognizer, voicing

  agree = {key: float(np.mean(probe.predict(list(prompt_audio), over) ==
                              probe.predict(list(continuations), over)))
           for key, over in (("speaker_agreement", False),
                             ("speaker_agreement_standardised", True))}
  if recognizer is None:
    stats = [voicing.voicing(clip, SAMPLE_RATE_HZ, fmax_hz=1000.0) for clip in continuations]
    return {**agree, "pitched_fraction": float(np.mean([s.voiced_fraction for s in stats])),
            "flatness": float(np.nanmean([s.flatness for s in stats]))}
  confidences, rates = [], []
  for clip in continuations:
    confidences.append(phone_recognizer.confidence(recognizer.log_posteriors(clip)))
    rates.append(len(recognizer.transcribe(clip)) / (len(clip) / SAMPLE_RATE_HZ))
  return {**agree, "phone_confidence": float(np.mean(confidences)),
          "phones_per_second": float(np.mean(rates))}


def evaluate(pipelines: dict[str, Callable[[np.ndarray, int], np.ndarray]],
             prompt_list: Sequence[Prompt], prompt_seconds: float, seconds: float, probe,
             recognizer=None, seed: int = 0) -> dict[str, dict[str, float]]:
  """{row: metrics} for the references and each pipeline (`score`: speech metrics with a
  `recognizer`, music metrics without).

  pipelines: name -> continue(prompt float32 [samples] at 16 kHz, seed) -> float32 audio
  [seconds * 16 kHz] at 16 kHz whose start is the prompt (`pipeline_continuer`).
  """
  cut = round(prompt_seconds * SAMPLE_RATE_HZ)
  end = round(seconds * SAMPLE_RATE_HZ)
  heads = [p.audio[:cut] for p in prompt_list]
  real = [p.audio[cut:end] for p in prompt_list]
  rng = np.random.default_rng(seed)
  level = float(np.sqrt(np.mean(np.concatenate(real) ** 2)))
  rows = {"real": real, "other voice": [real[j] for j in other_voice(prompt_list)],
          "noise": [(level * rng.standard_normal(end - cut)).astype(np.float32)
                    for _ in prompt_list]}
  for name, continue_fn in pipelines.items():
    rows[name] = [continue_fn(head, seed + i)[cut:end] for i, head in enumerate(heads)]
  return {name: {**score(heads, clips, probe, recognizer), "num_prompts": len(clips)}
          for name, clips in rows.items()}


def pipeline_continuer(pipe, seconds: float, temperatures: dict[str, float] | None = None
                       ) -> Callable[[np.ndarray, int], np.ndarray]:
  """continue(prompt at 16 kHz, seed) -> the pipeline's `seconds` of audio at 16 kHz."""
  from audiojax.sample import audiolm

  def continue_fn(prompt: np.ndarray, seed: int) -> np.ndarray:
    audio = audiolm.generate(pipe, seconds, jax.random.key(seed), 1, prompt=prompt,
                             temperatures=temperatures)[0]
    audio = audio_io.resample(audio, pipe.codec_model.sample_rate_hz, SAMPLE_RATE_HZ)
    return np.pad(audio, (0, max(0, round(seconds * SAMPLE_RATE_HZ) - len(audio))))

  return continue_fn


def markdown(result: dict[str, dict[str, float]], split: str, prompt_seconds: float,
             seconds: float, label: str = "speaker") -> str:
  """The rows as a markdown table (`label`: what the probe names, speaker or instrument)."""
  n = next(iter(result.values()))["num_prompts"]
  speech = "phone_confidence" in next(iter(result.values()))
  lines = [f"{split}: {n} prompts of {prompt_seconds:g} s continued to {seconds:g} s; the "
           "continuation is scored.", ""]
  agreement = lambda m: (f"{m['speaker_agreement']:.2f} | "
                         f"{m.get('speaker_agreement_standardised', float('nan')):.2f}")
  head = f"| continuation | {label} agreement | the same, standardised per set |"
  if speech:
    lines += [f"{head} phone confidence | phones / s |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {name} | {agreement(m)} | {m['phone_confidence']:.3f} | "
              f"{m['phones_per_second']:.1f} |" for name, m in result.items()]
  else:
    lines += [f"{head} pitched share | spectral flatness |",
              "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {name} | {agreement(m)} | {m['pitched_fraction']:.2f} | "
              f"{m['flatness']:.3f} |" for name, m in result.items()]
  return "\n".join(lines)
