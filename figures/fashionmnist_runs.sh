#!/usr/bin/env bash
# Issue 35's FashionMNIST runs on the CPU, two at a time, resumable and time-boxed.
#
#   bash figures/fashionmnist_runs.sh [MINUTES] [ONLY]
#
# Starts (or continues, --resume) every run below in results/fashionmnist/runs/, two processes
# at a time (one seed per process: vmapped seeds took ~2.3x longer per seed on this CPU, 94.5 s
# of training an epoch for 3 against 13.9 s for 1), and
# stops each cleanly (SIGTERM: the last whole epoch is checkpointed) when MINUTES (default 150)
# have passed; run it again to go on. ONLY: a regular expression of run names to do (default
# all). Order: seed 0 of every setting first, so a partial table covers every setting.
# FashionMNIST from Debian (apt-get install -y dataset-fashion-mnist), STEP imbalance with
# n_maj = 500, batch 50, 100 epochs, the paper's SGD schedule and tau = 0.1; the geometry every
# epoch, NCM accuracy on 1,000 seeded test images, and on all 10,000 (plus a linear probe)
# every 10 epochs and at the end.
# Across sessions: a run resumes from its checkpoint.npz (ignored by git: *.npz). A later
# session's checkout may hold only what was committed, and a run without its checkpoint starts
# again from epoch 0 (it cannot go on from metrics.jsonl alone), so at the end of a session
# commit each unfinished run's checkpoint with its partial metrics (git add -f
# results/fashionmnist/runs/NAME/checkpoint.npz), and git rm --cached it once the run is done.
set -u
cd "$(dirname "$0")/.."
MINUTES=${1:-150}
ONLY=${2:-.}
OUT=results/fashionmnist/runs
COMMON=(--dataset fashionmnist --n-maj 500 --batch-size 50 --epochs 100 --test-every 10
        --test-subset 1000 --quiet)
END=$(( $(date +%s) + MINUTES * 60 ))
JOBS=()
issue35() {  # seed $1 of issue 35's settings at R = $2
    local s=$1 R=$2
    JOBS+=("r${R}_relu_s$s --arch resnet-small --R $R --seed $s")
    JOBS+=("r${R}_norelu_s$s --arch resnet-small --R $R --seed $s --no-relu")
    JOBS+=("r${R}_binding_s$s --arch resnet-small --R $R --seed $s --schedule binding")
    JOBS+=("r${R}_ce_s$s --arch resnet-small --R $R --seed $s --loss ce")
}
# Issue 38 at R = 10 with ReLU: temperature (tau 0.05 and 0.5; tau 0.1 is r10_relu) and
# activations (Leaky ReLU 0.01 and 0.1, GELU; ReLU and none are r10_relu and r10_norelu).
issue38() {  # seed $1
    local s=$1
    for t in 0.05 0.5; do
        JOBS+=("r10_tau${t}_s$s --arch resnet-small --R 10 --seed $s --tau $t")
    done
    JOBS+=("r10_leaky0.01_s$s --arch resnet-small --R 10 --seed $s --activation leaky_relu --slope 0.01")
    JOBS+=("r10_leaky0.1_s$s --arch resnet-small --R 10 --seed $s --activation leaky_relu --slope 0.1")
    JOBS+=("r10_gelu_s$s --arch resnet-small --R 10 --seed $s --activation gelu")
}
# Order: seed 0 of every setting of both issues first, so a partial table covers every setting;
# finished runs return at once (--resume of a finished run only reports it).
issue35 0 10; issue35 0 100; issue35 1 10; issue35 1 100; issue38 0
# Issue 35's model-complexity question: DenseNet-40 (growth 12) against r10_relu, one seed. It
# trains ~25x slower than resnet-small here (8.7 against 216 img/s beside two other processes,
# conv=dotgrad; xla 7.1, matmul 4.1), so it holds one lane over several time boxes (--resume)
# while the other lane works through the rest. figures/deep_gpu.sh also runs it on a GPU.
JOBS+=("r10_densenet40_s0 --arch densenet40 --R 10 --seed 0")
# then issue 38's seeds before issue 35's R = 100 seed 2: issue 35 waits for DenseNet-40 anyway
issue35 2 10; issue38 1; issue38 2; issue35 2 100
# The paper's own length at R = 10 (350 epochs, the milestones scale with it), one seed each:
# does the longer high-lr phase bring the features to the OF? ~2 h each beside DenseNet-40.
for v in relu norelu binding; do
    case $v in norelu) extra=--no-relu ;; binding) extra="--schedule binding" ;; *) extra= ;; esac
    JOBS+=("r10_${v}_e350_s0 --arch resnet-small --R 10 --seed 0 --epochs 350 $extra")
done

run_one() {
    local name=$1; shift
    local left=$(( END - $(date +%s) ))
    [ "$left" -le 60 ] && return 0
    echo "$(date +%T) start $name ($left s left)"
    timeout -s TERM "$left" python -m deep.train "${COMMON[@]}" "$@" --out "$OUT/$name" --resume \
        > "$OUT/$name.log" 2>&1
    local rc=$?  # 124: the time box ended it (cleanly: the last whole epoch is checkpointed)
    echo "$(date +%T) end $name: exit $rc ($(tail -n 1 "$OUT/$name.log"))"
}

mkdir -p "$OUT"
for job in "${JOBS[@]}"; do
    read -r name args <<< "$job"
    [[ "$name" =~ $ONLY ]] || continue
    while [ "$(jobs -r | wc -l)" -ge 2 ]; do sleep 5; done
    # shellcheck disable=SC2086
    run_one "$name" $args &
    sleep 2
done
wait
