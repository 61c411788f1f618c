#!/usr/bin/env bash
# Two-stage text-to-speech on the CPU, on the built-in speech corpus (README "WaveNet
# applications"): the quick start's vocoder (configs/wavenet.py:quickstart, reused when
# ./launch/quickstart.sh trained it), an acoustic model (configs/acoustic.py:quickstart) that
# predicts its log-mel frames from espeak's phonemes, then a sentence and the held-out test
# sentences spoken through both; with a phone recognizer (configs/phone_recognizer.py:noisy,
# trained here unless RECOGNIZER_WORKDIR names one) they are scored against espeak's readings.
# Re-running skips finished steps (training resumes from its checkpoints).
#   WORKDIR (default runs/acoustic), VOCODER_WORKDIR (default runs/wavenet_quickstart),
#   RECOGNIZER_WORKDIR (default runs/phone_recognizer_noisy), AUDIOJAX_DATA_DIR (default
#   data/), TEXT, SPEAKER override.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${WORKDIR:-runs/acoustic}
VOCODER=${VOCODER_WORKDIR:-runs/wavenet_quickstart}
RECOGNIZER=${RECOGNIZER_WORKDIR:-runs/phone_recognizer_noisy}
TEXT=${TEXT:-"The birch canoe slid on the smooth planks."}
SPEAKER=${SPEAKER:-0}
export AUDIOJAX_DATA_DIR=${AUDIOJAX_DATA_DIR:-$PWD/data}
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
. launch/venv.sh ""

python -m launch.prepare_data --dataset=espeak_speech --data_dir="$AUDIOJAX_DATA_DIR"
python -m launch.train --config=configs/wavenet.py:quickstart --workdir="$VOCODER"
python -m launch.train --config=configs/acoustic.py:quickstart --workdir="$WORKDIR"
python -m launch.train --config=configs/phone_recognizer.py:noisy --workdir="$RECOGNIZER"
SAMPLING=(--vocoder="$VOCODER" --temperature=0.85 --recognizer="$RECOGNIZER")
python -m launch.synthesize --workdir="$WORKDIR" "${SAMPLING[@]}" --text="$TEXT" \
  --speaker="$SPEAKER" --output="$WORKDIR/speech.wav"
python -m launch.synthesize --workdir="$WORKDIR" "${SAMPLING[@]}" --held_out=16 \
  --output_dir="$WORKDIR/held_out"

cat <<MSG

Done.
  acoustic model:  $WORKDIR (TensorBoard: tensorboard --logdir $WORKDIR/tensorboard)
  vocoder:         $VOCODER
  speech:          $WORKDIR/speech.wav ("$TEXT", speaker $SPEAKER)
                   $WORKDIR/held_out/synthesis_*.wav (16 held-out test sentences)
MSG
