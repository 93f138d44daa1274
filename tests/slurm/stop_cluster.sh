#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/start_cluster.sh (slurmd, slurmctld; munged stays up).
# Its state, logs and config stay in $SYMPSCALE_SLURM_DIR (default /tmp/sympscale-slurm).
set -euo pipefail
DIR="${SYMPSCALE_SLURM_DIR:-/tmp/sympscale-slurm}"
for daemon in slurmd slurmctld; do
    pidfile="$DIR/run/$daemon.pid"
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        pid="$(cat "$pidfile")"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        echo "stopped $daemon ($pid)"
    fi
done
