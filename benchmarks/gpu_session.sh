#!/usr/bin/env bash
# Runs the GPU benchmarks of issues 3-7 in one go, each under its own time limit, and keeps the
# logs. Made for a lent GPU machine whose image has jax/flax/optax/orbax but not the rest of our
# dependencies: put py3.12 wheels of those in .whl/ (see benchmarks/README.md, "On a GPU").
#
#   LOG_DIR=/path [PARTS="sampling train codec"] [BASELINE=dir] ./benchmarks/gpu_session.sh
#
# BASELINE: another checkout (e.g. `git archive` of an earlier commit) whose training benchmark
# runs first in the same session, so a change is measured against it on the same card.
set -u
LOG_DIR=${LOG_DIR:-${OUT:-gpu_logs}}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:.
fi

LOG=$(realpath "$LOG_DIR")/gpu_session.log  # One file: the device tool returns 8 at most.
run() {  # run NAME SECONDS CMD...: one benchmark under a time limit, logged whatever happens.
  local name=$1 limit=$2
  shift 2
  echo "=== $name: $*" | tee -a "$LOG"
  timeout "$limit" "$@" 2>&1 | grep -v -E "^(W|I)[0-9]{4} " | tee -a "$LOG"
  local status=${PIPESTATUS[0]}
  echo "=== $name exit $status" | tee -a "$LOG"
}

nvidia-smi --query-gpu=name,memory.total,clocks.sm,driver_version --format=csv | tee -a "$LOG"
python3 -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, \
'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, jax.devices())" | tee -a "$LOG"

# Budget: a lent GPU gives ~15 min in all and 10 min per call; the limits below add up to
# ~16 min for every part, so pick parts per call. Measured so far: benchmarks/RESULTS.md.
PARTS=${PARTS:-"mfu mfu_variants"}
mfu() {  # mfu CONFIG BATCHES ATTENTIONS [FLAGS...]: an AudioLM stage's bf16 training MFU.
  local config=$1 batches=$2 attention=$3
  shift 3
  run "mfu_${config##*:}_${attention//,/_}_$batches$(echo "$@" | tr -c 'a-z0-9\n' _)" \
    ${MFU_LIMIT:-240} python3 -m benchmarks.train_throughput --config=$config \
    --per_device_batch=$batches --steps=${MFU_STEPS:-20} --dtype=bfloat16 \
    --attention_impl=$attention "$@"
}
archive_profiles() {  # Traces lie 4 folders down: one archive comes back instead.
  if [ -d /tmp/prof ]; then
    tar czf "$LOG_DIR/profiles.tgz" -C /tmp prof && du -h "$LOG_DIR/profiles.tgz" | tee -a "$LOG"
  fi
}
lever() {  # lever NAME XLA_FLAGS [FLAGS...]: one semantic_paper variant, in the background.
  local name=$1 xla=$2
  shift 2
  echo "=== lever $name: XLA_FLAGS='$xla' $*" | tee -a "$LOG"
  XLA_FLAGS=$xla XLA_PYTHON_CLIENT_PREALLOCATE=false timeout "${LEVER_LIMIT:-400}" \
    python3 -m benchmarks.train_throughput --config="${LEVER_CONFIG:-configs/audiolm.py:semantic_paper}" \
    --per_device_batch=32 --steps=30 --dtype=bfloat16 --attention_impl="${LEVER_ATTENTION:-cudnn}" \
    --gate_dir=/tmp/gate "$@" >"/tmp/gate/$name.log" 2>&1 &
}
levers_1() {  # 2026-11-27, first round (benchmarks/RESULTS.md), before vocab_multiple.
  lever base "" --profile_dir=/tmp/prof
  lever cublaslt --xla_gpu_enable_cublaslt=true
  lever no_triton_gemm --xla_gpu_enable_triton_gemm=false
  lever vocab_13440 "" --config.model.vocab_size=13440
  lever vocab_1026 "" --config.model.vocab_size=1026
  lever rope "" --config.model.position=rope
  lever no_dropout "" --config.model.dropout_rate=0
  lever b64_cublaslt_vocab_1026 --xla_gpu_enable_cublaslt=true --config.model.vocab_size=1026 \
    --per_device_batch=64 --profile_dir=/tmp/prof
  lever coarse_b8 "" --config=configs/audiolm.py:coarse_paper --per_device_batch=8
}
levers_2() {  # Second round: the padded vocabulary (now the paper default) with cuBLAS gemms.
  local no_triton=--xla_gpu_enable_triton_gemm=false
  lever padded ""
  lever unpadded "" --config.model.vocab_multiple=1
  lever padded_no_triton $no_triton --profile_dir=/tmp/prof
  lever padded_no_triton_b64 $no_triton --per_device_batch=64
  lever rope_no_triton $no_triton --config.model.position=rope
  lever coarse_b8_no_triton $no_triton --config=configs/audiolm.py:coarse_paper \
    --per_device_batch=8
}
levers() {  # levers SET: all of SET's levers compile at once, then each is timed alone
  # (train_throughput --gate_dir), after the background WaveNet job (part wavenet) if any.
  rm -rf /tmp/gate && mkdir -p /tmp/gate
  "levers_$1"
  local start=$SECONDS count
  count=$(ls /tmp/gate/*.log | wc -l)
  while [ "$(ls /tmp/gate | grep -c '^ready')" -lt "$count" ] && [ $((SECONDS - start)) -lt \
      "${COMPILE_LIMIT:-260}" ] && [ -n "$(jobs -r)" ]; do sleep 2; done
  echo "=== levers: $(ls /tmp/gate | grep -c '^ready') of $count compiled after $((SECONDS - start)) s" \
    | tee -a "$LOG"
  if [ -n "${WAVENET_PID:-}" ]; then wait "$WAVENET_PID"; wavenet_report wavenet; WAVENET_PID=; fi
  touch /tmp/gate/go
  wait
  for f in /tmp/gate/*.log; do
    echo "=== $(basename "$f" .log)" | tee -a "$LOG"
    grep -v -E "^(W|I)[0-9]{4} " "$f" | tail -n 60 | tee -a "$LOG"
  done
  archive_profiles
}
wavenet() {  # wavenet NAME VARIANT [FLAGS...]: a WaveNet (VARIANT of configs/wavenet.py) on a
  # folder of the corpus (WAVENET_DATA), WAVENET_SECONDS of training (then SIGTERM: it
  # checkpoints), then under $LOG_DIR/NAME 4 samples of 2 s at T 0.85, or for a locally
  # conditioned variant 2 resyntheses at T 0.85 of each recording in RESYNTH_DIR, named
  # spk<K>_*.wav for the folder's speaker id K (sorted folder names). FLAGS: extra
  # launch.train flags (e.g. --config.model.dtype=bfloat16). Log: /tmp/NAME.log.
  local name=$1 variant=$2 workdir=/tmp/$1
  shift 2
  {
    timeout -s TERM "${WAVENET_SECONDS:-170}" python3 -m launch.train \
      --config=configs/wavenet.py:"$variant" --workdir="$workdir" \
      --config.data.name="folder:${WAVENET_DATA:-gpudata/espeak}" \
      --config.data.crop_samples=16000 --config.data.batch_size=16 --config.data.num_threads=6 \
      --config.train.num_steps="${WAVENET_STEPS:-6000}" --config.train.log_every=250 \
      --config.train.sample_every=0 --config.train.eval_every=2000 \
      --config.train.checkpoint_every=1000 "$@"
    case $variant in
      quickstart*|vocoder*|super_resolution*)
        for f in "${RESYNTH_DIR:-gpudata/resynth}"/*.wav; do
          python3 -m launch.sample --workdir="$workdir" --num_samples=2 --temperature=0.85 \
            --output_dir="$LOG_DIR/$name/$(basename "$f" .wav)" --condition_audio="$f" \
            --speaker="$(basename "$f" | sed -E 's/^spk([0-9]+)_.*/\1/')"
        done;;
      *)
        python3 -m launch.sample --workdir="$workdir" --output_dir="$LOG_DIR/$name" \
          --num_samples=4 --seconds=2 --temperature=0.85;;
    esac
    tar czf "$LOG_DIR/${name}_run.tgz" -C /tmp "$name"  # Checkpoints, to sample at home.
  } >"/tmp/$name.log" 2>&1
}
wavenet_report() {  # wavenet_report NAME
  echo "=== $1" | tee -a "$LOG"
  grep -v -E "^(W|I)[0-9]{4} " "/tmp/$1.log" | tr '\r' '\n' | grep -E "step|wrote|Error|error" \
    | tail -n 40 | tee -a "$LOG"
  tr '\r' '\n' <"/tmp/$1.log" | grep "^train:" | tail -n 2 | tee -a "$LOG"
}
train() {  # train PREFIX: WaveNet paper training, fp32/bf16 x remat none/full.
  for dtype in float32 bfloat16; do
    for remat in none full; do
      run "$1train_${dtype}_${remat}" 75 python3 -m benchmarks.train_throughput \
        --config=configs/wavenet.py:paper --per_device_batch=8 --steps=50 \
        --dtype=$dtype --remat=$remat
    done
  done
}
for part in $PARTS; do
  case $part in
    train)
      if [ -n "${BASELINE:-}" ]; then (cd "$BASELINE" && train baseline_); fi
      train "";;
    mfu)  # Profiled: where the step's time goes (benchmarks/trace_summary.py).
      MFU_LIMIT=${MFU_LIMIT:-270} mfu configs/audiolm.py:semantic_paper 32 cudnn,xla \
        --profile_dir=/tmp/prof \
        --hlo_dir=/tmp/prof/hlo;;
    mfu_variants)  # What the profile's suspects cost: dropout's random bits, batch size.
      MFU_LIMIT=120 mfu configs/audiolm.py:semantic_paper 32 cudnn --config.train.rng_impl=
      MFU_LIMIT=110 mfu configs/audiolm.py:semantic_paper 32 cudnn --config.model.dropout_rate=0;;
    mfu_cudnn)  # The cuDNN step alone, profiled, at two batch sizes.
      MFU_LIMIT=${MFU_LIMIT:-270} mfu configs/audiolm.py:semantic_paper 32,64 cudnn \
        --profile_dir=/tmp/prof;;
    mfu_levers | mfu_levers_2)  # What each lever does to the paper stages' MFU, same card and run.
      levers "$( [ "$part" = mfu_levers ] && echo 1 || echo 2)";;
    wavenet)  # In the background: a WaveNet (quick start vocoder), larger batches, then samples.
      wavenet wavenet "${WAVENET_VARIANT:-quickstart}" ${WAVENET_FLAGS:-} &
      WAVENET_PID=$!;;
    vocoders)  # Side by side: the samples one period back (vocoder_period), plus LPCNet's
      # prediction from the log-mel envelope (vocoder_lpc), plus the softmax over the
      # excitation and a frame network (the quick start), all with VOCODER_FLAGS, then their
      # resyntheses: does each step still pay with ~100x the audio of a CPU run?
      wavenet vocoder_period vocoder_period ${VOCODER_FLAGS:-} &
      period_pid=$!
      wavenet vocoder_lpc vocoder_lpc ${VOCODER_FLAGS:-} &
      lpc_pid=$!
      wavenet quickstart_gpu quickstart ${VOCODER_FLAGS:-} &
      wait "$period_pid" "$lpc_pid" $!  # Only these, not a background `wavenet` part's job.
      wavenet_report vocoder_period
      wavenet_report vocoder_lpc
      wavenet_report quickstart_gpu;;
    mfu_coarse)
      MFU_LIMIT=120 mfu configs/audiolm.py:coarse_paper 8 cudnn;;
    lm)
      for dtype in ${LM_DTYPES:-bfloat16 float32}; do
        run "lm_sampling_$dtype" 120 python3 -m benchmarks.lm_sampling --batch_sizes=1,16 \
          --num_tokens=500 --repeats=2 --uncached_steps=2 --dtype=$dtype
      done;;
    sampling)
      run sampling 90 python3 -m benchmarks.wavenet_sampling --config=paper --batch_sizes=256 \
        --seconds=0.5 --repeats=2 --naive_steps=2;;
    tokens)
      run tokens 120 python3 -m benchmarks.token_extraction --variants=quickstart,paper \
        --num_clips=64 --clip_seconds=4 --batch_size=16;;
    codec)
      run codec 50 python3 -m benchmarks.codec_speed --configs=paper24k --seconds=4 \
        --repeats=2 --stream_frames=10;;
    *) echo "unknown part $part" | tee -a "$LOG";;
  esac
done
if [ -n "${WAVENET_PID:-}" ]; then
  wait "$WAVENET_PID"; wavenet_report wavenet
fi
archive_profiles
