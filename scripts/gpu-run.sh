#!/usr/bin/env bash
# One device call: build, GPU + CPU tests, fixtures and benchmarks; logs under $OUT,
# a short table last. Usage: bash scripts/gpu-run.sh [steps...]
#   steps: build tests tests-gpu fixtures ops sanitize density bench-scoring bench-attention
#          bench-text bench-t2v sass sass-attention sass-attention-quick sass-cubins ncu-hot ncu-times
#   (default: build tests ops). BENCH_CASES=a,b limits bench-attention's cases; ATTENTION_ARGS
#   adds flags to it (e.g. 'ATTENTION_ARGS=--densities 0.2,0.3').
#   A step NAME=VALUE exports that variable for the steps after it, e.g.
#   `bench-scoring XATTN_SCORING_WARPGROUPS=2 bench-scoring` compares two kernels in one call
#   (each bench-scoring / bench-attention run writes its own scoring-N.md / attention-N.md,
#   headed by the XATTN_* settings; their progress goes to bench.err). SCORING_ARGS adds flags to
#   bench scoring, e.g. 'SCORING_ARGS=--no-check --cases video-720p'. Each bench/sanitize step
#   stops after STEP_TIMEOUT seconds (300) and each ctest test after TEST_TIMEOUT (180), so a
#   hung kernel costs minutes, not the whole call.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
BUILD_DIR=${BUILD_DIR:-build-gpu}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build tests ops)
declare -a table
n_scoring=0
n_attention=0
n_ncu=0
status() { table+=("$(printf '%-12s %-6s %s' "$1" "$2" "$3")"); }
# The bf16 D 128 producer-warpgroup attention kernel out of a SASS dump (stdin).
attn_kernel_sass() {
  awk '/Function :/ { on = /sparse_attention_sm90_kernelI13__nv_bfloat16Li128ELNS1_4LoadE2E/ } on'
}
# "<file>: N instructions; H16 D1 D0 E66 ..." — the wgmma issue/wait order of a kernel's SASS.
attn_loop_order() {
  local order
  order=$(grep -oE 'HGMMA|WARPGROUP\.DEPBAR\.LE gsb0, 0x[01]|MUFU\.EX2' "$1" |
    sed -E 's/HGMMA/H/; s/.*0x1$/D1/; s/.*0x0$/D0/; s/MUFU.EX2/E/' |
    awk '{ if ($0 == p && p != "D1" && p != "D0") n++; else { if (p != "") printf "%s%s ", p, (p == "H" || p == "E") ? n : ""; p = $0; n = 1 } }
         END { printf "%s%s\n", p, (p == "H" || p == "E") ? n : "" }')
  echo "$(basename "$1"): $(grep -c '^ */\*[0-9a-f]*\*/' "$1") instructions; $order"
}
sass_summary() {
  cuobjdump --dump-sass "$BUILD_DIR/kernels/libxattn_kernels.a" > "$OUT/kernels.sass" 2>&1
  status sass info "HMMA $(grep -c HMMA "$OUT/kernels.sass") HGMMA $(grep -c HGMMA "$OUT/kernels.sass") LDL/STL $(grep -cE 'LDL|STL' "$OUT/kernels.sass")"
}
# `ncu --csv --metrics ...` (stdin) as one line per kernel launch and metric: value, unit,
# metric, kernel name.
ncu_csv_table() {
  python3 -c 'import csv, sys
rows = [r for r in csv.reader(l for l in sys.stdin if l.startswith("\""))]
h = rows[0]; k = h.index("Kernel Name"); n = h.index("Metric Name"); v = h.index("Metric Value"); u = h.index("Metric Unit")
for r in rows[1:]:
    print(f"{r[v]:>16} {r[u]:<8} {r[n]:<50} {r[k][:100]}")'
}
# bench_table NAME N ROUTINE ARGS...: `xattn bench ROUTINE ARGS` into NAME-N.md, headed by the
# XATTN_* settings it ran with; progress and errors appended to bench.err.
bench_table() {
  local name=$1 n=$2 t0 settings f
  shift 2
  t0=$(date +%s)
  f="$name-$n.md"
  settings="$(env | grep -E '^XATTN_' | sort | tr '\n' ' ')"
  echo "== $f: xattn bench $* (${settings:-defaults})" >> "$OUT/bench.err"
  if timeout "${STEP_TIMEOUT:-300}" "$BUILD_DIR/bin/xattn" bench "$@" -o md --out "$OUT/$f.tmp" > /dev/null 2>> "$OUT/bench.err"; then
    status "$name" ok "$(( $(date +%s) - t0 )) s, table in $f ${settings:-(defaults)}"
  else
    status "$name" FAIL "see bench.err"; tail -5 "$OUT/bench.err"
  fi
  { echo "settings: ${settings:-(defaults)}"; echo; cat "$OUT/$f.tmp" 2>/dev/null; } > "$OUT/$f"
  rm -f "$OUT/$f.tmp"
  cat "$OUT/$f"
}

for s in "${steps[@]}"; do
  case "$s" in
    [A-Z]*=*)
      export "${s?}"
      status env set "$s" ;;
    build)
      t0=$(date +%s)
      if bash scripts/gpu-build.sh > "$OUT/gpu-build.log" 2>&1; then
        status build ok "$(( $(date +%s) - t0 )) s; $(grep -m1 '^GPUs' "$OUT/gpu-build.log" | sed 's/^GPUs *//')"
        # ptxas "wgmma.mma_async instructions are serialized" (C7511, C7514, C7515, C7520, ...): a
        # kernel's wgmmas run one at a time (~30% slower; only an info line). The CPU suite's
        # kernels.wgmma_not_serialized checks the same (label compile: not run here).
        serial=$(grep 'wgmma.mma_async instructions are serialized' "$OUT/gpu-build.log" | grep -oE "function '[^']*'" | sort -u)
        [ -n "$serial" ] && status build WARN "wgmma serialized in: $(echo "$serial" | c++filt | tr '\n' ' ' | cut -c1-300)"
        "$BUILD_DIR/bin/xattn" info --json > "$OUT/info.json" 2>&1
      else
        status build FAIL "see gpu-build.log"; tail -40 "$OUT/gpu-build.log"
      fi ;;
    tests)
      t0=$(date +%s)
      ctest --test-dir "$BUILD_DIR" -L 'unit|gpu' -LE 'sanitize|compile' --output-on-failure -j 8 --timeout "${TEST_TIMEOUT:-180}" \
        > "$OUT/ctest.log" 2>&1
      rc=$?
      status tests "$([ $rc -eq 0 ] && echo ok || echo FAIL)" "$(grep -E 'tests passed' "$OUT/ctest.log") ($(( $(date +%s) - t0 )) s)"
      [ $rc -ne 0 ] && grep -E -A3 'Failed|FAILED' "$OUT/ctest.log" | tail -40 ;;
    tests-gpu)
      t0=$(date +%s)
      ctest --test-dir "$BUILD_DIR" -L gpu --output-on-failure -j 4 --timeout "${TEST_TIMEOUT:-180}" > "$OUT/ctest-gpu.log" 2>&1
      rc=$?
      status tests-gpu "$([ $rc -eq 0 ] && echo ok || echo FAIL)" "$(grep -E 'tests passed' "$OUT/ctest-gpu.log") ($(( $(date +%s) - t0 )) s)"
      [ $rc -ne 0 ] && grep -E -B2 -A12 'Failure|FAILED' "$OUT/ctest-gpu.log" | tail -60 ;;
    sass-attention|sass-attention-quick)
      # The bf16 D 128 producer-warpgroup attention kernel's SASS, for diffs: of this build, or
      # (-quick) of nvcc on kernels/sparse_attention_sm90.cu alone, without the CMake build (~20 s).
      # The summary line lists the loop's wgmma issue/wait order: "H8" = 8 HGMMAs, "D1"/"D0" =
      # WARPGROUP.DEPBAR.LE gsb0 0x1/0x0, "E66" = 66 MUFU.EX2 in a row (a softmax). The loop is the
      # repeated group; it overlaps the softmax with PV(t) only if it reads "H16 D1 E66 D0", not
      # "H16 D1 D0 E66" (session 5).
      f="$OUT/attention-$([ "$s" = sass-attention-quick ] && echo quick || basename "$BUILD_DIR").sass"
      if [ "$s" = sass-attention-quick ]; then
        "${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}" -std=c++17 -O3 -DNDEBUG --expt-relaxed-constexpr \
          -gencode=arch=compute_90a,code=sm_90a -I. \
          -cubin -o "$OUT/attention.cubin" kernels/sparse_attention_sm90.cu > "$OUT/sass-quick.log" 2>&1
        cuobjdump --dump-sass "$OUT/attention.cubin" 2>/dev/null
      else
        cuobjdump --dump-sass "$BUILD_DIR/kernels/libxattn_kernels.a" 2>/dev/null
      fi | attn_kernel_sass > "$f"
      status sass-attn info "$(attn_loop_order "$f")" ;;
    sass-cubins)
      # Same summary for every cubin under out/cubins (compiled on the CPU machine, carried in):
      # variants of the attention kernel compared without building them here.
      for c in out/cubins/*.cubin; do
        f="$OUT/$(basename "$c" .cubin).sass"
        cuobjdump --dump-sass "$c" 2>/dev/null | attn_kernel_sass > "$f"
        status sass-cubin info "$(attn_loop_order "$f")"
      done ;;
    sass) sass_summary ;;
    ncu-times)
      # Duration of each of the first NCU_COUNT (default 12) kernel launches of `xattn bench
      # NCU_ARGS` (after NCU_SKIP, default 0), one line each, in ncu-times-N.txt.
      n_ncu=$((n_ncu + 1))
      f="$OUT/ncu-times-$n_ncu.txt"
      # shellcheck disable=SC2086
      ncu --launch-skip "${NCU_SKIP:-0}" --launch-count "${NCU_COUNT:-12}" --metrics gpu__time_duration.sum --csv \
        "$BUILD_DIR/bin/xattn" bench ${NCU_ARGS:?} 2> /tmp/ncu-times.err |
        ncu_csv_table > "$f" 2>&1
      status ncu-times "$([ -s "$f" ] && echo ok || echo FAIL)" "$(wc -l < "$f") launches in $(basename "$f")"
      cat "$f" ;;
    ncu-hot)
      # One launch of the kernels matching NCU_KERNEL (regex) in `xattn bench NCU_ARGS`, skipping
      # NCU_SKIP launches: stall samples per SASS instruction (scripts/ncu_hot.py) in ncu-N.txt.
      n_ncu=$((n_ncu + 1))
      t0=$(date +%s)
      f="$OUT/ncu-$n_ncu.txt"
      # shellcheck disable=SC2086
      ncu --kernel-name "regex:${NCU_KERNEL:?}" --launch-skip "${NCU_SKIP:-2}" --launch-count 1 \
        --section SpeedOfLight --section WarpStateStats --section SourceCounters --import-source no -f -o /tmp/ncu-hot \
        "$BUILD_DIR/bin/xattn" bench ${NCU_ARGS:?} > /tmp/ncu-hot.log 2>&1
      { echo "ncu $NCU_KERNEL: xattn bench $NCU_ARGS (skip ${NCU_SKIP:-2})"
        ncu -i /tmp/ncu-hot.ncu-rep --page details --section SpeedOfLight --section WarpStateStats 2>&1 |
          grep -E 'Duration|Throughput|Frequency|Stall|Issued|Eligible|Warp Cycles' | head -24
        ncu -i /tmp/ncu-hot.ncu-rep --page source --csv --print-source sass 2>&1 | python3 scripts/ncu_hot.py
      } > "$f" 2>&1
      status ncu-hot "$([ -s /tmp/ncu-hot.ncu-rep ] && echo ok || echo FAIL)" "$(head -c 300 "$f" | tr '\n' ' ') ($(( $(date +%s) - t0 )) s)"
      [ -s /tmp/ncu-hot.ncu-rep ] || tail -5 /tmp/ncu-hot.log ;;
    fixtures)
      if python3 tests/fixtures/make_fixtures.py "$OUT" > "$OUT/fixtures.log" 2>&1; then
        status fixtures ok "$(tail -1 "$OUT/fixtures.log")"
      else
        status fixtures FAIL "$(tail -3 "$OUT/fixtures.log")"
      fi ;;
    sanitize)
      # compute-sanitizer memcheck and racecheck on small kernel cases.
      t0=$(date +%s)
      rc=0
      for tool in memcheck racecheck; do
        timeout "${STEP_TIMEOUT:-300}" compute-sanitizer --tool $tool --error-exitcode 9 "$BUILD_DIR/tests/core/xattn_tests_attention_cuda" \
          --gtest_filter='*Selection*:*BlockSparseAttention*:*ScoresMatch*:*Split*:*Warpgroup*' > "$OUT/sanitize-$tool.log" 2>&1 || rc=1
      done
      status sanitize "$([ $rc -eq 0 ] && echo ok || echo FAIL)" "$(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT"/sanitize-*.log | sed 's/=* *//' | tr '\n' ';') ($(( $(date +%s) - t0 )) s)" ;;
    bench-scoring)
      n_scoring=$((n_scoring + 1))
      # shellcheck disable=SC2086
      bench_table scoring "$n_scoring" scoring ${SCORING_ARGS:-}
      sass_summary ;;
    bench-attention)
      n_attention=$((n_attention + 1))
      # shellcheck disable=SC2086
      bench_table attention "$n_attention" attention ${BENCH_CASES:+--cases "$BENCH_CASES"} ${ATTENTION_ARGS:-} ;;
    bench-text)
      t0=$(date +%s)
      if timeout "${STEP_TIMEOUT:-300}" "$BUILD_DIR/bin/xattn" bench text-encoder -o md --out "$OUT/text.md" > /dev/null 2> "$OUT/text.err"; then
        status text ok "$(( $(date +%s) - t0 )) s, $(grep -o 'weights.*' "$OUT/text.err" | tail -1), table in text.md"
      else
        status text FAIL "see text.err"; tail -5 "$OUT/text.err"
      fi ;;
    bench-t2v)
      t0=$(date +%s)
      if timeout "${STEP_TIMEOUT:-300}" "$BUILD_DIR/bin/xattn" bench t2v-step ${T2V_ARGS:-} -o md --out "$OUT/t2v.md" > /dev/null 2> "$OUT/t2v.err"; then
        status t2v ok "$(( $(date +%s) - t0 )) s, table in t2v.md"
      else
        status t2v FAIL "see t2v.err"; tail -5 "$OUT/t2v.err"
      fi ;;
    ops)
      if python3 tests/python/test_torch_ops.py "$BUILD_DIR" > "$OUT/ops.log" 2>&1; then
        status ops ok "$(tail -1 "$OUT/ops.log")"
      else
        status ops FAIL "see ops.log"; tail -15 "$OUT/ops.log"
      fi ;;
    density)
      : > "$OUT/density.md"
      while IFS= read -r line; do
        case "$line" in ''|'#'*) continue ;; esac
        echo "## $line" >> "$OUT/density.md"
        # shellcheck disable=SC2086
        "$BUILD_DIR/bin/xattn" bench density $line >> "$OUT/density.md" 2>> "$OUT/density.err" || echo "FAILED: $line" >> "$OUT/density.md"
      done < scripts/density-sweep.txt
      status density done "$(grep -c '| all |' "$OUT/density.md") runs, see density.md"
      grep -E '^## |\| all \||FAILED' "$OUT/density.md" | sed 's/--config configs\/density\/video-720p.yaml//' | cut -c1-200 ;;
    *) status "$s" FAIL "unknown step" ;;
  esac
done
echo
echo "== gpu-run $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
# Which card: the same kernels' ratios differ between cards of the same model (causal 8K, 20% /
# dense: 83% on one H100, 90-91% on another, 2026-11-28), so notes name the card's serial.
echo "   card $(nvidia-smi --query-gpu=serial,uuid,power.limit,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1)"
printf '%s\n' "${table[@]}"
