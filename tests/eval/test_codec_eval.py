"""Codec evaluation end to end: `launch.evaluate` on a tiny soundstream workdir writes the table."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.eval import codec_eval
from audiojax.sample import codec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_launch_evaluate_writes_the_codec_and_opus_table(untrained_codec_workdir):
  proc = subprocess.run(
      [sys.executable, "-m", "launch.evaluate", f"--workdir={untrained_codec_workdir}",
       "--max_examples=2", "--num_quantizers=1,3"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(untrained_codec_workdir, "eval_test.md")) as f:
    table = f.read()
  assert table.strip() in proc.stdout
  with open(os.path.join(untrained_codec_workdir, "eval_test.json")) as f:
    result = json.load(f)
  assert result["split"] == "test" and result["num_utterances"] == 2 and result["step"] == 0
  # tiny: hop 8 -> 2000 frames/s, 16 codes (4 bits) per level -> 8 kbps per level.
  codec_rows = [r for r in result["rows"] if r["system"] == "soundstream"]
  opus_rows = [r for r in result["rows"] if r["system"] == "opus"]
  assert [(r["num_quantizers"], r["kbps"]) for r in codec_rows] == [(1, 8.0), (3, 24.0)]
  assert [(r["target_kbps"], r["matches_num_quantizers"]) for r in opus_rows] == [
      (8.0, [1]), (24.0, [3])]
  for row in opus_rows:
    assert row["kbps"] == pytest.approx(row["target_kbps"], rel=0.3)
    assert row["file_kbps"] > row["kbps"]
  for row in result["rows"]:
    assert all(np.isfinite(row[k]) for k in ("mel_distance", "mr_stft", "si_snr_db")), row
    assert row["pesq"] is None or 1.0 <= row["pesq"] <= 4.65
    assert row["stoi"] is None or -1.0 <= row["stoi"] <= 1.0
  assert opus_rows[1]["mel_distance"] < opus_rows[0]["mel_distance"]
  lines = table.splitlines()
  assert lines[2].startswith("| system | kbps | mel | MR-STFT | SI-SNR dB | PESQ | STOI |")
  assert [line.split(" | ")[0] for line in lines[4:]] == [
      "| SoundStream nq=1", "| SoundStream nq=3", "| Opus (target 8 kbps)",
      "| Opus (target 24 kbps)"]


def test_reconstruction_equals_encoding_then_decoding_each_utterance(untrained_codec_workdir):
  """Batched, zero-padded, all-levels-then-masked reconstruction = encode(nq) then decode,
  one clip at a time (as `sample.codec` compresses and decompresses)."""
  _, model, variables = codec.load(untrained_codec_workdir)
  rng = np.random.default_rng(0)
  utterances = [0.3 * rng.standard_normal(n).astype(np.float32) for n in (1000, 601)]
  out = codec_eval.reconstruct(model, variables, utterances, [1, 3], batch_size=4)

  @functools.partial(jax.jit, static_argnums=2)
  def encode_decode(variables, audio, nq):
    codes = model.apply(variables, audio, nq, method=model.encode)
    return model.apply(variables, codes, method=model.decode)

  for nq in (1, 3):
    for audio, reconstruction in zip(utterances, out[nq], strict=True):
      padded = np.pad(audio, (0, -audio.shape[0] % model.hop_samples))[None]
      expected = np.asarray(encode_decode(variables, padded, nq))[0, :audio.shape[0]]
      np.testing.assert_allclose(reconstruction, expected, atol=1e-5)


def test_levels_out_of_range_are_a_clear_error(untrained_codec_workdir):
  with pytest.raises(ValueError, match="this codec has 1 to 3 levels"):
    codec_eval.evaluate(untrained_codec_workdir, num_quantizers=[2, 5])



def test_codec_dtype_casts_the_weights_not_the_codebooks(untrained_codec_workdir):
  _, model, variables = codec.load(untrained_codec_workdir, "bfloat16")
  assert model.dtype == jnp.bfloat16
  assert {x.dtype for x in jax.tree.leaves(variables["params"])} == {jnp.dtype(jnp.bfloat16)}
  assert jnp.dtype(jnp.bfloat16) not in {x.dtype for x in jax.tree.leaves(variables["codebooks"])}
  with pytest.raises(ValueError, match="expected one of float32, bfloat16"):
    codec.load(untrained_codec_workdir, "float16")
