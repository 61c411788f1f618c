"""A folder prepared into array_record shards: parallel, resumable, read per host."""

import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from array_record.python import array_record_module

from audiojax.data import audio_io, folder_shards, pipeline
from tests.conftest import write_tone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def big_folder(tmp_path):
  """40 files at 22.05 kHz (resampled on preparation) in 4 speaker folders."""
  root = tmp_path / "audio"
  for k in range(40):
    write_tone(str(root / f"spk{k % 4}" / f"utt{k:03d}.wav"), 0.25, 22050, (k + 1) / 64)
  return str(root)


def data_config(folder: str, data_dir: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=f"folder:{folder}", data_dir=data_dir, sample_rate_hz=16000, crop_samples=1000,
      batch_size=4, train_split="train", skip_bad_files=False, num_threads=1))


def test_prepared_records_match_the_files(big_folder, tmp_path):
  data_dir = str(tmp_path / "data")
  manifest = folder_shards.prepare_folder(big_folder, data_dir, files_per_shard=8,
                                          num_workers=2)
  counts = {split: sum(s["records"] for s in shards)
            for split, shards in manifest["splits"].items()}
  paths = pipeline.list_audio_files(big_folder)
  assert counts == {split: sum(pipeline.folder_split(p) == split for p in paths)
                    for split in folder_shards.SPLITS}
  assert len(manifest["splits"]["train"]) >= 4 and manifest["speakers"] == [
      "spk0", "spk1", "spk2", "spk3"]
  source = pipeline.get_source(data_config(big_folder, data_dir), "train")
  assert "prepared" in source.name and len(source) == counts["train"]
  for i in range(len(source)):
    example = source.decode(source.records[i])
    expected = audio_io.load_audio(example["path"], 16000)
    np.testing.assert_allclose(example["audio"], expected, atol=1.5 / 32767)
    assert example["speaker"] == int(os.path.basename(os.path.dirname(example["path"]))[3:])


def test_interrupted_preparation_resumes_with_the_missing_shards(big_folder, tmp_path):
  data_dir = str(tmp_path / "data")
  first = folder_shards.prepare_folder(big_folder, data_dir, files_per_shard=8,
                                       num_workers=2)
  out = folder_shards.prepared_dir(big_folder, data_dir)
  kept, lost = [os.path.join(out, s["file"]) for s in first["splits"]["train"][:2]]
  # An interruption: the manifest was never written, one shard was half written.
  os.remove(os.path.join(out, folder_shards.MANIFEST))
  os.rename(lost, lost + ".incomplete")
  kept_mtime = os.stat(kept).st_mtime_ns
  assert folder_shards.read_manifest(big_folder, data_dir) is None
  second = folder_shards.prepare_folder(big_folder, data_dir, files_per_shard=8,
                                        num_workers=2)
  assert second == first
  assert os.stat(kept).st_mtime_ns == kept_mtime  # Finished shards are not redone.
  assert os.path.exists(lost)


def test_each_host_opens_only_its_own_shards(big_folder, tmp_path):
  data_dir = str(tmp_path / "data")
  manifest = folder_shards.prepare_folder(big_folder, data_dir, files_per_shard=8,
                                          num_workers=1)
  config = data_config(big_folder, data_dir)
  hosts = [pipeline.get_source(config, "train", i, 2) for i in range(2)]
  assert all(h.host_local for h in hosts)
  assert sum(len(h) for h in hosts) == sum(s["records"] for s in manifest["splits"]["train"])
  paths = [{h.decode(h.records[i])["path"] for i in range(len(h))} for h in hosts]
  assert not paths[0] & paths[1]
  # Each host's stream draws from its own records only.
  batch = next(iter(pipeline.train_dataset(config, seed=0, process_index=1, process_count=2)))
  levels = set(np.round(batch["audio"][:, 500] * 64).astype(int) - 1)
  own = {int(os.path.basename(p)[3:6]) for p in paths[1]}
  assert levels <= own, (levels, own)


def test_bad_files_are_named_or_skipped(big_folder, tmp_path):
  bad = os.path.join(big_folder, "spk0", "zz_corrupt.wav")
  with open(bad, "wb") as f:
    f.write(b"RIFF....not audio at all")
  with pytest.raises(audio_io.AudioError, match="zz_corrupt.wav"):
    folder_shards.prepare_folder(big_folder, str(tmp_path / "a"), files_per_shard=8,
                                 num_workers=1)
  manifest = folder_shards.prepare_folder(big_folder, str(tmp_path / "b"), files_per_shard=8,
                                          num_workers=1, skip_bad_files=True)
  assert manifest["skipped_files"] == 1 and manifest["num_files"] == 41


def shard_records(manifest: dict, folder: str, data_dir: str) -> dict[str, list[bytes]]:
  out = folder_shards.prepared_dir(folder, data_dir)
  files = [s["file"] for shards in manifest["splits"].values() for s in shards]
  readers = {f: array_record_module.ArrayRecordReader(os.path.join(out, f)) for f in files}
  return {f: r.read_all() for f, r in readers.items()}


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_a_beam_pipeline_writes_the_same_shards(big_folder, tmp_path, mode):
  local_dir, beam_dir = str(tmp_path / "local"), str(tmp_path / "beam")
  local = folder_shards.prepare_folder(big_folder, local_dir, files_per_shard=8, num_workers=2)
  beam = folder_shards.prepare_folder(
      big_folder, beam_dir, files_per_shard=8, beam_runner="DirectRunner",
      beam_options=("--direct_num_workers=2", f"--direct_running_mode={mode}"))
  assert beam == local
  assert shard_records(beam, big_folder, beam_dir) == shard_records(local, big_folder, local_dir)


def test_a_bad_file_stops_a_beam_pipeline_naming_it(big_folder, tmp_path):
  with open(os.path.join(big_folder, "spk1", "zz_empty.wav"), "wb"):
    pass
  with pytest.raises(Exception, match="zz_empty.wav"):
    folder_shards.prepare_folder(big_folder, str(tmp_path / "a"), files_per_shard=8,
                                 beam_runner="DirectRunner")
  manifest = folder_shards.prepare_folder(big_folder, str(tmp_path / "b"), files_per_shard=8,
                                          beam_runner="DirectRunner", skip_bad_files=True)
  assert manifest["skipped_files"] == 1


def test_a_damaged_record_is_a_clear_error():
  with pytest.raises(audio_io.AudioError, match="corrupt record"):
    folder_shards.decode_record(b"\xc1 definitely not msgpack")


@pytest.mark.parametrize("writers", [["--workers=2"], [
    "--beam_runner=DirectRunner", "--beam_option=--direct_num_workers=2"]])
def test_prepare_data_command_prints_a_summary(big_folder, tmp_path, writers):
  result = subprocess.run(
      [sys.executable, "-m", "launch.prepare_data", f"--dataset=folder:{big_folder}",
       f"--data_dir={tmp_path / 'data'}", "--files_per_shard=16", *writers],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "4 speakers, 40 files, 0 skipped" in result.stdout
  assert result.stdout.count("\ntrain") == 1
