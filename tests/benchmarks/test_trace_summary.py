"""benchmarks.trace_summary on a small hand-written device trace."""

import jax

from benchmarks import trace_summary

TRACE = """
planes {
  id: 1
  name: "/device:GPU:0"
  lines {
    id: 1
    name: "Stream #14(Compute)"
    events { metadata_id: 1 offset_ps: 0 duration_ps: 6000000000 }
    events { metadata_id: 2 offset_ps: 7000000000 duration_ps: 3000000000 }
    events { metadata_id: 1 offset_ps: 11000000000 duration_ps: 2000000000 }
    events { metadata_id: 3 offset_ps: 14000000000 duration_ps: 1000000000 }
  }
  lines {
    id: 2
    name: "XLA Modules"
    events { metadata_id: 4 offset_ps: 0 duration_ps: 15000000000 }
  }
  event_metadata { key: 1 value { id: 1 name: "nvjet_sm90_tst_128x160_TNT" } }
  event_metadata { key: 2 value { id: 2 name: "cudnn_generated_sdpa_flash_bprop" } }
  event_metadata { key: 3 value { id: 3 name: "loop_add_fusion_7" } }
  event_metadata { key: 4 value { id: 4 name: "jit_train_step" } }
}
"""


def test_kernel_time_by_kind_and_top_kernels(tmp_path):
  path = tmp_path / "run" / "host.xplane.pb"
  path.parent.mkdir()
  path.write_bytes(jax.profiler.ProfileData.text_proto_to_serialized_xspace(TRACE))
  table = trace_summary.summarize(str(tmp_path), top=2, steps=2)
  lines = table.splitlines()
  assert "kernel time 6.00 ms per step" in lines[0]  # 12 ms of kernels (not the module) / 2.
  kinds = {line.split()[0]: float(line.split()[1]) for line in lines[1:4]}
  assert kinds == {"matmul": 4.0, "attention": 1.5, "other": 0.5}
  top = lines[5:]
  assert len(top) == 2 and top[0].split()[:2] == ["4.000", "1.0"]
  assert top[0].endswith("nvjet_sm90_tst_128x160_TNT") and top[1].endswith("flash_bprop")
