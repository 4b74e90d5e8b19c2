"""Time the README's main command, ``cbat report --quick`` (what ``make report`` runs), stage by stage.

    .venv/bin/python benchmarks/bench_report.py                 # fresh folder: sweep + notebooks + HTML
    .venv/bin/python benchmarks/bench_report.py --out reports/default   # reuse that folder's finished runs

Prints the wall time of each stage (from the report's ``report.json``), of each notebook, the whole command,
and the machine's core count and load average, since a busy machine stretches every figure. The target is
20 minutes on an otherwise idle 2-core CPU with a fresh folder.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 20 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="report folder (default: a fresh temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="cbat_bench_report_")) / "default"
    cbat = Path(sys.executable).with_name("cbat")
    load_before = os.getloadavg()
    start = time.perf_counter()
    completed = subprocess.run([str(cbat), "report", "--quick", "--out", str(out)])
    wall = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads((out / "report.json").read_text())
    print(f"\ncbat report --quick --out {out}: exit {completed.returncode}")
    print(f"machine: {os.cpu_count()} cores, load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    for stage, seconds in summary["stage_seconds"].items():
        print(f"  stage {stage:<10} {seconds:8.1f} s")
    for notebook in summary["notebooks"]:
        print(f"  notebook {notebook['name']:<32} {notebook['status']:<7} {notebook['seconds']:8.1f} s")
    print(f"  command wall {wall:8.1f} s ({wall / 60:.1f} min; target {TARGET_S / 60:.0f} min on an idle 2-core CPU)")
    print(f"  CPU time of all child processes {children.ru_utime + children.ru_stime:8.1f} s")
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
