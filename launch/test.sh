#!/usr/bin/env bash
# Installs audiojax with its test extras into .venv (created if missing), then runs ruff and
# the default test suite (everything not marked `slow`). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. launch/venv.sh "[test]"
python -c "import audiojax, jax, flax, tensorflow_datasets" # fail early if the install failed
ruff check .
pytest -m "not slow" -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
