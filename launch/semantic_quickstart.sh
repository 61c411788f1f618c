#!/usr/bin/env bash
# Semantic-token quick start on the CPU (HuBERT's recipe at small scale, built-in corpus):
#   1. k-means (K=100) of MFCC frames: iteration 1's targets;
#   2. configs/semantic.py:quickstart trained to predict them at masked frames (iter1);
#   3. k-means (K=100) of iter1's layer 1: iteration 2's targets;
#   4. a new model trained on those (iter2);
#   5. the token report: PNMI / purity / speaker probe of MFCC tokens vs each layer of iter2.
# Re-running skips finished steps (training resumes from its checkpoints).
#   WORKDIR (default runs/semantic_quickstart), AUDIOJAX_DATA_DIR (default data/) override.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${WORKDIR:-runs/semantic_quickstart}
export AUDIOJAX_DATA_DIR=${AUDIOJAX_DATA_DIR:-$PWD/data}
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
. launch/venv.sh ""

python -m launch.prepare_data --dataset=espeak_speech --data_dir="$AUDIOJAX_DATA_DIR"
mkdir -p "$WORKDIR"
[ -f "$WORKDIR/mfcc_k100.npz" ] || python -m launch.fit_kmeans --features=mfcc \
  --num_clusters=100 --output="$WORKDIR/mfcc_k100.npz"
python -m launch.train --config=configs/semantic.py:quickstart --workdir="$WORKDIR/iter1" \
  --config.model.target_kmeans="$WORKDIR/mfcc_k100.npz"
[ -f "$WORKDIR/iter1/kmeans_layer1_k100.npz" ] || python -m launch.fit_kmeans \
  --workdir="$WORKDIR/iter1" --layer=1 --num_clusters=100
python -m launch.train --config=configs/semantic.py:quickstart --workdir="$WORKDIR/iter2" \
  --config.model.targets=teacher --config.model.teacher_workdir="$WORKDIR/iter1" \
  --config.model.teacher_layer=1 \
  --config.model.target_kmeans="$WORKDIR/iter1/kmeans_layer1_k100.npz"
python -m launch.token_report --data_dir="$AUDIOJAX_DATA_DIR" \
  --semantic_workdir="$WORKDIR/iter2" --max_utterances=300 --output="$WORKDIR/token_report.md"

cat <<MSG

Done.
  encoders:     $WORKDIR/iter1, $WORKDIR/iter2 (checkpoints, TensorBoard)
  token report: $WORKDIR/token_report.md
  next:         python -m launch.fit_kmeans --workdir=$WORKDIR/iter2 --layer=L --num_clusters=100
                python -m launch.extract_tokens --kmeans=$WORKDIR/iter2/kmeans_layerL_k100.npz \\
                    --output=runs/tokens/semantic
MSG
