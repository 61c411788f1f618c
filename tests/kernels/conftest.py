"""Fixtures of the kernel tests."""

import pytest


@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
  """A machine with no C++ compiler and an empty kernel cache (kernels must fall back)."""
  monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
  monkeypatch.setenv("AUDIOJAX_KERNEL_CACHE", str(tmp_path / "cache"))
