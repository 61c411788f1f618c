"""Shared fixtures: small audio folders written on the fly (no downloads)."""

import os
import shutil
import tempfile

import numpy as np
import pytest
import soundfile as sf

CACHES = ("JAX_COMPILATION_CACHE_DIR", "NUMBA_CACHE_DIR")


def pytest_configure(config):
  """Compile fast: the tests' tiny models spend far longer in XLA's CPU compiler than running,
  so the controlling process (before any worker imports jax; xdist workers and the CLI
  subprocesses the tests start inherit its environment) turns LLVM's optimisations off
  (compiles ~3.5x faster) and keeps a persistent compilation cache for the run: many tests
  compile the same tiny models.

  Each xdist worker gets its own cache directory, shared only with the CLI subprocesses it
  starts and waits for: JAX writes cache entries in place (`write_bytes`, no lock unless an
  eviction size is set), so two processes compiling the same model at once could read each
  other's half-written entries.

  The same holds for numba's cache, which librosa's compiled functions (pyin, localmin...)
  write on first use next to librosa's sources: processes that compile them at once can leave
  an index naming another process's data, and every later process loading it segfaults
  (numba/numba#10128; reproduced here with 3 concurrent `librosa.pyin` calls on an empty cache,
  and seen in CI as 8 CLI tests dying with SIGSEGV inside `pyin`). So each worker also gets its
  own numba cache directory."""
  if hasattr(config, "workerinput"):
    for variable in CACHES:
      worker_dir = os.path.join(os.environ[f"AUDIOJAX_TESTS_{variable}"],
                                config.workerinput["workerid"])
      os.makedirs(worker_dir, exist_ok=True)
      os.environ[variable] = worker_dir
    return
  os.environ["XLA_FLAGS"] = " ".join(
      [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]).strip()
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  config.temporary_caches = []
  for variable in CACHES:  # The caller's own directory if set (workers use subdirectories).
    if variable not in os.environ:
      os.environ[variable] = tempfile.mkdtemp(prefix=f"audiojax-tests-{variable.lower()}-")
      config.temporary_caches.append(os.environ[variable])
    os.environ[f"AUDIOJAX_TESTS_{variable}"] = os.environ[variable]


def pytest_unconfigure(config):
  for path in getattr(config, "temporary_caches", []):
    shutil.rmtree(path, ignore_errors=True)


def write_tone(path: str, seconds: float, sample_rate_hz: int, level: float) -> None:
  """A constant-level signal whose amplitude identifies the file in a batch."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  n = int(seconds * sample_rate_hz)
  sf.write(path, np.full(n, level, np.float32), sample_rate_hz, subtype="PCM_16")


@pytest.fixture
def audio_folder(tmp_path):
  """12 one-second files in 3 speaker folders; file k has constant level (k + 1) / 64."""
  root = tmp_path / "folder"
  for k in range(12):
    write_tone(str(root / f"spk{k % 3}" / f"utt{k:02d}.wav"), 1.0, 16000, (k + 1) / 64)
  return str(root)


@pytest.fixture(scope="session")
def espeak_tiny_dir(tmp_path_factory):
  """A data_dir holding the `tiny` built-in corpus (built once per test session/worker)."""
  from audiojax.data import espeak_speech

  data_dir = str(tmp_path_factory.mktemp("espeak_data"))
  espeak_speech.prepare(data_dir, config="tiny")
  return data_dir


@pytest.fixture(scope="session")
def untrained_codec_workdir(tmp_path_factory, espeak_tiny_dir):
  """A workdir holding a checkpoint of the tiny codec (untrained: compiling the GAN train
  step, or even the initialiser, takes a minute on 2 cores): LeCun-normal kernels, zero
  biases, unit-normal codebooks, written as the trainer writes them."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  from audiojax.train import checkpoint, trainer
  from configs import soundstream as soundstream_config

  config = soundstream_config.get_config("tiny")
  config.data.data_dir = espeak_tiny_dir
  model, task, tx, _, _, _ = trainer.build(config)
  crop = config.data.crop_samples
  batch = {"audio": jnp.zeros((1, crop)), "mask": jnp.ones((1, crop)),
           "speaker": jnp.zeros((1,), jnp.int32)}
  shapes = jax.eval_shape(
      lambda: nn.meta.unbox(trainer.create_train_state(model, task, tx, batch, 0)))
  rng = np.random.default_rng(0)

  def fill(leaf):
    if not jnp.issubdtype(leaf.dtype, jnp.floating) or len(leaf.shape) < 2:
      return jnp.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 2 else 1
    return jnp.asarray(rng.standard_normal(leaf.shape) / np.sqrt(fan_in), leaf.dtype)

  workdir = str(tmp_path_factory.mktemp("untrained_codec") / "run")
  manager = checkpoint.make_manager(workdir, async_save=False)
  checkpoint.save(manager, 0, jax.tree.map(fill, shapes), {}, checkpoint.make_meta(config))
  manager.wait_until_finished()
  return workdir


@pytest.fixture(scope="session")
def semantic_run(tmp_path_factory, espeak_tiny_dir):
  """(root, workdir): the tiny speech encoder trained for 4 steps on MFCC k-means targets
  (root/mfcc_k8.npz), and the k-means of its layer 1 (workdir/kmeans_layer1_k6.npz), all
  through the CLIs."""
  from tests.launch.test_cli import run

  root = str(tmp_path_factory.mktemp("semantic"))
  targets = os.path.join(root, "mfcc_k8.npz")
  run("launch.fit_kmeans", "--features=mfcc", "--num_clusters=8", f"--output={targets}",
      f"--data_dir={espeak_tiny_dir}", "--dataset=espeak_speech/tiny", "--steps=5")
  workdir = os.path.join(root, "run")
  run("launch.train", "--config=configs/semantic.py:tiny", f"--workdir={workdir}",
      f"--config.data.data_dir={espeak_tiny_dir}", f"--config.model.target_kmeans={targets}")
  run("launch.fit_kmeans", f"--workdir={workdir}", "--layer=1", "--num_clusters=6",
      "--steps=5")
  return root, workdir
