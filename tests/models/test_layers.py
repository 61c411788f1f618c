"""The matmul convolutions equal flax's convolutions on the same params."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.models import layers


@pytest.mark.parametrize("impl", ["taps", "xla"])
@pytest.mark.parametrize("kernel_size,stride,dilation", [(1, 1, 1), (7, 1, 9), (3, 1, 2),
                                                         (16, 8, 1), (4, 2, 1), (5, 3, 2)])
def test_conv_equals_nn_conv(kernel_size, stride, dilation, impl):
  x = jax.random.normal(jax.random.key(0), (2, 96, 6))
  ours = layers.Conv(5, kernel_size, stride, dilation, impl=impl)
  params = ours.init(jax.random.key(1), x)
  reference = nn.Conv(5, (kernel_size,), strides=(stride,), kernel_dilation=(dilation,),
                      padding="VALID")
  np.testing.assert_array_equal(params["params"]["kernel"],
                                reference.init(jax.random.key(1), x)["params"]["kernel"])
  params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)
  expected = reference.apply(params, x)
  assert ours.apply(params, x).shape == expected.shape
  np.testing.assert_allclose(ours.apply(params, x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["taps", "xla"])
@pytest.mark.parametrize("kernel_size,stride,padding", [(7, 1, 6), (8, 4, 4), (5, 2, 3)])
def test_conv_padding_is_zeros_before_the_input(kernel_size, stride, padding, impl):
  x = jax.random.normal(jax.random.key(0), (2, 40, 6))
  ours = layers.Conv(5, kernel_size, stride, impl=impl, padding=padding)
  params = ours.init(jax.random.key(1), x)
  reference = nn.Conv(5, (kernel_size,), strides=(stride,), padding=((padding, 0),))
  np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x), atol=1e-5,
                             rtol=1e-5)


def test_conv_rejects_short_inputs_and_unknown_impls():
  with pytest.raises(ValueError, match="shorter than the kernel"):
    layers.Conv(4, 7, dilation=3, impl="taps").init(jax.random.key(0), jnp.zeros((1, 10, 2)))
  with pytest.raises(ValueError, match="expected auto, taps, amx, narrow or xla"):
    layers.Conv(4, 3, impl="cudnn").init(jax.random.key(0), jnp.zeros((1, 10, 2)))
  with pytest.raises(ValueError, match="one input or output channel"):
    layers.Conv(4, 3, impl="narrow").init(jax.random.key(0), jnp.zeros((1, 10, 2)))


@pytest.mark.parametrize("channels,features", [(1, 5), (6, 1)])
@pytest.mark.parametrize("kernel_size,stride,dilation,padding", [(7, 1, 1, 6), (7, 1, 9, 0),
                                                                 (8, 4, 1, 4), (5, 3, 2, 3)])
@pytest.mark.parametrize("impl", ["narrow", "auto"])
def test_narrow_conv_and_its_gradient_equal_nn_conv(channels, features, kernel_size, stride,
                                                    dilation, padding, impl):
  """One input or output channel (a waveform's conv; "auto" picks narrow on a CPU): the
  output and the gradients of params and input are flax's, in float32 for bfloat16 too."""
  x = jax.random.normal(jax.random.key(0), (2, 96, channels))
  ours = layers.Conv(features, kernel_size, stride, dilation, impl=impl, padding=padding)
  reference = nn.Conv(features, (kernel_size,), strides=(stride,),
                      kernel_dilation=(dilation,), padding=((padding, 0),))
  params = ours.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)
  if jax.default_backend() == "cpu":  # Both impls run conv_narrow, not XLA's convolution.
    primitives = [e.primitive.name for e in jax.make_jaxpr(ours.apply)(params, x).eqns]
    assert "custom_vjp_call" in primitives and "conv_general_dilated" not in primitives
  np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x), atol=1e-5,
                             rtol=1e-5)
  loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  for ours_grad, expected in zip(jax.grad(loss(ours), (0, 1))(params, x),
                                 jax.grad(loss(reference), (0, 1))(params, x), strict=True):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4),
                 ours_grad, expected)
  half = layers.Conv(features, kernel_size, stride, dilation, jnp.bfloat16, impl=impl,
                     padding=padding).apply(params, x)
  assert half.dtype == jnp.float32
  np.testing.assert_allclose(half, reference.apply(params, x), atol=0.1, rtol=0.05)


@pytest.mark.parametrize("stride", [1, 2, 5, 8])
def test_frame_upsample_equals_the_sliced_conv_transpose(stride):
  frames, channels = 6, 4
  x = jax.random.normal(jax.random.key(0), (2, frames, channels))
  previous = jax.random.normal(jax.random.key(1), (2, 1, channels))
  ours = layers.FrameUpsample(3, stride)
  params = ours.init(jax.random.key(2), x, previous)
  params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(3), p.shape), params)
  full = nn.ConvTranspose(3, (2 * stride,), strides=(stride,), padding="VALID").apply(
      params, jnp.concatenate([previous, x], axis=1))
  expected = full[:, stride:stride * (frames + 1)]
  np.testing.assert_allclose(ours.apply(params, x, previous), expected, atol=1e-5, rtol=1e-5)


def test_elu_matches_jax_elu_and_its_gradient():
  x = jnp.asarray(np.concatenate([np.linspace(-30, 30, 10001), [-1e-8, 0.0, 1e-8]]), jnp.float32)
  np.testing.assert_allclose(layers.elu(x), jax.nn.elu(x), rtol=0, atol=2e-7)
  grad = jax.vmap(jax.grad(layers.elu))(x)
  np.testing.assert_allclose(grad, jax.vmap(jax.grad(jax.nn.elu))(x), rtol=0, atol=2e-7)
