"""Launcher overhead per job: from the launcher starting a job's process to the job's first training step.

    python benchmarks/launcher_overhead.py <sweep dir>

Reads each job's launcher.json (process start, epoch seconds) and the first record of train_log.jsonl (time
of the first logged step, which includes JAX import, data loading and the first compile). Run it on a sweep
made by the local_devices launcher, e.g.

    python -m sympscale.train -m system=fput D=16 model=symp,gru seed=1-4 train=smoke hydra.sweep.dir=/tmp/ovh
"""

import json
import statistics
import sys
from pathlib import Path


def main(sweep: str) -> None:
    rows = []
    for marker in sorted(Path(sweep).glob("*/launcher.json")):
        rec = json.loads(marker.read_text())
        log = marker.parent / "train_log.jsonl"
        if rec.get("status") != "done" or not log.exists() or "started" not in rec:
            continue
        first = json.loads(log.read_text().splitlines()[0])
        rows.append((marker.parent.name, first["time"] - rec["started"], first["wall_s"], rec["seconds"]))
    if not rows:
        sys.exit(f"no finished local_devices jobs with timestamps under {sweep}")
    print(f"{'job':<60} {'start->step0 s':>14} {'of which step 0 s':>17} {'job total s':>11}")
    for name, overhead, step0, total in rows:
        print(f"{name[:60]:<60} {overhead:>14.2f} {step0:>17.2f} {total:>11.2f}")
    print(f"median start->first step: {statistics.median(r[1] for r in rows):.2f} s over {len(rows)} jobs")


if __name__ == "__main__":
    main(sys.argv[1])
