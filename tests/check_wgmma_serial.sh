#!/usr/bin/env bash
# ptxas reports C7514 ("wgmma.mma_async instructions are serialized ...") as an info line, not a
# warning: the build succeeds and the kernel then issues its wgmmas one at a time (session 9: an
# attention kernel written with two ifs where one if/else was meant measured 450 instead of 675
# TF/s). Compiles the given Hopper kernels for sm_90a with ptxas -v and fails on that line.
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
  serial=$(grep C7514 <<< "$log" | grep -oE "function '[^']*'" | sort -u)
  if [ -n "$serial" ]; then
    echo "$f: wgmma serialized (ptxas C7514) in:"; echo "$serial"; status=1
  else
    echo "$f: $kernels kernels, none with serialized wgmma"
  fi
done
exit $status
