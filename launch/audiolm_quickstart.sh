#!/usr/bin/env bash
# AudioLM end to end on the CPU, on the built-in speech corpus (README "AudioLM quick start"):
#   1. the codec, configs/soundstream.py:quickstart -> acoustic tokens (8 levels x 256, 50 Hz);
#   2. a speech encoder, configs/semantic.py:quickstart on MFCC k-means targets, and the
#      k-means (K=100) of its layer 1 -> semantic tokens (50 Hz);
#   3. the three stages, configs/audiolm.py:{semantic,coarse,fine}_quickstart, and the paper's
#      acoustic-only ablation (coarse and fine stages without semantic tokens);
#   4. a CTC phone recognizer, configs/phone_recognizer.py:quickstart, for the evaluation;
#   5. continuations of held-out prompts written as .wav, and scored for both pipelines
#      (speaker agreement, phone confidence: audiojax/eval/continuation.py).
# Re-running skips finished steps (training resumes from its checkpoints).
#   WORKDIR (default runs/audiolm_quickstart), AUDIOJAX_DATA_DIR (default data/) override;
#   CODEC_WORKDIR, SEMANTIC_WORKDIR, RECOGNIZER_WORKDIR reuse runs trained before;
#   STAGE_STEPS trains each AudioLM stage for that many steps (default: the configs' 2000,
#   ~0.5 s each on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${WORKDIR:-runs/audiolm_quickstart}
CODEC=${CODEC_WORKDIR:-$WORKDIR/codec}
ENCODER=${SEMANTIC_WORKDIR:-$WORKDIR/encoder}
RECOGNIZER=${RECOGNIZER_WORKDIR:-$WORKDIR/phone_recognizer}
TOKENS=$WORKDIR/tokens
STEPS=()
[ -z "${STAGE_STEPS:-}" ] || STEPS=(--config.train.num_steps="$STAGE_STEPS")
export AUDIOJAX_DATA_DIR=${AUDIOJAX_DATA_DIR:-$PWD/data}
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
. launch/venv.sh ""
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

step "1/5 corpus and codec"
python -m launch.prepare_data --dataset=espeak_speech --data_dir="$AUDIOJAX_DATA_DIR"
mkdir -p "$WORKDIR"
python -m launch.train --config=configs/soundstream.py:quickstart --workdir="$CODEC"
python -m launch.extract_tokens --codec_workdir="$CODEC" --dataset=espeak_speech \
  --output="$TOKENS/acoustic"

step "2/5 speech encoder and semantic tokens"
[ -f "$WORKDIR/mfcc_k100.npz" ] || python -m launch.fit_kmeans --features=mfcc \
  --num_clusters=100 --output="$WORKDIR/mfcc_k100.npz"
python -m launch.train --config=configs/semantic.py:quickstart --workdir="$ENCODER" \
  --config.model.target_kmeans="$WORKDIR/mfcc_k100.npz"
[ -f "$ENCODER/kmeans_layer1_k100.npz" ] || python -m launch.fit_kmeans \
  --workdir="$ENCODER" --layer=1 --num_clusters=100
python -m launch.extract_tokens --kmeans="$ENCODER/kmeans_layer1_k100.npz" \
  --dataset=espeak_speech --output="$TOKENS/semantic"

step "3/5 AudioLM stages, and the acoustic-only ablation"
for stage in semantic coarse fine; do
  python -m launch.train --config=configs/audiolm.py:${stage}_quickstart \
    --workdir="$WORKDIR/audiolm/$stage" --config.data.semantic_dir="$TOKENS/semantic" \
    --config.data.acoustic_dir="$TOKENS/acoustic" "${STEPS[@]}"
done
for stage in coarse fine; do
  python -m launch.train --config=configs/audiolm.py:${stage}_quickstart_acoustic_only \
    --workdir="$WORKDIR/audiolm_acoustic_only/$stage" \
    --config.data.acoustic_dir="$TOKENS/acoustic" "${STEPS[@]}"
done
python -m launch.evaluate --workdir="$WORKDIR/audiolm/coarse" --split=test

step "4/5 phone recognizer for the evaluation"
python -m launch.train --config=configs/phone_recognizer.py:quickstart --workdir="$RECOGNIZER"

step "5/5 continuations"
python - "$WORKDIR/prompt.wav" <<'PY'
import sys
from audiojax.data import audio_io, pipeline
config = pipeline.dataset_config("espeak_speech")
audio = next(e["audio"] for e in pipeline.utterances(config, "test_unseen_speakers")
             if len(e["audio"]) >= 3 * 16000)
audio_io.write_wav(sys.argv[1], audio, 16000)
PY
python -m launch.continue_audio --workdir="$WORKDIR/audiolm" --prompt="$WORKDIR/prompt.wav" \
  --prompt_seconds=2 --seconds=5 --num_samples=2 --output="$WORKDIR/continuation.wav"
python -m launch.continue_audio --workdir="$WORKDIR/audiolm_acoustic_only" \
  --prompt="$WORKDIR/prompt.wav" --prompt_seconds=2 --seconds=5 \
  --output="$WORKDIR/continuation_acoustic_only.wav"
for split in test test_unseen_speakers; do
  python -m launch.evaluate --workdir="$WORKDIR/audiolm" --recognizer="$RECOGNIZER" \
    --compare_workdir="$WORKDIR/audiolm_acoustic_only" --split=$split --max_examples=20 \
    --prompt_seconds=1.5 --seconds=3
done

cat <<MSG

Done.
  stages:         $WORKDIR/audiolm/{semantic,coarse,fine}, $WORKDIR/audiolm_acoustic_only
  continuations:  $WORKDIR/continuation_0.wav, _1.wav (prompt: the first 2 s of
                  $WORKDIR/prompt.wav), $WORKDIR/continuation_acoustic_only.wav
  scores:         $WORKDIR/audiolm/continuation_{test,test_unseen_speakers}.md
  TensorBoard:    tensorboard --logdir=$WORKDIR
MSG
