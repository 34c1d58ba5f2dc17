#!/usr/bin/env bash
# ncu on the first launch of one kernel inside an `xattn` command: time and memory-system
# counters (DRAM bytes and busy %, L2 hit rate and busy %, SM busy %). Appends to $OUT/ncu.md.
# Usage: bash scripts/gpu-profile.sh NAME KERNEL_REGEX xattn-args...
#   e.g. bash scripts/gpu-profile.sh score score_kernel_sm90 bench scoring --cases video-720p --strides 8 --no-check
# Environment: BUILD_DIR (build-gpu), NCU_SKIP (launches of the kernel to skip first, default 2).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
BUILD_DIR=${BUILD_DIR:-build-gpu}
name=$1 regex=$2
shift 2
metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,lts__t_sector_hit_rate.pct,lts__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,sm__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum
# Share of cycles the SMs had a CTA (launch gaps, tails), and DRAM writes; names differ between
# ncu versions, so a run that rejects them is repeated without.
extra=sm__cycles_active.avg,sm__cycles_elapsed.avg,dram__bytes_write.sum
run_ncu() {
  ncu --kernel-name "regex:$regex" --launch-skip "${NCU_SKIP:-2}" --launch-count 1 --metrics "$1" \
    "$BUILD_DIR/bin/xattn" "${@:2}" > "$OUT/ncu-$name.log" 2>&1
}
run_ncu "$metrics,$extra" "$@"
grep -q 'Failed to find metric' "$OUT/ncu-$name.log" && run_ncu "$metrics" "$@"
echo "| $name | $(grep -E '^ +(gpu__|dram__|lts__|sm__)' "$OUT/ncu-$name.log" | awk '{print $1 "=" $(NF) " " $(NF-1)}' | tr '\n' ';') |" \
  | tee -a "$OUT/ncu.md"
