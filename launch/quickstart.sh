#!/usr/bin/env bash
# Quick start: installs audiojax into .venv (created if missing), builds the built-in speech
# corpus (cached), trains configs/wavenet.py:quickstart (a WaveNet vocoder) on the CPU,
# evaluates it on the test split, and resynthesises held-out test clips of four speakers.
# Re-running resumes or reuses what is already there.
#   WORKDIR (default runs/wavenet_quickstart), AUDIOJAX_DATA_DIR (default data/) override.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${WORKDIR:-runs/wavenet_quickstart}
export AUDIOJAX_DATA_DIR=${AUDIOJAX_DATA_DIR:-$PWD/data}
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
. launch/venv.sh ""

python -m launch.prepare_data --dataset=espeak_speech --data_dir="$AUDIOJAX_DATA_DIR"
# A run of an earlier quick-start recipe in WORKDIR is moved to WORKDIR.1 (kept), not resumed.
python -m launch.train --config=configs/wavenet.py:quickstart --workdir="$WORKDIR" \
  --set_aside_other_run
python -m launch.evaluate --workdir="$WORKDIR" --split=test --max_examples=32
python -m launch.sample --workdir="$WORKDIR" --output_dir="$WORKDIR/final_samples" \
  --resynthesize=test --num_samples=4 --seconds=2 --temperature=0.85 --voiced_temperature=0.6 \
  --probability_floor=0.002 --excitation_limit=6

cat <<MSG

Done.
  checkpoints:  $WORKDIR/checkpoints
  TensorBoard:  tensorboard --logdir $WORKDIR/tensorboard
  samples:      $WORKDIR/final_samples/sample_*.wav, resyntheses of original_*.wav
                (and $WORKDIR/samples/step_*/ during training)
  test NLL:     $WORKDIR/eval_test.json
MSG
