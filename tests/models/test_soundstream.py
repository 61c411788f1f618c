"""SoundStream: causal encoder and decoder, streaming == offline, shapes and hop."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.kernels import amx_conv
from audiojax.models import soundstream
from audiojax.train import sharding

TINY = dict(channels=4, strides=(2, 3), embedding_dim=8, num_quantizers=3, codebook_size=8)


def setup_model(**overrides):
  model = soundstream.Model(**{**TINY, **overrides})
  audio = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 20 * model.hop_samples)),
                      jnp.float32)
  variables = model.init({"params": jax.random.key(0), "quantizer": jax.random.key(1)}, audio)
  # Fit the codebooks to this audio (k-means init on a training pass).
  _, updates = model.apply(variables, audio, train=True, mutable=["codebooks"],
                           rngs={"quantizer": jax.random.key(2)})
  return model, {**variables, **updates}, audio


def test_shapes_and_hop():
  model, variables, audio = setup_model()
  assert model.hop_samples == 6
  reconstruction, codes, aux = model.apply(variables, audio)
  assert reconstruction.shape == audio.shape
  assert codes.shape == (2, 20, 3) and aux["residual_norms"].shape == (4,)


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_causal(part):
  model, variables, audio = setup_model()
  cut = 10  # frames
  if part == "encoder":
    encode = lambda a: model.apply(variables, a, method=model.encode)
    later = audio.at[:, cut * model.hop_samples:].set(0.9)
    np.testing.assert_array_equal(encode(audio)[:, :cut], encode(later)[:, :cut])
  else:
    codes = model.apply(variables, audio, method=model.encode)
    decode = lambda c: model.apply(variables, c, method=model.decode)
    later = codes.at[:, cut:].set((codes[:, cut:] + 1) % 8)
    np.testing.assert_allclose(decode(codes)[:, :cut * model.hop_samples],
                               decode(later)[:, :cut * model.hop_samples], atol=1e-6)
    assert not np.allclose(decode(codes), decode(later))


@pytest.mark.parametrize("frames_per_chunk", [1, 3])
def test_streaming_equals_offline(frames_per_chunk):
  model, variables, audio = setup_model()
  hop, nq = model.hop_samples, 2
  offline_codes = model.apply(variables, audio, nq, method=model.encode)
  offline_audio = model.apply(variables, offline_codes, method=model.decode)
  stream = soundstream.init_stream(model, variables, batch_size=2, num_quantizers=nq)
  encode = jax.jit(lambda s, a: soundstream.encode_step(model, variables, s, a, nq))
  decode = jax.jit(lambda s, c: soundstream.decode_step(model, variables, s, c))
  codes, pieces = [], []
  chunk = frames_per_chunk * hop
  for start in range(0, audio.shape[1] - chunk + 1, chunk):
    stream, c = encode(stream, audio[:, start:start + chunk])
    stream, a = decode(stream, c)
    codes.append(c)
    pieces.append(a)
  codes, streamed = jnp.concatenate(codes, 1), jnp.concatenate(pieces, 1)
  np.testing.assert_array_equal(codes, offline_codes[:, :codes.shape[1]])
  np.testing.assert_allclose(streamed, offline_audio[:, :streamed.shape[1]], atol=1e-5)


def test_every_tensor_names_its_axes_for_sharding():
  """Every param (codec and discriminators) and codebook array is boxed with one logical name
  per axis, each one `sharding.RULES` knows: a conv added without names fails here."""
  model = soundstream.Model(**TINY)
  variables = jax.eval_shape(lambda: model.init(
      {"params": jax.random.key(0), "quantizer": jax.random.key(1)}, jnp.zeros((1, 1200)),
      method=model.init_all))
  boxed = lambda x: isinstance(x, nn.LogicallyPartitioned)
  leaves = jax.tree_util.tree_leaves_with_path(variables, is_leaf=boxed)
  known = {name for name, _ in sharding.RULES} | {None}
  kernels = 0
  for path, leaf in leaves:
    name = jax.tree_util.keystr(path)
    if name == "['codebooks']['quantizer']['initialized']":  # A flag, replicated.
      continue
    assert boxed(leaf) and len(leaf.names) == leaf.value.ndim, name
    assert set(leaf.names) <= known, (name, leaf.names)
    if name.endswith("['kernel']"):
      kernels += 1
      assert leaf.names[0] == "conv_taps", name
  assert set(variables["params"]) == {"encoder", "decoder", *soundstream.DISCRIMINATORS}
  # Encoder and decoder: 2 + 7 per stride each; wave discriminator: 3 scales x 7; STFT: 8.
  assert kernels == 2 * (2 + 7 * len(TINY["strides"])) + 3 * 7 + 8, kernels


@pytest.mark.skipif(not amx_conv.available(), reason="no AMX on this CPU")
def test_bfloat16_on_amx_streams_as_offline_and_tracks_float32():
  """In bfloat16 on a CPU with AMX (32-channel multiples: the kernel runs every conv but the
  first and last): streaming still equals offline, and the output stays close to float32's."""
  wide = dict(channels=32, strides=(2, 4), embedding_dim=32)
  model, variables, audio = setup_model(**wide)
  half = model.clone(dtype=jnp.bfloat16)
  hop, nq = model.hop_samples, 3
  encode = jax.jit(lambda m, a: m.apply(variables, a, nq, method=m.encode), static_argnums=0)
  decode = jax.jit(lambda m, c: m.apply(variables, c, method=m.decode), static_argnums=0)
  assert amx_conv.TARGET in jax.jit(lambda a: half.apply(variables, a, nq, method=half.encode)
                                    ).lower(audio).compile().as_text()
  codes = encode(half, audio)
  offline = decode(half, codes)
  stream = soundstream.init_stream(half, variables, batch_size=2, num_quantizers=nq)
  step_e = jax.jit(lambda s, a: soundstream.encode_step(half, variables, s, a, nq))
  step_d = jax.jit(lambda s, c: soundstream.decode_step(half, variables, s, c))
  streamed_codes, pieces = [], []
  for start in range(0, audio.shape[1], 2 * hop):
    stream, c = step_e(stream, audio[:, start:start + 2 * hop])
    stream, a = step_d(stream, c)
    streamed_codes.append(c)
    pieces.append(a)
  np.testing.assert_array_equal(jnp.concatenate(streamed_codes, 1), codes)
  np.testing.assert_allclose(jnp.concatenate(pieces, 1), offline, atol=1e-5)
  # Against float32 (same codes, so only the decoder's rounding differs): a relative error of
  # the order of bfloat16's 2^-8 per layer, not more.
  full = decode(model, codes)
  error = float(jnp.linalg.norm(offline - full) / jnp.linalg.norm(full))
  assert error < 0.02, error  # measured 0.0056
  agree = float(jnp.mean(encode(model, audio) == codes))
  assert agree > 0.9, agree  # measured 1.0


@pytest.mark.skipif(not amx_conv.available(), reason="no AMX on this CPU")
def test_float32_in_three_amx_passes_matches_float32():
  """Under jax.default_matmul_precision("high") the float32 codec's convs take three bfloat16
  passes on AMX: the same codes and, on them, the same audio to ~1e-5."""
  model, variables, audio = setup_model(channels=32, strides=(2, 4), embedding_dim=32)
  encode = jax.jit(lambda a: model.apply(variables, a, 3, method=model.encode))
  decode = jax.jit(lambda c: model.apply(variables, c, method=model.decode))
  codes = encode(audio)
  full = decode(codes)
  with jax.default_matmul_precision("high"):
    encode_3x = jax.jit(lambda a: model.apply(variables, a, 3, method=model.encode))
    decode_3x = jax.jit(lambda c: model.apply(variables, c, method=model.decode))
    assert amx_conv.TARGET in decode_3x.lower(codes).compile().as_text()
    np.testing.assert_array_equal(encode_3x(audio), codes)
    error = float(jnp.linalg.norm(decode_3x(codes) - full) / jnp.linalg.norm(full))
  assert error < 1e-4, error
