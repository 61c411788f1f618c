"""The AMX convolution kernel: XLA's convolution of the same bfloat16 values, wherever used."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.kernels import amx_conv
from audiojax.models import layers

needs_amx = pytest.mark.skipif(not amx_conv.available(), reason="no AMX on this CPU")


def operands(batch, steps, channels, features, taps, seed=0, dtype=jnp.bfloat16):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((batch, steps, channels)), dtype)
  kernel = jnp.asarray(rng.standard_normal((taps, channels, features)) / np.sqrt(taps * channels),
                       dtype)
  return x, kernel


def float32_conv(x, kernel, stride=1, dilation=1, padding=0):
  return jax.lax.conv_general_dilated(
      x.astype(jnp.float32), kernel.astype(jnp.float32), (stride,), [(padding, 0)],
      rhs_dilation=(dilation,), dimension_numbers=("NWC", "WIO", "NWC"),
      precision=jax.lax.Precision.HIGHEST)


@needs_amx
@pytest.mark.parametrize("batch,steps,channels,features,taps,stride,dilation", [
    (1, 100, 32, 32, 7, 1, 1),     # a length that is not a whole number of blocks
    (2, 257, 64, 96, 7, 1, 9),     # dilated, batched, 3 output tiles
    (1, 300, 256, 512, 7, 1, 1),   # many channel groups and output pairs
    (3, 45, 32, 64, 1, 1, 1),      # pointwise
    (1, 96, 32, 64, 4, 2, 1),      # strided: frames of 2 steps
    (2, 803, 64, 128, 16, 8, 1),   # strided, a length that is not a whole number of frames
    (1, 50, 32, 32, 10, 5, 1),     # 5 x 32 frame channels
    (2, 101, 32, 64, 3, 2, 1),     # taps not a multiple of the stride (zero taps added)
    (1, 77, 64, 32, 10, 4, 1),
])
def test_kernel_equals_xla_conv(batch, steps, channels, features, taps, stride, dilation):
  """bfloat16 operands: float32 sums of their products. float32 operands (three passes):
  within ~5e-6 of the output's scale (measured), where one pass would be ~2.5e-3 off."""
  for dtype, tolerance in ((jnp.bfloat16, 1e-5), (jnp.float32, 3e-5)):
    x, kernel = operands(batch, steps, channels, features, taps, dtype=dtype)
    conv = jax.jit(lambda x, k: amx_conv.conv(x, k, stride, dilation))
    assert amx_conv.TARGET in conv.lower(x, kernel).compile().as_text()  # the kernel ran
    got, want = conv(x, kernel), float32_conv(x, kernel, stride, dilation)
    assert got.dtype == jnp.float32 and got.shape == want.shape
    scale = float(jnp.max(jnp.abs(want)))
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * scale)


@needs_amx
@pytest.mark.parametrize("channels,features,stride,dilation,taps", [
    (16, 32, 1, 1, 7), (32, 48, 1, 1, 7), (32, 32, 2, 2, 4)])
def test_other_shapes_fall_back_to_xla(channels, features, stride, dilation, taps):
  """Widths not a multiple of 32, dilated strided convs."""
  x, kernel = operands(1, 64, channels, features, taps)
  conv = jax.jit(lambda x, k: amx_conv.conv(x, k, stride, dilation))
  assert amx_conv.TARGET not in conv.lower(x, kernel).compile().as_text()
  np.testing.assert_allclose(conv(x, kernel), float32_conv(x, kernel, stride, dilation),
                             rtol=1e-5, atol=1e-5)


@needs_amx
def test_gradients_and_vmap():
  x, kernel = operands(2, 70, 32, 64, 7)
  probe = jnp.asarray(np.random.default_rng(1).standard_normal((2, 64, 64)), jnp.float32)
  loss = lambda conv: lambda x, k: jnp.sum(conv(x, k) * probe)
  got = jax.grad(loss(lambda x, k: amx_conv.conv(x, k)), argnums=(0, 1))(x, kernel)
  want = jax.grad(loss(lambda x, k: amx_conv._xla(x, k, 1, 1)), argnums=(0, 1))(x, kernel)
  for g, w in zip(got, want, strict=True):
    np.testing.assert_allclose(g.astype(jnp.float32), w.astype(jnp.float32), rtol=1e-2,
                               atol=1e-2)
  batched = jax.vmap(amx_conv.conv, in_axes=(0, None))(x[:, None], kernel)
  np.testing.assert_allclose(batched[:, 0], float32_conv(x, kernel), rtol=1e-5, atol=1e-5)


@needs_amx
@pytest.mark.parametrize("stride,padding", [(1, 6), (4, 4), (4, 2)])
def test_bfloat16_conv_layer_runs_the_kernel_with_padding(stride, padding):
  """layers.Conv in bfloat16 picks the kernel on this CPU: float32 sums of the bfloat16 values
  (padding as zeros before the input, whole frames or not)."""
  x = jnp.asarray(np.random.default_rng(2).standard_normal((1, 96, 32)), jnp.float32)
  conv = layers.Conv(64, 8 if stride > 1 else 7, stride, dtype=jnp.bfloat16, padding=padding)
  params = conv.init(jax.random.key(0), x)
  apply = jax.jit(conv.apply)
  assert amx_conv.TARGET in apply.lower(params, x).compile().as_text()
  kernel, bias = params["params"]["kernel"], params["params"]["bias"]
  want = float32_conv(x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16), stride,
                      padding=padding) + bias
  np.testing.assert_allclose(apply(params, x), want, rtol=1e-5, atol=1e-5)


@needs_amx
def test_bfloat16_frame_upsample_runs_the_kernel():
  """The transposed conv's two products as one 2-tap kernel conv == the float32 products."""
  x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 9, 64)), jnp.float32)
  previous = jnp.asarray(np.random.default_rng(4).standard_normal((2, 1, 64)), jnp.float32)
  upsample = layers.FrameUpsample(32, 4, dtype=jnp.bfloat16)
  params = upsample.init(jax.random.key(0), x, previous)
  apply = jax.jit(upsample.apply)
  assert amx_conv.TARGET in apply.lower(params, x, previous).compile().as_text()
  rounded = jax.tree.map(lambda p: p.astype(jnp.bfloat16).astype(jnp.float32), params)
  want = layers.FrameUpsample(32, 4).apply(
      rounded, x.astype(jnp.bfloat16).astype(jnp.float32),
      previous.astype(jnp.bfloat16).astype(jnp.float32))
  np.testing.assert_allclose(apply(params, x, previous), want, rtol=1e-4, atol=1e-4)


@needs_amx
def test_float32_conv_layer_takes_the_kernel_only_when_asked_for_three_passes():
  x = jnp.asarray(np.random.default_rng(5).standard_normal((1, 80, 32)), jnp.float32)
  conv = layers.Conv(32, 7, padding=6)
  params = conv.init(jax.random.key(0), x)
  assert amx_conv.TARGET not in jax.jit(conv.apply).lower(params, x).compile().as_text()
  want = conv.apply(params, x)
  with jax.default_matmul_precision("high"):
    apply = jax.jit(conv.apply)
    assert amx_conv.TARGET in apply.lower(params, x).compile().as_text()
    got = apply(params, x)
  np.testing.assert_allclose(got, want, rtol=0, atol=3e-5 * float(jnp.max(jnp.abs(want))))


@pytest.mark.skipif(not amx_conv.has_amx(), reason="no AMX on this CPU")
def test_no_compiler_falls_back_with_a_warning(monkeypatch, no_compiler):
  """A CPU with AMX but no compiler: one warning, then XLA's convolution (the same values)."""
  monkeypatch.setattr(amx_conv, "available", amx_conv.available.__wrapped__)
  with pytest.warns(UserWarning, match="AMX convolution kernel is unavailable"):
    assert not amx_conv.available()
  x, kernel = operands(1, 64, 32, 32, 7)
  with pytest.warns(UserWarning, match="unavailable"):
    got = amx_conv.conv(x, kernel)
  np.testing.assert_allclose(got, float32_conv(x, kernel), rtol=1e-5, atol=1e-5)


def test_cpus_without_amx_use_xla(monkeypatch):
  monkeypatch.setattr(amx_conv, "has_amx", lambda: False)
  monkeypatch.setattr(amx_conv, "available", amx_conv.available.__wrapped__)
  x, kernel = operands(1, 64, 32, 32, 7)
  assert not amx_conv.applies(x, kernel)
  np.testing.assert_allclose(amx_conv.conv(x, kernel), float32_conv(x, kernel), rtol=1e-5,
                             atol=1e-5)
