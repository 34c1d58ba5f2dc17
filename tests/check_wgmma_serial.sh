#!/usr/bin/env bash
# ptxas reports "wgmma.mma_async instructions are serialized due to <reason>" as an info line, not a
# warning, under one code per reason (C7511 registers, C7514, C7515 accumulators defined by other
# instructions, C7520 a wgmma in a divergent path, ...): the build succeeds and the kernel then
# issues its wgmmas one at a time (session 9: an attention kernel written with two ifs where one
# if/else was meant measured 450 instead of 675 TF/s; session 13: C7520, dense 600 -> 400 TF/s,
# which a check for C7514 alone let through). Compiles the given Hopper kernels for sm_90a with
# ptxas -v and fails on any such line.
# Usage: check_wgmma_serial.sh NVCC SOURCE_ROOT kernels/file.cu...
set -uo pipefail
nvcc=$1 root=$2
shift 2
status=0
for f in "$@"; do
  if ! log=$("$nvcc" -I"$root" -O3 -DNDEBUG -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a \
                -Xptxas=-v -c "$root/$f" -o /dev/null 2>&1); then
    echo "$f: does not compile"; tail -20 <<< "$log"; exit 1
  fi
  kernels=$(grep -c 'Compiling entry' <<< "$log")
  serial=$(grep 'wgmma.mma_async instructions are serialized' <<< "$log" | grep -oE "\(C[0-9]+\)|function '[^']*'" |
           paste -d' ' - - | sort -u)
  if [ -n "$serial" ]; then
    echo "$f: wgmma serialized (ptxas code, function):"; echo "$serial"; status=1
  else
    echo "$f: $kernels kernels, none with serialized wgmma"
  fi
done
exit $status
