"""The CPU kernels for bfloat16 / int8 weights and tiled bfloat16 caches: the same products as
XLA's, wherever they are used."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.kernels import cpu_matmul

needs_kernel = pytest.mark.skipif(not cpu_matmul.available(), reason="no C++ compiler")


def operands(rows: int, k: int, n: int, seed: int = 0, lead: tuple[int, ...] = ()):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((*lead, rows, k)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((k, n)) / np.sqrt(k), jnp.bfloat16)
  return x, w


def reference(x, w):
  return np.asarray(x, np.float64) @ np.asarray(w.astype(jnp.float32), np.float64)


@needs_kernel
@pytest.mark.parametrize("rows,k,n", [(1, 512, 1536), (2, 37, 64), (3, 2048, 512),
                                      (5, 512, 192), (16, 256, 2048)])
def test_kernel_equals_the_product_of_the_upcast_weights(rows, k, n):
  x, w = operands(rows, k, n)
  compiled = jax.jit(cpu_matmul.matmul).lower(x, w).compile().as_text()
  assert cpu_matmul.TARGETS["bf16"] in compiled  # the kernel ran, not the fallback
  np.testing.assert_allclose(jax.jit(cpu_matmul.matmul)(x, w), reference(x, w),
                             rtol=1e-5, atol=1e-5)


@needs_kernel
@pytest.mark.parametrize("rows,k,n", [(1, 512, 1536), (4, 300, 128), (9, 2048, 512)])
def test_int8_kernel_equals_the_scaled_product(rows, k, n):
  x, w = operands(rows, k, n)
  q, scale = cpu_matmul.quantize_int8(w.astype(jnp.float32))
  assert q.dtype == jnp.int8 and scale.shape == (n,) and int(jnp.abs(q).max()) == 127
  product = jax.jit(cpu_matmul.int8_matmul)
  assert cpu_matmul.TARGETS["int8"] in product.lower(x, q, scale).compile().as_text()
  want = reference(x, q) * np.asarray(scale, np.float64)
  np.testing.assert_allclose(product(x, q, scale), want, rtol=1e-5, atol=1e-5)
  # The quantization itself: within half a step of each column's scale.
  error = np.abs(np.asarray(q * scale - w.astype(jnp.float32)))
  np.testing.assert_array_less(error, np.broadcast_to(np.asarray(scale) / 2 + 1e-7, error.shape))


def test_quantize_int8_over_several_input_axes():
  """[N, H, D] kernels contracting two axes get one scale per output column D."""
  w = jnp.asarray(np.random.default_rng(1).standard_normal((2, 3, 64)), jnp.float32)
  w = w.at[:, :, 5].set(0.0)  # a zero column: scale 1, codes 0
  q, scale = cpu_matmul.quantize_int8(w, (0, 1))
  assert scale.shape == (64,) and scale[5] == 1.0 and not q[:, :, 5].any()
  np.testing.assert_allclose(scale[0], np.abs(np.asarray(w[:, :, 0])).max() / 127, rtol=1e-6)


@needs_kernel
@pytest.mark.parametrize("bits", [False, True])
def test_tiled_products_equal_the_einsum_over_tiles(bits):
  """B products over [B, T, K, 64] tiles (a KV cache: bfloat16, or its bits as uint16)."""
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((8, 3, 64)), jnp.float32)
  tiles = jnp.asarray(rng.standard_normal((8, 5, 64, 64)), jnp.bfloat16)
  want = np.einsum("bmk,btkc->bmtc", np.asarray(x, np.float64),
                   np.asarray(tiles.astype(jnp.float32), np.float64)).reshape(8, 3, 320)
  if bits:
    tiles = jax.lax.bitcast_convert_type(tiles, jnp.uint16)
  product = jax.jit(cpu_matmul.tiled_matmul)
  assert cpu_matmul.TARGETS["bf16"] in product.lower(x, tiles).compile().as_text()
  np.testing.assert_allclose(product(x, tiles), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows,n", [(17, 128), (2, 100)])
def test_other_shapes_take_the_xla_product(rows, n):
  """More than MAX_ROWS rows (compute-bound) or columns not a multiple of 64: XLA's product."""
  x, w = operands(rows, 64, n)
  assert "audiojax" not in jax.jit(cpu_matmul.matmul).lower(x, w).as_text()
  np.testing.assert_allclose(cpu_matmul.matmul(x, w), reference(x, w), rtol=1e-5, atol=1e-5)
  q, scale = cpu_matmul.quantize_int8(w.astype(jnp.float32))
  assert "audiojax" not in jax.jit(cpu_matmul.int8_matmul).lower(x, q, scale).as_text()
  np.testing.assert_allclose(cpu_matmul.int8_matmul(x, q, scale),
                             reference(x, q) * np.asarray(scale, np.float64), rtol=1e-5, atol=1e-5)


@needs_kernel
def test_leading_axes_vmap_and_gradients():
  x, w = operands(2, 96, 128, lead=(3,))  # [3, 2, 96] rows flattened into the kernel's M
  np.testing.assert_allclose(cpu_matmul.matmul(x, w), reference(x, w), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.vmap(cpu_matmul.matmul, (0, None))(x, w), reference(x, w),
                             rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
  upcast = lambda x, w: x @ w.astype(jnp.float32)
  for got, want in zip(jax.grad(loss(cpu_matmul.matmul), (0, 1))(x, w),
                       jax.grad(loss(upcast), (0, 1))(x, w), strict=True):
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               rtol=2e-2, atol=1e-3)


def test_no_compiler_falls_back_with_a_warning(monkeypatch, no_compiler):
  """No compiler: one warning, then XLA's product (the same values)."""
  monkeypatch.setattr(cpu_matmul, "available", cpu_matmul.available.__wrapped__)
  with pytest.warns(UserWarning, match="kernels are unavailable"):
    assert not cpu_matmul.available()
