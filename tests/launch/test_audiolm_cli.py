"""The AudioLM chain end to end on tiny checkpoints: token extraction from a tiny speech encoder
and a tiny codec, three tiny stages trained on the shared trainer, and launch.continue_audio
writing audio of the requested length; bad prompts are clear errors. Slow (trains five tiny
models): `pytest -m slow tests/launch/test_audiolm_cli.py`."""

import json
import os

import jax
import numpy as np
import pytest
import soundfile as sf

from audiojax.data import token_dataset
from audiojax.train import trainer
from configs import audiolm as audiolm_config
from tests.conftest import write_tone
from tests.launch.test_cli import run

pytestmark = pytest.mark.slow  # About two minutes on 2 cores: run with -m slow.

CODEC_RATE_HZ = 2000.0  # The tiny codec: strides (2, 4) at 16 kHz.


@pytest.fixture(scope="module")
def audiolm_root(tmp_path_factory, espeak_tiny_dir, semantic_run, untrained_codec_workdir):
  """ROOT/{semantic,coarse,fine}: tiny stages trained 2 steps each on the tiny corpus's tokens."""
  root = str(tmp_path_factory.mktemp("audiolm"))
  _, encoder = semantic_run
  tokens = {"semantic": os.path.join(root, "tokens_semantic"),
            "acoustic": os.path.join(root, "tokens_acoustic")}
  common = ["--dataset=espeak_speech/tiny", f"--data_dir={espeak_tiny_dir}",
            "--splits=train,validation"]
  run("launch.extract_tokens", f"--kmeans={encoder}/kmeans_layer1_k6.npz",
      f"--output={tokens['semantic']}", *common)
  run("launch.extract_tokens", f"--codec_workdir={untrained_codec_workdir}",
      f"--output={tokens['acoustic']}", *common)
  for stage in ("semantic", "coarse", "fine"):
    config = audiolm_config.get_config(f"{stage}_tiny")
    config.data.update(semantic_dir=tokens["semantic"], acoustic_dir=tokens["acoustic"],
                       semantic_vocab=6, acoustic_rate_hz=CODEC_RATE_HZ, coarse_seconds=0.01,
                       fine_seconds=0.005)
    config.train.update(num_steps=2, eval_every=0)
    trainer.train_and_evaluate(config, os.path.join(root, stage))
  return root


def test_continuation_writes_the_requested_length(audiolm_root, tmp_path):
  prompt = str(tmp_path / "prompt.wav")
  t = np.arange(8000) / 16000
  sf.write(prompt, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
  out = str(tmp_path / "out.wav")
  proc = run("launch.continue_audio", f"--workdir={audiolm_root}", f"--prompt={prompt}",
             "--prompt_seconds=0.05", "--seconds=0.08", f"--output={out}", "--num_samples=2")
  for i in range(2):
    info = sf.info(str(tmp_path / f"out_{i}.wav"))
    assert info.samplerate == 16000 and info.frames == round(0.08 * 16000), proc.stdout
  a, b = (sf.read(str(tmp_path / f"out_{i}.wav"))[0] for i in range(2))
  np.testing.assert_allclose(a[:400], b[:400], atol=1e-4)  # The prompt's frames: same codes.

  run("launch.continue_audio", f"--workdir={audiolm_root}", "--mode=unconditional",
      "--seconds=0.02", f"--output={tmp_path / 'free.wav'}")
  assert sf.info(str(tmp_path / "free.wav")).frames == 320
  for weights in ("bfloat16", "int8"):  # the codec in bfloat16 too
    run("launch.continue_audio", f"--workdir={audiolm_root}", "--mode=unconditional",
        "--seconds=0.02", f"--output={tmp_path / weights}.wav", f"--weights={weights}",
        "--codec_dtype=bfloat16")
    assert sf.info(str(tmp_path / f"{weights}.wav")).frames == 320
  proc = run("launch.continue_audio", f"--workdir={audiolm_root}", "--mode=unconditional",
             "--seconds=0.02", f"--output={tmp_path / 'x.wav'}", "--bfloat16_cache", check=False)
  assert proc.returncode != 0 and "head_dim that is a multiple of 64" in proc.stderr


def test_bad_prompts_are_clear_errors(audiolm_root, tmp_path):
  empty = str(tmp_path / "empty.wav")
  sf.write(empty, np.zeros(0, np.float32), 16000)
  short = str(tmp_path / "short.wav")
  write_tone(short, 0.05, 16000, 0.1)
  corrupt = str(tmp_path / "corrupt.wav")
  with open(corrupt, "wb") as f:
    f.write(b"RIFF not really a wave file")
  for path, message in ((empty, "empty"), (short, "shorter than --prompt_seconds=3"),
                        (corrupt, "corrupt.wav")):
    proc = run("launch.continue_audio", f"--workdir={audiolm_root}", f"--prompt={path}",
               f"--output={tmp_path / 'x.wav'}", check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr


def test_stage_workdirs_record_their_tokenizers(audiolm_root):
  config = trainer.load_config(os.path.join(audiolm_root, "coarse"))
  info = token_dataset.read_info(config.data.acoustic_dir)
  assert info["kind"] == "acoustic" and info["levels"] == 3 and info["frame_rate_hz"] == 2000.0


def test_continuation_evaluation_scores_pipelines_and_references(audiolm_root, espeak_tiny_dir,
                                                                  tmp_path):
  recognizer = str(tmp_path / "recognizer")
  run("launch.train", "--config=configs/phone_recognizer.py:tiny", f"--workdir={recognizer}",
      f"--config.data.data_dir={espeak_tiny_dir}")
  run("launch.evaluate", f"--workdir={audiolm_root}", f"--recognizer={recognizer}",
      "--dataset=espeak_speech/tiny", f"--data_dir={espeak_tiny_dir}", "--split=validation",
      "--max_examples=3", "--prompt_seconds=0.05", "--seconds=0.1")
  with open(os.path.join(audiolm_root, "continuation_espeak_speech_tiny_validation.json")) as f:
    result = json.load(f)
  assert set(result) == {"real", "other voice", "noise", f"AudioLM ({audiolm_root})"}
  for metrics in result.values():
    assert metrics["num_prompts"] == 3
    assert 0.0 <= metrics["speaker_agreement"] <= 1.0
    assert 0.0 <= metrics["phone_confidence"] <= 1.0 and metrics["phones_per_second"] >= 0.0
  with open(os.path.join(audiolm_root, "continuation_espeak_speech_tiny_validation.md")) as f:
    assert f.read().count("\n| ") == 6  # Header, rule and four rows.


def test_music_continuations_are_scored_without_a_recognizer(audiolm_root, tmp_path):
  """A music corpus: instrument agreement, pitched share and flatness; no recognizer needed."""
  data_dir = str(tmp_path / "data")
  run("launch.prepare_data", "--dataset=music21_audio", "--config=tiny", f"--data_dir={data_dir}")
  run("launch.evaluate", f"--workdir={audiolm_root}", "--dataset=music21_audio/tiny",
      f"--data_dir={data_dir}", "--split=train", "--max_examples=3", "--prompt_seconds=0.05",
      "--seconds=0.15")
  with open(os.path.join(audiolm_root, "continuation_music21_audio_tiny_train.json")) as f:
    result = json.load(f)
  assert set(result) == {"real", "other voice", "noise", f"AudioLM ({audiolm_root})"}
  for metrics in result.values():
    assert 0.0 <= metrics["speaker_agreement"] <= 1.0
    assert 0.0 <= metrics["pitched_fraction"] <= 1.0
  assert result["real"]["flatness"] < result["noise"]["flatness"]
  with open(os.path.join(audiolm_root, "continuation_music21_audio_tiny_train.md")) as f:
    assert "instrument agreement" in f.read()


def test_an_acoustic_only_coarse_stage_shares_the_fine_stage(audiolm_root, tmp_path):
  """The fine stage maps coarse codes to fine codes in its own layout: the acoustic-only
  ablation's coarse stage can use the full hierarchy's fine stage."""
  from audiojax.sample import audiolm

  config = audiolm_config.get_config("coarse_tiny_acoustic_only")
  config.data.update(acoustic_dir=os.path.join(audiolm_root, "tokens_acoustic"),
                     acoustic_rate_hz=CODEC_RATE_HZ, coarse_seconds=0.01)
  config.train.update(num_steps=2, eval_every=0)
  coarse = str(tmp_path / "coarse")
  trainer.train_and_evaluate(config, coarse)
  pipe = audiolm.load_pipeline(coarse, None, os.path.join(audiolm_root, "fine"))
  prompt = np.sin(np.arange(800) / 5).astype(np.float32) * 0.3
  audio = audiolm.generate(pipe, 0.1, jax.random.key(0), 1, prompt=prompt)
  assert audio.shape == (1, 1600) and np.isfinite(audio).all()
