#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine (slurmctld + slurmd on localhost, one CPU partition), for
# tests/test_slurm_cluster.py. Idempotent: a running cluster with the same config is kept. Needs root; installs
# Debian's slurmctld, slurmd, slurm-client and munge with apt-get when they are missing.
#
#   sudo tests/slurm/start_cluster.sh        # then: export SLURM_CONF=/tmp/sympscale-slurm/slurm.conf
#   tests/slurm/stop_cluster.sh              # stops the daemons (state and logs stay)
#
# Env: SYMPSCALE_SLURM_DIR (state, spool, logs, config; default /tmp/sympscale-slurm),
#      SYMPSCALE_SLURM_PARTITION (default cpu).
# No cgroups (proctrack/linuxproc, task/none), no accounting (sacct does not work: submitit falls back to
# its result files), the daemons run as root. JobRequeue=0, as at many sites: a job is requeueable only if it
# asks (sbatch --requeue; the slurm_gpu preset does). KillWait=5: a requeued job is killed 5 s after SIGTERM.
set -euo pipefail

DIR="${SYMPSCALE_SLURM_DIR:-/tmp/sympscale-slurm}"
PARTITION="${SYMPSCALE_SLURM_PARTITION:-cpu}"
CONF="$DIR/slurm.conf"
log() { echo "start_cluster: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root (it installs packages and starts the daemons as root)"; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
    ! command -v munged >/dev/null; then
    log "installing slurmctld slurmd slurm-client munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
mkdir -p "$DIR"/{state,spool,log,run}

# --- munge: one key, one daemon (as the munge user, which owns the key) -------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    install -d -m 0700 -o munge -g munge /etc/munge
    if command -v mungekey >/dev/null; then
        mungekey --create --force --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
install -d -m 0755 -o munge -g munge /run/munge
install -d -m 0700 -o munge -g munge /var/lib/munge /var/log/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    if [ -s /run/munge/munged.pid ]; then kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
    runuser -u munge -- /usr/sbin/munged --force </dev/null >>"$DIR/log/munged.out" 2>&1
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    munge -n | unmunge >/dev/null || { log "munged does not answer; see /var/log/munge/munged.log"; exit 1; }
fi

# --- slurm.conf: this host, its real CPU layout and memory (slurmd -C), one partition ------------------------
NODE="$(hostname -s)"
HW="$(slurmd -C | head -n 1)"
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$HW"; }
NODE_HW="CPUs=$(field CPUs) Boards=$(field Boards) SocketsPerBoard=$(field SocketsPerBoard)"
NODE_HW+=" CoresPerSocket=$(field CoresPerSocket) ThreadsPerCore=$(field ThreadsPerCore) RealMemory=$(field RealMemory)"
cat >"$CONF.new" <<CONF
# written by tests/slurm/start_cluster.sh: a single-node test cluster, no cgroups, no accounting
ClusterName=sympscale
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
JobRequeue=0
KillWait=5
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE $NODE_HW State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
restart=0
if ! cmp -s "$CONF.new" "$CONF"; then
    mv "$CONF.new" "$CONF"
    restart=1
else
    rm -f "$CONF.new"
fi
# client commands read /etc/slurm/slurm.conf unless SLURM_CONF says otherwise: point it here unless it is
# someone else's file
if [ ! -e /etc/slurm/slurm.conf ] || [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
    mkdir -p /etc/slurm
    ln -sfn "$CONF" /etc/slurm/slurm.conf
fi
export SLURM_CONF="$CONF"

# --- the daemons ---------------------------------------------------------------------------------------------
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() {
    if alive "$1"; then
        local pid
        pid="$(cat "$1")"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
}
if [ "$restart" = 1 ]; then
    stop "$DIR/run/slurmd.pid"
    stop "$DIR/run/slurmctld.pid"
fi
if ! alive "$DIR/run/slurmctld.pid"; then
    log "starting slurmctld"
    /usr/sbin/slurmctld -f "$CONF" </dev/null >>"$DIR/log/slurmctld.out" 2>&1
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.3; done
scontrol ping | grep -q UP || { log "slurmctld does not answer; see $DIR/log/slurmctld.log"; exit 1; }
if ! alive "$DIR/run/slurmd.pid"; then
    log "starting slurmd"
    /usr/sbin/slurmd -f "$CONF" </dev/null >>"$DIR/log/slurmd.out" 2>&1
fi

# --- wait for the node to be usable --------------------------------------------------------------------------
state=""
for _ in $(seq 120); do
    state="$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1)"
    case "$state" in
    idle* | mixed* | allocated* | completing*) break ;;
    down* | drain* | fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
done
case "$state" in
idle* | mixed* | allocated* | completing*) ;;
*)
    log "node $NODE is '$state' ($(sinfo -h -R 2>/dev/null)); see $DIR/log/slurmd.log and $DIR/log/slurmctld.log"
    exit 1
    ;;
esac
log "cluster up: $(sinfo -V), partition $PARTITION, node $NODE ($NODE_HW), state $state"
log "config $CONF; logs $DIR/log/{slurmctld,slurmd}.log, /var/log/munge/munged.log"
echo "export SLURM_CONF=$CONF"
