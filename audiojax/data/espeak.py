"""A small ctypes binding to espeak-ng (the library bundled in the `espeakng-loader` wheel).

Synthesizes text with a named voice (`en-us`, `en+f3`, `de+m4`, ...) into int16 samples at
`SAMPLE_RATE_HZ` (22050 Hz) together with phoneme events: (espeak mnemonic, start sample).
espeak-ng keeps global state, so a process-wide lock serialises voice selection and synthesis.
No system package and no network are needed.
"""

import ctypes
import functools
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import NamedTuple

import espeakng_loader
import numpy as np

SAMPLE_RATE_HZ = 22050

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_RATE, _PITCH, _RANGE = 1, 3, 4
_EE_OK = 0
_RAND_SEED = 1


class _EventId(ctypes.Union):
  _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
  """espeak_EVENT; `sample` is the absolute output sample at which the event happens."""

  _fields_ = [
      ("type", ctypes.c_int),
      ("unique_identifier", ctypes.c_uint),
      ("text_position", ctypes.c_int),
      ("length", ctypes.c_int),
      ("audio_position", ctypes.c_int),
      ("sample", ctypes.c_int),
      ("user_data", ctypes.c_void_p),
      ("id", _EventId),
  ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)

_LOCK = threading.RLock()
_state: dict = {}  # Buffers filled by the callback during one `synthesize` call (under _LOCK).


def _on_synth(wav, num_samples: int, events) -> int:
  if num_samples > 0 and wav:
    _state["chunks"].append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
  i = 0
  while events[i].type != _EVENT_LIST_TERMINATED:
    event = events[i]
    if event.type == _EVENT_PHONEME:
      mnemonic = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
      _state["events"].append((mnemonic, int(event.sample)))
    i += 1
  return 0  # 0: continue synthesis.


_CALLBACK = _SynthCallback(_on_synth)  # Kept alive for the life of the process.


@functools.cache
def _library() -> ctypes.CDLL:
  """Loads and initialises espeak-ng once per process (synchronous, phoneme events)."""
  lib = ctypes.CDLL(espeakng_loader.get_library_path())
  lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
  lib.espeak_Initialize.restype = ctypes.c_int
  lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
  lib.espeak_SetVoiceByName.restype = ctypes.c_int
  lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
  lib.espeak_SetParameter.restype = ctypes.c_int
  lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
  lib.espeak_SetSynthCallback.restype = None
  lib.espeak_Synth.argtypes = [
      ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
      ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
  ]
  lib.espeak_Synth.restype = ctypes.c_int
  lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
  lib.espeak_ng_SetRandSeed.restype = None
  data_path = espeakng_loader.get_data_path().encode()
  rate = lib.espeak_Initialize(
      _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_PHONEME_EVENTS
  )
  if rate != SAMPLE_RATE_HZ:
    raise RuntimeError(f"espeak-ng initialised at {rate} Hz, expected {SAMPLE_RATE_HZ} Hz")
  lib.espeak_SetSynthCallback(_CALLBACK)
  return lib


@functools.cache
def variant_names() -> frozenset[str]:
  """Names of espeak's voice variants ("f3", "m4", "klatt", ...), usable as "lang+variant"."""
  return frozenset(os.listdir(os.path.join(espeakng_loader.get_data_path(), "voices", "!v")))


def _check_arguments(voice: str, rate_wpm: int, pitch: int, pitch_range: int) -> None:
  # espeak-ng silently ignores an unknown variant, so check it against the data files.
  variant = voice.partition("+")[2]
  if variant and variant not in variant_names():
    raise ValueError(f"unknown espeak voice variant {variant!r} in voice {voice!r}")
  if not 80 <= rate_wpm <= 450:
    raise ValueError(f"rate_wpm={rate_wpm} is outside espeak's 80..450 words per minute")
  for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
    if not 0 <= value <= 100:
      raise ValueError(f"{name}={value} is outside 0..100")


def set_voice(voice: str, rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50) -> None:
  """Selects `voice` ("language[+variant]", e.g. "en-us+f3") and its rate/pitch/range.

  Args:
    voice: espeak voice name: a language (`en-us`, `de`) optionally followed by `+variant`.
    rate_wpm: speaking rate in words per minute (espeak accepts 80..450).
    pitch: base pitch, 0..100 (50 is the voice's default).
    pitch_range: pitch range (intonation), 0..100 (0 is monotone, 50 the default).

  Raises:
    ValueError: unknown language or variant, or parameters out of range.
  """
  _check_arguments(voice, rate_wpm, pitch, pitch_range)
  with _LOCK:
    lib = _library()
    if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
      raise ValueError(f"unknown espeak voice {voice!r}")
    for parameter, value in ((_RATE, rate_wpm), (_PITCH, pitch), (_RANGE, pitch_range)):
      if lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
        raise RuntimeError(f"espeak_SetParameter({parameter}, {value}) failed")


def synthesize(
    text: str, voice: str, rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50
) -> tuple[np.ndarray, list[tuple[str, int]]]:
  """Speaks `text` with `voice` in this process (see `set_voice` for the arguments).

  The waveform depends slightly on what the library synthesized before in this process
  (espeak-ng keeps its pitch-flutter phase, gain control and roughness cycle in C statics that
  no API call resets): use `synthesize_many` for reproducible audio.

  Returns:
    audio: int16 [samples] at SAMPLE_RATE_HZ (22050 Hz).
    phonemes: [(mnemonic, start sample at 22050 Hz)], starts non-decreasing and inside the
      audio; espeak mnemonics such as "D", "@2", "'I", "_:" (pause). Language-switch markers
      like "(en)" are dropped. A phoneme ends where the next starts (the last at the audio end).
  """
  encoded = text.encode("utf-8")
  with _LOCK:
    set_voice(voice, rate_wpm, pitch, pitch_range)
    _state["chunks"], _state["events"] = [], []
    try:
      # espeak_Initialize seeds the noise generator (breath, fricatives) from the clock.
      _library().espeak_ng_SetRandSeed(_RAND_SEED)
      buffer = ctypes.create_string_buffer(encoded)
      error = _library().espeak_Synth(
          buffer, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
      )
      if error != _EE_OK:
        raise RuntimeError(f"espeak_Synth failed with error {error} on {text!r}")
      chunks, events = _state["chunks"], _state["events"]
    finally:
      _state.clear()
  audio = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros((0,), np.int16)
  phonemes, last = [], 0
  for mnemonic, start in events:
    if not mnemonic or mnemonic.startswith("("):
      continue
    last = min(max(start, last), audio.shape[0])
    phonemes.append((mnemonic, last))
  return audio, phonemes


class Request(NamedTuple):
  """One utterance to synthesize: arguments of `synthesize`."""

  text: str
  voice: str
  rate_wpm: int = 175
  pitch: int = 50
  pitch_range: int = 50


def synthesize_many(
    requests: Sequence[Request], timeout_s: float = 600.0
) -> list[tuple[np.ndarray, list[tuple[str, int]]]]:
  """`synthesize` on each request, in order, in a fresh Python subprocess.

  A fresh library state makes the output a function of `requests` alone: the same requests
  give byte-identical audio in any process, whatever ran before (unlike `synthesize`).
  Starting the subprocess costs ~0.2 s. Safe to call from several threads at once.

  Raises:
    ValueError: a request names an unknown voice or has parameters out of range.
    RuntimeError: the subprocess failed (its stderr is included).
  """
  requests = [Request(*r) for r in requests]
  for request in requests:
    _check_arguments(*request[1:])
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
  proc = subprocess.run(
      [sys.executable, "-m", __name__],
      input=pickle.dumps(requests), capture_output=True, env=env, timeout=timeout_s,
      check=False,
  )
  if proc.returncode != 0:
    stderr = proc.stderr.decode("utf-8", "replace")[-4000:]
    raise RuntimeError(f"espeak worker failed (exit code {proc.returncode}):\n{stderr}")
  status, result = pickle.loads(proc.stdout)
  if status == "ValueError":
    raise ValueError(result)
  return result


def _worker_main() -> None:
  """Subprocess side of `synthesize_many`: pickled requests on stdin, results on stdout."""
  out = os.fdopen(os.dup(1), "wb")
  os.dup2(2, 1)  # Anything the C library prints goes to stderr, not into the pickle.
  requests = pickle.loads(sys.stdin.buffer.read())
  try:
    reply = ("ok", [synthesize(*r) for r in requests])
  except ValueError as err:
    reply = ("ValueError", str(err))
  pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
  out.close()


if __name__ == "__main__":
  _worker_main()
