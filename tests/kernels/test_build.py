"""Compiling kernels on first use: the cache is keyed by the source and the headers beside it."""

import shutil

import pytest

from audiojax.kernels import build


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="no C++ compiler")
def test_a_changed_header_rebuilds_the_kernel(tmp_path, monkeypatch):
  monkeypatch.setenv("AUDIOJAX_KERNEL_CACHE", str(tmp_path / "cache"))
  source, header = tmp_path / "kernel.cc", tmp_path / "value.h"
  source.write_text('#include "value.h"\nextern "C" int Value() { return kValue; }\n')
  header.write_text("constexpr int kValue = 1;\n")
  assert build.load(str(source)).Value() == 1
  assert build.load(str(source)).Value() == 1  # cached
  header.write_text("constexpr int kValue = 2;\n")
  assert build.load(str(source)).Value() == 2
  assert len(list((tmp_path / "cache").glob("kernel_*.so"))) == 2
