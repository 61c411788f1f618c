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
# Compile librosa's numba functions (pyin, mfcc) once, here: processes compiling them into an
# empty cache at the same time can corrupt it, after which every librosa call in any process
# segfaults (numba/numba#10128). With the cache written, concurrent runs only read it.
python -W ignore -c "import numpy as np, librosa
y = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
librosa.pyin(y, fmin=65, fmax=400, sr=16000); librosa.feature.mfcc(y=y, sr=16000)"
