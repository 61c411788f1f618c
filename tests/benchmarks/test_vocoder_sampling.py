"""benchmarks.vocoder_sampling end to end on the tiny vocoders: a row per variant and batch,
the first variant the baseline."""

from tests.launch.test_cli import run


def test_rows_per_variant_against_the_first(espeak_tiny_dir):
  out = run("benchmarks.vocoder_sampling", "--variants=vocoder_period_tiny,quickstart_tiny",
            "--batch_sizes=1,2", "--seconds=0.02", "--repeats=1",
            f"--data_dir={espeak_tiny_dir}").stdout
  rows = {tuple(line.split()[:2]): line.split()[2:] for line in out.splitlines()
          if line.split()[:1] in (["vocoder_period_tiny"], ["quickstart_tiny"])}
  assert sorted(rows) == [("quickstart_tiny", "1"), ("quickstart_tiny", "2"),
                          ("vocoder_period_tiny", "1"), ("vocoder_period_tiny", "2")], out
  assert rows[("vocoder_period_tiny", "1")][2] == rows[("vocoder_period_tiny", "2")][2] == "1.00"
  assert float(rows[("quickstart_tiny", "2")][0].replace(",", "")) > 0  # samples/s
