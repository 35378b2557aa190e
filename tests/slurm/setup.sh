#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster (no accounting, no systemd) for tests/test_slurm.py.
#
#   tests/slurm/setup.sh [STATE_DIR]      (default: $DMBN_SLURM_STATE, else /tmp/dmbn-slurm)
#
# Needs root on a Debian-like machine. Installs slurm-wlm, slurmctld, slurmd, slurm-client and
# munge with apt-get when they are missing, writes STATE_DIR/slurm.conf, starts munged (unless a
# working one is already there), slurmctld and slurmd with their PID files and logs in STATE_DIR,
# and waits until the node is idle. /etc/slurm/slurm.conf becomes a link to STATE_DIR/slurm.conf
# (the plugin's job steps ignore SLURM_CONF), so sinfo, sbatch, srun, ... need no settings; setup
# refuses to run where /etc/slurm/slurm.conf is anything else.
#
# Safe to re-run: daemons whose PID file names a live process are left alone.
# tests/slurm/teardown.sh STATE_DIR stops exactly the daemons this script started.
set -euo pipefail

STATE=${1:-${DMBN_SLURM_STATE:-/tmp/dmbn-slurm}}
PARTITION=${DMBN_SLURM_PARTITION:-debug}
CLUSTER=${DMBN_SLURM_CLUSTER:-dmbntest}
CONF="$STATE/slurm.conf"
export SLURM_CONF="$CONF"

log() { echo "[slurm setup] $*"; }
die() { echo "[slurm setup] error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
command -v apt-get >/dev/null || die "needs apt-get (a Debian-like machine)"

alive() {  # alive PIDFILE: the PID file names a running process
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# -- packages -------------------------------------------------------------------------------------
missing=()
for pkg in slurm-wlm slurmctld slurmd slurm-client munge; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$STATE.apt.log" 2>&1; }
  mkdir -p "$(dirname "$STATE")"
  install || { apt-get update -qq >>"$STATE.apt.log" 2>&1 && install; } \
    || die "apt-get install failed (see $STATE.apt.log)"
fi

# -- the host name must resolve -------------------------------------------------------------------
HOST=$(hostname -s)
if ! getent hosts "$HOST" >/dev/null; then
  log "adding $HOST to /etc/hosts"
  echo "127.0.0.1 $HOST" >>/etc/hosts
fi

# -- state directory and slurm.conf ---------------------------------------------------------------
mkdir -p "$STATE"/{ctld,spool,munge}
chown munge:munge "$STATE/munge"
chmod 0700 "$STATE/munge"

# slurmd -C prints "NodeName=... CPUs=... RealMemory=..." for this machine; keep ~90 % of the memory
# for jobs. Rewritten unless our slurmctld already runs with it.
if ! alive "$STATE/slurmctld.pid"; then
  node=$(slurmd -C | head -n1)
  memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  node=$(sed "s/RealMemory=[0-9]*/RealMemory=$((memory * 9 / 10))/; s/NodeName=[^ ]*/NodeName=$HOST/" <<<"$node")
  cat >"$CONF" <<EOF
# Written by tests/slurm/setup.sh: a single-node cluster in a container, without accounting.
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# no systemd, no cgroups in a container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no slurmdbd: sacct is unavailable, the plugin must use squeue (slurm-status-command: squeue)
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
# finished jobs stay visible to squeue/scontrol for 10 minutes
MinJobAge=600
# jobs are requeueable only when submitted with --requeue (profiles/slurm: slurm-requeue), as on
# clusters that default to it: the requeue test then depends on the profile, not on this default
JobRequeue=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=60
$node
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
fi

# Client commands read /etc/slurm/slurm.conf unless SLURM_CONF says otherwise, and the SLURM plugin's
# job steps drop SLURM_CONF from their environment before calling srun: the cluster's configuration
# must be the system one. It is a link to ours; a slurm.conf that is not is never replaced.
SYSCONF=/etc/slurm/slurm.conf
if [ "$(readlink "$SYSCONF" 2>/dev/null)" != "$CONF" ]; then
  if [ -e "$SYSCONF" ] || [ -L "$SYSCONF" ]; then
    die "$SYSCONF exists and is not a link to $CONF: a real SLURM installation? Not touching it."
  fi
  mkdir -p /etc/slurm
  ln -s "$CONF" "$SYSCONF"
  log "linked $SYSCONF -> $CONF"
fi

# -- munge ----------------------------------------------------------------------------------------
if alive "$STATE/munge/munged.pid"; then
  log "munged already running (PID $(cat "$STATE/munge/munged.pid"))"
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "a munged not started here answers; using it (teardown leaves it alone)"
else
  mkdir -p /run/munge
  chown munge:munge /run/munge
  chmod 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/munge/munged.pid" \
    --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n | unmunge >/dev/null || die "munged does not answer (see $STATE/munge/munged.log)"
  log "munged started (PID $(cat "$STATE/munge/munged.pid"))"
fi

# -- slurmctld, slurmd ----------------------------------------------------------------------------
if alive "$STATE/slurmctld.pid"; then
  log "slurmctld already running (PID $(cat "$STATE/slurmctld.pid"))"
elif scontrol ping 2>/dev/null | grep -q UP; then
  die "another slurmctld already answers on $HOST (not ours: no live $STATE/slurmctld.pid)"
else
  # -c: start from a clean state (no jobs left over from an earlier run)
  /usr/sbin/slurmctld -c -f "$CONF"
  for _ in $(seq 100); do
    scontrol ping 2>/dev/null | grep -q UP && break
    sleep 0.1
  done
  alive "$STATE/slurmctld.pid" && scontrol ping | grep -q UP \
    || die "slurmctld does not answer (see $STATE/slurmctld.log)"
  log "slurmctld started (PID $(cat "$STATE/slurmctld.pid"))"
fi

if alive "$STATE/slurmd.pid"; then
  log "slurmd already running (PID $(cat "$STATE/slurmd.pid"))"
else
  /usr/sbin/slurmd -f "$CONF"
  for _ in $(seq 50); do
    alive "$STATE/slurmd.pid" && break
    sleep 0.1
  done
  alive "$STATE/slurmd.pid" || die "slurmd did not start (see $STATE/slurmd.log)"
  log "slurmd started (PID $(cat "$STATE/slurmd.pid"))"
fi

for _ in $(seq 300); do
  state=$(sinfo -h -o %T 2>/dev/null | head -n1)
  case "$state" in idle | mixed | allocated) break ;; esac
  sleep 0.2
done
case "$state" in
  idle | mixed | allocated) ;;
  *) die "node is '$state', not idle (see $STATE/slurmctld.log, $STATE/slurmd.log)" ;;
esac
log "ready: partition $PARTITION, node $HOST $state ($SYSCONF -> $CONF)"
