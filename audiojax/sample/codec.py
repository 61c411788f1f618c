"""Codec inference: audio file -> token file -> audio, with a trained SoundStream workdir."""

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.data import audio_io, token_file
from audiojax.sample import framewise
from audiojax.train import checkpoint, trainer

DTYPES = ("float32", "bfloat16")


def with_dtype(model, variables, dtype: str | None):
  """(model, variables) computing in `dtype` (None: as trained). bfloat16 casts the weights
  (not the codebooks) once; on a CPU with AMX the convolutions then run
  `audiojax.kernels.amx_conv`, 2.5-2.7x faster than float32 (benchmarks/RESULTS.md)."""
  if dtype is None:
    return model, variables
  if dtype not in DTYPES:
    raise ValueError(f"codec dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
  params = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
                        else x, variables["params"])
  return model.clone(dtype=jnp.dtype(dtype)), {**variables, "params": params}


def load(workdir: str, dtype: str | None = None):
  """(config, model, variables) of a codec workdir's latest checkpoint (`with_dtype`)."""
  config, model, variables = trainer.restore_model(workdir, "soundstream", "a soundstream codec")
  return (config, *with_dtype(model, variables, dtype))


def num_quantizers_for(model, bitrate_kbps: float | None) -> int:
  """The levels that give `bitrate_kbps` (all when None); a clear error if out of range."""
  if bitrate_kbps is None:
    return model.num_quantizers
  frame_rate = model.sample_rate_hz / model.hop_samples
  per_level = frame_rate * math.log2(model.codebook_size) / 1000  # kbps per quantizer
  nq = round(bitrate_kbps / per_level)
  if not 1 <= nq <= model.num_quantizers:
    raise ValueError(f"--bitrate_kbps={bitrate_kbps}: this codec offers "
                     f"{per_level:g} to {per_level * model.num_quantizers:g} kbps in steps of "
                     f"{per_level:g}")
  return nq


def compress(workdir: str, audio_path: str, bitrate_kbps: float | None = None,
             dtype: str | None = None) -> token_file.TokenFile:
  """Encodes an audio file (any common format and rate) into tokens (`with_dtype`)."""
  config, model, variables = load(workdir, dtype)
  audio = audio_io.load_audio(audio_path, model.sample_rate_hz)
  nq = num_quantizers_for(model, bitrate_kbps)
  frames = max(1, -(-audio.shape[0] // model.hop_samples))
  padded = np.zeros(frames * model.hop_samples, np.float32)
  padded[:audio.shape[0]] = audio
  encode = jax.jit(lambda v, a: model.apply(v, a, nq, method=model.encode))
  codes = np.asarray(encode(variables, jnp.asarray(padded)[None]))[0]
  return token_file.TokenFile(codes, checkpoint.model_fingerprint(config.model), workdir,
                              model.sample_rate_hz, model.hop_samples, model.codebook_size,
                              int(audio.shape[0]))


def decompress(tokens: token_file.TokenFile, workdir: str | None = None,
               dtype: str | None = None) -> np.ndarray:
  """Decodes tokens with the codec that wrote them -> float32 audio [num_samples]
  (`with_dtype`)."""
  workdir = workdir or tokens.workdir
  config, model, variables = load(workdir, dtype)
  if checkpoint.model_fingerprint(config.model) != tokens.fingerprint:
    raise token_file.TokenFileError(
        f"the token file was written by another codec (fingerprint {tokens.fingerprint}) than "
        f"the one in {workdir}: pass --workdir of the run that compressed it")
  if tokens.codes.shape[1] > model.num_quantizers:
    raise token_file.TokenFileError("the token file has more levels than the codec")
  decode = jax.jit(lambda v, c: model.apply(v, c, method=model.decode))
  audio = decode(variables, jnp.asarray(tokens.codes, jnp.int32)[None])
  return np.asarray(audio)[0, :tokens.num_samples]


@functools.cache
def _encoder(model) -> Callable:
  """The jitted encoder of a codec (one per model, so repeated calls share compilations)."""
  return jax.jit(lambda variables, audio: model.apply(variables, audio, method=model.encode))


def encode_utterances(model, variables, audio: Sequence[np.ndarray], batch_size: int = 8
                      ) -> list[np.ndarray]:
  """Each utterance (float32 [samples] at the codec's rate) -> int32 codes [frames, levels],
  all levels (the codec is causal: the zero padding of `framewise.map_utterances` changes no
  code)."""
  encode = _encoder(model)
  codes = framewise.map_utterances(lambda a, mask: encode(variables, a), audio,
                                   model.hop_samples, batch_size)
  return [c.astype(np.int32) for c in codes]
