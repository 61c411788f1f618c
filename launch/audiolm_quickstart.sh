#!/usr/bin/env bash
# AudioLM end to end on the CPU, on the built-in speech corpus (README "AudioLM quick start"),
# or on the built-in music (CORPUS=music21_audio: Bach chorales on 3 instruments):
#   1. the codec, configs/soundstream.py:quickstart -> acoustic tokens (8 levels x 256, 50 Hz);
#   2. an encoder, configs/semantic.py:quickstart on MFCC k-means targets of the corpus, and
#      the k-means (K=100) of its layer 1 -> semantic tokens (50 Hz);
#   3. the three stages, configs/audiolm.py:{semantic,coarse,fine}_quickstart, and the paper's
#      acoustic-only ablation (a coarse stage without semantic tokens; the fine stage, which
#      never sees them, is shared);
#   4. speech: a CTC phone recognizer, configs/phone_recognizer.py:quickstart, for the
#      evaluation;
#   5. continuations of held-out prompts written as .wav, and scored for both pipelines
#      (audiojax/eval/continuation.py: speaker agreement, phone confidence; music: instrument
#      agreement, pitched share, spectral flatness).
# Re-running skips finished steps (training resumes from its checkpoints).
#   CORPUS (espeak_speech, default, or music21_audio), WORKDIR (default
#   runs/audiolm_quickstart, runs/audiolm_quickstart_music for music), AUDIOJAX_DATA_DIR
#   (default data/) override;
#   CODEC_WORKDIR, SEMANTIC_WORKDIR, RECOGNIZER_WORKDIR reuse runs trained before;
#   STAGE_STEPS trains each AudioLM stage for that many steps (default: the configs' 2000,
#   ~0.5 s each on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-espeak_speech}
case "$CORPUS" in
  espeak_speech) WORKDIR=${WORKDIR:-runs/audiolm_quickstart}; SPLITS=(test test_unseen_speakers) ;;
  music21_audio) WORKDIR=${WORKDIR:-runs/audiolm_quickstart_music}; SPLITS=(test) ;;
  *) echo "CORPUS=$CORPUS: use espeak_speech or music21_audio" >&2; exit 2 ;;
esac
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
python -m launch.prepare_data --dataset="$CORPUS" --data_dir="$AUDIOJAX_DATA_DIR"
mkdir -p "$WORKDIR"
python -m launch.train --config=configs/soundstream.py:quickstart --workdir="$CODEC"
python -m launch.extract_tokens --codec_workdir="$CODEC" --dataset="$CORPUS" \
  --output="$TOKENS/acoustic"

step "2/5 encoder and semantic tokens"
[ -f "$WORKDIR/mfcc_k100.npz" ] || python -m launch.fit_kmeans --features=mfcc \
  --num_clusters=100 --dataset="$CORPUS" --output="$WORKDIR/mfcc_k100.npz"
python -m launch.train --config=configs/semantic.py:quickstart --workdir="$ENCODER" \
  --config.model.target_kmeans="$WORKDIR/mfcc_k100.npz" --config.data.name="$CORPUS"
[ -f "$ENCODER/kmeans_layer1_k100.npz" ] || python -m launch.fit_kmeans \
  --workdir="$ENCODER" --layer=1 --num_clusters=100
python -m launch.extract_tokens --kmeans="$ENCODER/kmeans_layer1_k100.npz" \
  --dataset="$CORPUS" --output="$TOKENS/semantic"

step "3/5 AudioLM stages, and the acoustic-only ablation"
for stage in semantic coarse fine; do
  python -m launch.train --config=configs/audiolm.py:${stage}_quickstart \
    --workdir="$WORKDIR/audiolm/$stage" --config.data.semantic_dir="$TOKENS/semantic" \
    --config.data.acoustic_dir="$TOKENS/acoustic" "${STEPS[@]}"
done
python -m launch.train --config=configs/audiolm.py:coarse_quickstart_acoustic_only \
  --workdir="$WORKDIR/audiolm_acoustic_only/coarse" \
  --config.data.acoustic_dir="$TOKENS/acoustic" "${STEPS[@]}"
# The fine stage never sees semantic tokens (coarse codes in, fine codes out), so the ablation
# shares the full hierarchy's: the two pipelines differ only where the paper's do.
ln -sfn "$(realpath "$WORKDIR/audiolm/fine")" "$WORKDIR/audiolm_acoustic_only/fine"
python -m launch.evaluate --workdir="$WORKDIR/audiolm/coarse" --split=test

SCORING=(--dataset="$CORPUS")
if [ "$CORPUS" = espeak_speech ]; then
  step "4/5 phone recognizer for the evaluation"
  python -m launch.train --config=configs/phone_recognizer.py:quickstart \
    --workdir="$RECOGNIZER"
  SCORING+=(--recognizer="$RECOGNIZER")
fi

step "5/5 continuations"
python - "$WORKDIR/prompt.wav" "$CORPUS" "${SPLITS[-1]}" <<'PY'
import sys
from audiojax.data import audio_io, pipeline
config = pipeline.dataset_config(sys.argv[2])
audio = next(e["audio"] for e in pipeline.utterances(config, sys.argv[3])
             if len(e["audio"]) >= 3 * 16000)
audio_io.write_wav(sys.argv[1], audio, 16000)
PY
python -m launch.continue_audio --workdir="$WORKDIR/audiolm" --prompt="$WORKDIR/prompt.wav" \
  --prompt_seconds=2 --seconds=5 --num_samples=2 --output="$WORKDIR/continuation.wav"
python -m launch.continue_audio --workdir="$WORKDIR/audiolm_acoustic_only" \
  --prompt="$WORKDIR/prompt.wav" --prompt_seconds=2 --seconds=5 \
  --output="$WORKDIR/continuation_acoustic_only.wav"
for split in "${SPLITS[@]}"; do
  python -m launch.evaluate --workdir="$WORKDIR/audiolm" "${SCORING[@]}" \
    --compare_workdir="$WORKDIR/audiolm_acoustic_only" --split="$split" --max_examples=20 \
    --prompt_seconds=1.5 --seconds=3
done

cat <<MSG

Done.
  stages:         $WORKDIR/audiolm/{semantic,coarse,fine}, $WORKDIR/audiolm_acoustic_only
  continuations:  $WORKDIR/continuation_0.wav, _1.wav (prompt: the first 2 s of
                  $WORKDIR/prompt.wav), $WORKDIR/continuation_acoustic_only.wav
  scores:         $WORKDIR/audiolm/continuation_*.md
  TensorBoard:    tensorboard --logdir=$WORKDIR
MSG
