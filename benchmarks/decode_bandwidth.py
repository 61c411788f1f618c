r"""The weight-read ceiling of batch-1 decoding: how fast can this backend stream a layer stack's
weights through vector-matrix products, per weight dtype?

  python -m benchmarks.decode_bandwidth [--num_params_m=19.4] [--repeats=200]

A batch-1 decode step of a transformer reads every weight once and does ~2 FLOPs per weight, so
its speed is bounded by how fast `x @ W` streams W. This times a jitted chain of [1, 512] x
[512, 2048] products holding `--num_params_m` million weights (the `bench` preset of
`benchmarks/lm_sampling.py` has 19.4M) for float32, bfloat16, and int8 weights (dequantised in
the product, and int8 x int8 with int32 accumulation), and prints GB/s of weights read, the
implied tokens/s ceiling of a decode step that only read weights, and each dtype's time
relative to float32 measured in the same run.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

_PARAMS = flags.DEFINE_float("num_params_m", 19.4, "Weights in the chain, millions.")
_REPEATS = flags.DEFINE_integer("repeats", 200, "Timed calls (after one untimed).")

ROWS, COLS = 512, 2048


def _chain(x: jnp.ndarray, weights: list[jnp.ndarray], int8_activations: bool) -> jnp.ndarray:
  """Sum of x @ W over the weights; each product's input is x (independent reads)."""
  total = jnp.zeros((1, ROWS), jnp.float32)
  for w in weights:
    if int8_activations:
      xq = jnp.clip(jnp.round(x * 20), -127, 127).astype(jnp.int8)
      y = jax.lax.dot(xq, w, preferred_element_type=jnp.int32).astype(jnp.float32)
    else:
      y = jnp.dot(x.astype(jnp.float32), w.astype(jnp.float32)) if w.dtype == jnp.int8 else (
          jnp.dot(x.astype(w.dtype), w).astype(jnp.float32))
    total = total + y[:, :ROWS]
  return total


def _seconds(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  count = max(1, round(_PARAMS.value * 1e6 / (ROWS * COLS)))
  weights = [rng.standard_normal((ROWS, COLS)).astype(np.float32) / np.sqrt(ROWS)
             for _ in range(count)]
  x = jnp.asarray(rng.standard_normal((1, ROWS)), jnp.float32)
  int8 = [np.clip(np.round(w * 20 * np.sqrt(ROWS)), -127, 127).astype(np.int8) for w in weights]
  cases = [("float32", [jnp.asarray(w) for w in weights], False),
           ("bfloat16", [jnp.asarray(w, jnp.bfloat16) for w in weights], False),
           ("int8 weights, dequantised", [jnp.asarray(w) for w in int8], False),
           ("int8 x int8 -> int32", [jnp.asarray(w) for w in int8], True)]
  print(f"{count} x [{ROWS}, {COLS}] = {count * ROWS * COLS / 1e6:.1f}M weights; "
        f"{jax.devices()[0].device_kind}")
  print(f"{'weights':<28} {'ms/pass':>8} {'GB/s':>7} {'tokens/s ceiling':>17} {'vs float32':>11}")
  base = None
  for name, ws, int8_activations in cases:
    fn = jax.jit(lambda x, ws, a=int8_activations: _chain(x, ws, a))
    seconds = _seconds(fn, x, ws, repeats=_REPEATS.value)
    base = base or seconds
    gigabytes = sum(w.nbytes for w in ws) / 1e9
    print(f"{name:<28} {1e3 * seconds:>8.3f} {gigabytes / seconds:>7.1f} "
          f"{1 / seconds:>17,.0f} {seconds / base:>10.2f}x", flush=True)


if __name__ == "__main__":
  app.run(main)
