# Sourced by the launch scripts (from the repository root): creates .venv if missing (with
# $PYTHON, default python3), activates it, and installs audiojax with the extras in $1
# (e.g. "[test]"; empty for none).
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
python -m pip install --quiet -e ".$1" 2>&1 | grep -v "is ignored" || true
