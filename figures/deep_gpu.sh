#!/usr/bin/env bash
# The GPU measurements of the `deep` package in one time-boxed call (the device tool allows one
# command of at most 10 minutes, and a session 15 minutes of device time in all).
#
#   1. deep.train: ResNet-18 on digits at STEP R = 10 and R = 100 (R = 100 with 150 majority and
#      2 minority images per class), ReLU / no ReLU / binding schedule, $SEEDS vmapped seeds each.
#      The six runs train at once on the one GPU (batch 50 leaves it mostly idle); each gets
#      SIGTERM after $TRAIN_TIMEOUT s, which deep.train ends like Ctrl-C, keeping every finished epoch.
#   2. deep.report for each R (plots + final-epoch table with mean +- sd over the seeds).
#   3. deep.bench (JAX vs PyTorch when importable), alone on the GPU, rows printed as they finish;
#      on a machine with several GPUs then the data-parallel step on all of them
#      (deep.bench --devices all: each global batch split over the GPUs), appended to bench.txt.
#   4. The dual certificate of the UFM+ optimum at N = 10,010 (k = 10, STEP R = 10).
#   5. (Issue 35, beside step 1) FashionMNIST at R = 10 with ReLU, DenseNet-40 (growth 12)
#      against resnet-small ($FMNIST_ARCHS), one seed each, the CPU runs' protocol (n_maj 500,
#      batch 50, 100 epochs); the time box keeps every finished epoch. On the project's 2-core
#      CPU DenseNet-40 takes ~6-12 min an epoch (figures/fashionmnist_runs.sh runs it there too,
#      over several sessions). Needs the Debian files (FMNIST_DIR,
#      default /usr/share/datasets/fashion-mnist, else ./data/fashion-mnist, gitignored: before
#      the device call, `mkdir -p data && cp -r /usr/share/datasets/fashion-mnist data/` and pass
#      carry ["data/fashion-mnist"], 30 MB); skipped with a log line when absent or FMNIST_ARCHS
#      is empty.
#
# Everything it keeps lands in OUT_DIR as at most 8 files: log.txt, bench.txt, cert.json,
# report_r<R>.txt, deep_gpu.tar.gz (the runs' config.json + metrics.jsonl and the PNGs; no
# checkpoints). Unpack it in the repository root: results/deep_gpu/{runs,r10,r100}/ (run data
# lives in results/, next to results/deep_cpu/, not in the figures package).
#
#   bash figures/deep_gpu.sh "$OUT"     # on the GPU: the device tool's run, timeout_s 600 (OUT is set)
#
# The same script at tiny size on a CPU (tests/test_deep_gpu_script.py runs this):
#   ARCH=resnet-tiny EPOCHS=1 SEEDS=1 RS=2 TRAIN_ARGS="--n-maj 20" \
#   BENCH_ARGS="--quick --batch-sizes 8 --no-torch" CERT_ARGS="--k 4 --R 10 --n-min 5" \
#   bash figures/deep_gpu.sh /tmp/deep_gpu_out
set -u -o pipefail

OUT_DIR=${1:-${OUT:-/tmp/deep_gpu_out}}
WORK=${WORK:-$(mktemp -d /tmp/deep_gpu.XXXXXX)}
PY=${PY:-python3}
ARCH=${ARCH:-resnet18}
EPOCHS=${EPOCHS:-100}
SEEDS=${SEEDS:-3}
RS=${RS:-"10 100"}
R100_ARGS=${R100_ARGS:-"--test-fraction 0.1 --n-maj 150"}
TRAIN_ARGS=${TRAIN_ARGS:-""}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-270}
BENCH_ARGS=${BENCH_ARGS:-""}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-150}
DP_BENCH_ARGS=${DP_BENCH_ARGS:-""}          # set: run the data-parallel bench even on one device
DP_BENCH_TIMEOUT=${DP_BENCH_TIMEOUT:-50}    # 270 + 150 + 50 + 70 s: inside the 600 s call
CERT_ARGS=${CERT_ARGS:-"--k 10 --R 10 --n-min 182"}
CERT_TIMEOUT=${CERT_TIMEOUT:-70}
FMNIST_ARCHS=${FMNIST_ARCHS-"densenet40 resnet-small"}
FMNIST_DIR=${FMNIST_DIR:-}
if [ -z "$FMNIST_DIR" ]; then
    for d in /usr/share/datasets/fashion-mnist data/fashion-mnist; do
        [ -e "$d/train-images-idx3-ubyte.gz" ] && FMNIST_DIR=$d && break
    done
fi

export PYTHONUNBUFFERED=1 SCL_GEOMETRY_CACHE=off
mkdir -p "$OUT_DIR" "$WORK/results/deep_gpu/runs"
log() { echo "$(date +%T) $*" | tee -a "$OUT_DIR/log.txt"; }

log "deep_gpu: ARCH=$ARCH EPOCHS=$EPOCHS SEEDS=$SEEDS RS='$RS' WORK=$WORK"
$PY -c 'import jax, flax, optax; print("jax", jax.__version__, "flax", flax.__version__,
"optax", optax.__version__, jax.devices())' 2>&1 | tee -a "$OUT_DIR/log.txt"
command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | tee -a "$OUT_DIR/log.txt"

# 1. Training: every run at once, each with a slice of the GPU memory.
n_runs=$(( $(wc -w <<<"$RS") * 3 + $(wc -w <<<"$FMNIST_ARCHS") ))
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-$(awk "BEGIN{print 0.9/$n_runs}")}
pids=()
for R in $RS; do
    extra=$TRAIN_ARGS
    [ "$R" = 100 ] && extra="$extra $R100_ARGS"
    for variant in relu norelu binding; do
        case $variant in
            relu) flags="" ;;
            norelu) flags="--no-relu" ;;
            binding) flags="--schedule binding" ;;
        esac
        name="r${R}_$variant"
        # shellcheck disable=SC2086  # word splitting of the flag strings is intended
        timeout -k 30 "$TRAIN_TIMEOUT" $PY -m deep.train --arch "$ARCH" --R "$R" \
            --epochs "$EPOCHS" --seeds "$SEEDS" --checkpoint-every 25 --quiet $flags $extra \
            --out "$WORK/results/deep_gpu/runs/$name" >"$WORK/$name.log" 2>&1 &
        pids+=($!)
    done
done
if [ -n "$FMNIST_ARCHS" ] && [ -n "$FMNIST_DIR" ]; then
    for arch in $FMNIST_ARCHS; do
        timeout -k 30 "$TRAIN_TIMEOUT" $PY -m deep.train --arch "$arch" --dataset fashionmnist \
            --data-dir "$FMNIST_DIR" --R 10 --n-maj 500 --batch-size 50 --epochs 100 --seed 0 \
            --test-every 10 --test-subset 1000 --quiet \
            --out "$WORK/results/deep_gpu/fashionmnist/r10_${arch}_s0" >"$WORK/fm_$arch.log" 2>&1 &
        pids+=($!)
    done
else
    log "FashionMNIST runs skipped (FMNIST_ARCHS='$FMNIST_ARCHS', FMNIST_DIR='$FMNIST_DIR')"
fi
log "training ${#pids[@]} runs (at most ${TRAIN_TIMEOUT}s)"
for pid in "${pids[@]}"; do wait "$pid"; done
for f in "$WORK"/r*.log "$WORK"/fm_*.log; do
    [ -e "$f" ] && log "$(basename "$f" .log): $(tail -n 1 "$f")"
done
unset XLA_PYTHON_CLIENT_MEM_FRACTION

# 2. Reports: one per R, over every seed of the three variants.
for R in $RS; do
    mapfile -t dirs < <(find "$WORK/results/deep_gpu/runs" -path "*/r${R}_*" -name metrics.jsonl -printf '%h\n' | sort)
    if [ "${#dirs[@]}" -gt 0 ]; then
        $PY -m deep.report "${dirs[@]}" --out "$WORK/results/deep_gpu/r$R" >"$OUT_DIR/report_r$R.txt" 2>&1
        log "report r$R: rc=$? (${#dirs[@]} runs)"
    fi
done

# 3. Bench, alone on the GPU.
log "bench (at most ${BENCH_TIMEOUT}s)"
# shellcheck disable=SC2086
timeout -k 20 "$BENCH_TIMEOUT" $PY -m deep.bench $BENCH_ARGS 2>&1 | tee "$OUT_DIR/bench.txt"
log "bench rc=$?"

# 3b. The data-parallel step on every GPU of the machine (only where there are several).
n_gpu=0
command -v nvidia-smi >/dev/null && n_gpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
if [ "$n_gpu" -gt 1 ] || [ -n "$DP_BENCH_ARGS" ]; then
    log "data-parallel bench on all devices (at most ${DP_BENCH_TIMEOUT}s)"
    # shellcheck disable=SC2086
    timeout -k 10 "$DP_BENCH_TIMEOUT" $PY -m deep.bench --devices all --no-torch \
        ${DP_BENCH_ARGS:---batch-sizes 512,2048 --seeds 2 --steps 20} 2>&1 | tee -a "$OUT_DIR/bench.txt"
    log "data-parallel bench rc=$?"
else
    log "data-parallel bench skipped: $n_gpu GPUs (it needs several)"
fi

# 4. The dual certificate at N = 10,010.
log "certificate (at most ${CERT_TIMEOUT}s): ufm.solve $CERT_ARGS --nonneg --certify --cert-method dual"
# shellcheck disable=SC2086
timeout -k 20 "$CERT_TIMEOUT" $PY -m ufm.solve $CERT_ARGS --nonneg --certify --cert-method dual \
    --quiet --out "$OUT_DIR/cert.json" 2>&1 | tail -n 4 | tee -a "$OUT_DIR/log.txt"
log "certificate rc=$?"

# Pack the small files (no checkpoints) into one archive.
(cd "$WORK" && find results -name '*.json' -o -name '*.jsonl' -o -name '*.png' | sort |
    tar czf "$OUT_DIR/deep_gpu.tar.gz" -T -)
log "packed $(tar tzf "$OUT_DIR/deep_gpu.tar.gz" | wc -l) files into deep_gpu.tar.gz"
