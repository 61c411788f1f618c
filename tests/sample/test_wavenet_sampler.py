"""WaveNet incremental decoding and samplers agree with the parallel model."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.models import wavenet
from audiojax.sample import wavenet as sampler
from tests.models.test_wavenet import TINY, random_params


@pytest.mark.parametrize("kernel_size,max_dilation,dilation_cycles,num_speakers",
                         [(2, 4, 2, 0), (2, 8, 1, 3), (3, 4, 2, 0), (3, 2, 2, 4)])
def test_incremental_equals_parallel(kernel_size, max_dilation, dilation_cycles, num_speakers):
  model = wavenet.Model(**{**TINY, "kernel_size": kernel_size, "max_dilation": max_dilation,
                           "dilation_cycles": dilation_cycles, "num_speakers": num_speakers})
  params = random_params(model, seed=kernel_size)
  inputs = np.random.default_rng(1).integers(0, 256, (3, 2 * model.receptive_field + 5))
  inputs = jnp.asarray(inputs, jnp.int32)
  speaker = jnp.array([0, 1, num_speakers - 1]) if num_speakers else None
  parallel = model.apply({"params": params}, inputs, speaker)
  incremental = sampler.teacher_forced_logits(model, params, inputs, speaker)
  assert incremental.shape == parallel.shape == (*inputs.shape, 256)
  np.testing.assert_allclose(incremental, parallel, atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_speakers", [0, 3])
def test_scan_sampler_equals_naive_sampler(num_speakers):
  model = wavenet.Model(**TINY, num_speakers=num_speakers)
  params = random_params(model)
  speaker = jnp.array([2, 0]) if num_speakers else None
  kwargs = dict(num_samples=3 * model.receptive_field, batch_size=2, rng=jax.random.key(3),
                speaker=speaker)
  fast = sampler.sample(model, params, **kwargs)
  assert fast.shape == (2, kwargs["num_samples"]) and fast.dtype == jnp.int32
  assert 0 <= int(fast.min()) and int(fast.max()) < 256
  np.testing.assert_array_equal(fast, sampler.naive_sample(model, params, **kwargs))
  assert len(np.unique(np.asarray(fast))) > 10  # random params: samples are spread out


@pytest.mark.parametrize("output,conditioned", [("softmax", False), ("mol", True)])
def test_prompt_continues_where_an_unprimed_draw_would(output, conditioned):
  """A prompt equal to the first P samples of a draw reproduces the rest of that draw (the
  queues after teacher forcing equal those after drawing); another prompt changes what
  follows within the receptive field."""
  extra = dict(condition_channels=3, condition_hop=4) if conditioned else {}
  model = wavenet.Model(**TINY, output=output, num_mixtures=2, num_speakers=2, **extra)
  params = random_params(model, seed=4)
  num, given = 3 * model.receptive_field, model.receptive_field + 3
  condition = (jnp.asarray(np.random.default_rng(0).normal(size=(2, -(-num // 4), 3)), jnp.float32)
               if conditioned else None)
  kwargs = dict(num_samples=num, batch_size=2, rng=jax.random.key(5),
                speaker=jnp.array([1, 0]), condition=condition)
  free = sampler.sample(model, params, **kwargs)
  primed = sampler.sample(model, params, **kwargs, prompt=free[:, :given])
  np.testing.assert_array_equal(primed, free)
  other_prompt = jnp.roll(free[:, :given], 1, axis=1)
  other = sampler.sample(model, params, **kwargs, prompt=other_prompt)
  np.testing.assert_array_equal(other[:, :given], other_prompt)
  assert (other[:, given:given + model.receptive_field] !=
          free[:, given:given + model.receptive_field]).any()
  with pytest.raises(ValueError, match="0 < P < num_samples"):
    sampler.sample(model, params, **kwargs, prompt=free)


def test_speaker_changes_samples():
  model = wavenet.Model(**TINY, num_speakers=3)
  params = random_params(model)
  draw = lambda speaker: sampler.sample(model, params, num_samples=64, batch_size=2,
                                        rng=jax.random.key(4), speaker=jnp.array(speaker))
  np.testing.assert_array_equal(draw([1, 1]), draw([1, 1]))
  assert (draw([0, 0]) != draw([1, 1])).any()


def test_temperature_zero_is_greedy_and_deterministic():
  model = wavenet.Model(**TINY)
  params = random_params(model)
  draw = lambda seed: sampler.sample(model, params, num_samples=40, batch_size=2,
                                     rng=jax.random.key(seed), temperature=0.0)
  greedy = draw(0)
  np.testing.assert_array_equal(greedy, draw(1))
  silence = jnp.full((2, 1), sampler.silence_class(model), jnp.int32)
  inputs = jnp.concatenate([silence, greedy[:, :-1]], axis=1)
  logits = model.apply({"params": params}, inputs)
  np.testing.assert_array_equal(greedy, logits.argmax(-1))


def test_next_classes_follows_softmax():
  logits = jnp.log(jnp.array([[0.1, 0.2, 0.3, 0.4]]))
  uniforms = jnp.asarray(np.random.default_rng(0).uniform(size=(20000, 1)), jnp.float32)
  draw = jax.vmap(lambda u, t: sampler.next_classes(u, logits, t), in_axes=(0, None))
  counts = lambda t: np.bincount(np.asarray(draw(uniforms, t)).ravel(), minlength=4) / 20000
  np.testing.assert_allclose(counts(1.0), [0.1, 0.2, 0.3, 0.4], atol=0.015)
  sharp = np.array([0.1, 0.2, 0.3, 0.4]) ** 2  # temperature 0.5 squares the probabilities
  np.testing.assert_allclose(counts(0.5), sharp / sharp.sum(), atol=0.015)
  assert int(sampler.next_classes(jnp.array([0.3]), logits, 0.0)[0]) == 3


def test_probability_floor_cuts_the_tails():
  """LPCNet's floor c: p -> max(p - c, 0), renormalised; with c = 0.15, [0.1, 0.2, 0.3, 0.4]
  becomes [0, 0.05, 0.15, 0.25] / 0.45. A floor on a mixture or of 1 / classes or more is
  an error."""
  logits = jnp.log(jnp.array([[0.1, 0.2, 0.3, 0.4]]))
  uniforms = jnp.asarray(np.random.default_rng(0).uniform(size=(20000, 1)), jnp.float32)
  drawn = jax.vmap(lambda u: sampler.next_classes(u, logits, 1.0, 0.15))(uniforms)
  counts = np.bincount(np.asarray(drawn).ravel(), minlength=4) / 20000
  np.testing.assert_allclose(counts, np.array([0.0, 0.05, 0.15, 0.25]) / 0.45, atol=0.015)
  assert counts[0] == 0
  model = wavenet.Model(**TINY)
  params = random_params(model)
  for floor in (1 / 256, 0.01):
    with pytest.raises(ValueError, match="probability_floor"):
      sampler.sample(model, params, num_samples=8, batch_size=1, rng=jax.random.key(0),
                     probability_floor=floor)


SPLIT_SCRIPT = """
import subprocess
import sys

import flax.linen as nn
import jax
jax.config.update("jax_num_cpu_devices", 4)
import jax.numpy as jnp, numpy as np
from audiojax.models import wavenet
from audiojax.sample import wavenet as sampler
from tests.models.test_wavenet import TINY, random_params
from audiojax.train import sharding
from tests.models.test_wavenet import TINY, random_params
# Conditioned in repeat mode: each device's rows of the frames' terms too; and a context stack:
# each device's rows of its buffered inputs and terms.
model = wavenet.Model(**{**TINY, "num_speakers": 3, "condition_channels": 3, "condition_hop": 4,
                         "context_hop": 4, "context_window": 8, "context_layers": 2,
                         "context_width": 6})
params = random_params(model, seed=3)
speaker = jnp.array([0, 1, 2, 1, 0, 2, 2, 1], jnp.int32)
condition = jnp.asarray(np.random.default_rng(1).normal(size=(8, 13, 3)), jnp.float32)
kwargs = dict(num_samples=50, batch_size=8, rng=jax.random.key(4), speaker=speaker,
              condition=condition)
mesh = sharding.make_mesh()
assert mesh.size == 4, mesh
split = sampler.sample(model, params, mesh=mesh, **kwargs)
assert len(split.sharding.device_set) == 4, split.sharding
unsplit = sampler.sample(model, params, **kwargs)
np.testing.assert_array_equal(np.asarray(split), np.asarray(unsplit))
try:
  sampler.sample(model, params, mesh=mesh, **{**kwargs, "batch_size": 6, "speaker": speaker[:6],
                                              "condition": condition[:6]})
except ValueError as e:
  assert "multiple of" in str(e), e
else:
  raise AssertionError("batch 6 over 4 devices was accepted")
print("ok")
"""


def test_batch_split_over_devices_draws_the_same_samples():
  """4 CPU devices, 2 rows each: identical to one device (runs in its own process)."""
  root = __file__.rsplit("/tests/", 1)[0]
  result = subprocess.run([sys.executable, "-c", SPLIT_SCRIPT], cwd=root, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
