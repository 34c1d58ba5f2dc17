#!/usr/bin/env python3
"""Hot SASS instructions from `ncu -i REP --page source --csv --print-source sass` (stdin).

Prints the stall-sample total, the sampled stall reasons summed over the kernel when the CSV has
per-reason columns, then every instruction holding at least --min percent of the samples, in
address order, so the hot stretches of a loop read as code.
"""
import argparse
import csv
import sys


def number(s):
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--min", type=float, default=0.4, help="percent of all samples an instruction needs")
    args = ap.parse_args()
    rows = list(csv.reader(line for line in sys.stdin if line.strip() and not line.startswith("==")))
    head_at = next((i for i, r in enumerate(rows) if any("Source" == c.strip() for c in r)), None)
    if head_at is None:
        print("no header with a Source column; first lines:")
        for r in rows[:5]:
            print(r)
        return 1
    head = rows[head_at]
    body = [r for r in rows[head_at + 1:] if len(r) == len(head)]
    col = {name: i for i, name in enumerate(head)}
    src = col["Source"]
    addr = next((i for n, i in col.items() if n.strip().lower() == "address"), None)
    allc = next((i for n, i in col.items() if "Warp Stall Sampling (All" in n), None)
    if allc is None:
        print("no stall-sampling column; columns:", head)
        return 1
    total = sum(number(r[allc]) for r in body)
    print(f"{len(body)} instructions, {total:.0f} stall samples")
    reasons = [(n, i) for n, i in col.items() if n.startswith("stall_") or "Stall" in n and i != allc]
    sums = sorted(((sum(number(r[i]) for r in body), n) for n, i in reasons), reverse=True)
    for s, n in sums[:12]:
        if s > 0:
            print(f"  {n}: {100 * s / max(total, 1):.1f}%")
    print()
    for r in body:
        v = number(r[allc])
        if total and 100 * v / total >= args.min:
            a = r[addr] if addr is not None else ""
            print(f"{100 * v / total:5.1f}%  {a:>8}  {r[src].strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
