#!/usr/bin/env bash
# Stop the daemons tests/slurm/setup.sh started, by the PIDs in their PID files (never by name).
#
#   tests/slurm/teardown.sh [STATE_DIR]   (default: $DMBN_SLURM_STATE, else /tmp/dmbn-slurm)
#
# Safe to re-run: a missing PID file or a process that is already gone is skipped. A munged that
# setup.sh found already running (no PID file in STATE_DIR/munge) is left alone. Pass --purge as
# the second argument to delete STATE_DIR afterwards.
# Also removes the /etc/slurm/slurm.conf link setup.sh made.
set -uo pipefail

STATE=${1:-${DMBN_SLURM_STATE:-/tmp/dmbn-slurm}}
PURGE=${2:-}

log() { echo "[slurm teardown] $*"; }

stop() {  # stop NAME PIDFILE EXE: SIGTERM, then SIGKILL after 10 s
  local name=$1 pidfile=$2 exe pid
  exe=$(readlink -f "$3")  # Debian's /usr/sbin/slurmd is a link to slurmd-wlm
  [ -s "$pidfile" ] || { log "$name: no PID file"; return 0; }
  pid=$(cat "$pidfile")
  if ! kill -0 "$pid" 2>/dev/null; then
    log "$name: PID $pid already gone"
    rm -f "$pidfile"
    return 0
  fi
  # a stale PID file may name an unrelated process that reused the PID: check the executable
  if [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" != "$exe" ]; then
    log "$name: PID $pid is $(readlink -f "/proc/$pid/exe" 2>/dev/null || echo '?'), not $exe; left alone"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: PID $pid ignored SIGTERM; SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
  log "$name: stopped PID $pid"
}

# Jobs still queued or running on this cluster (a failed test) are cancelled through SLURM first,
# so that no job step outlives slurmd.
if [ -s "$STATE/slurm.conf" ] && [ -s "$STATE/slurmctld.pid" ] \
   && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
  export SLURM_CONF="$STATE/slurm.conf"
  jobs=$(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling SLURM jobs $jobs"
    scancel $jobs 2>/dev/null
    for _ in $(seq 150); do
      [ -z "$(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

# slurmd first (it runs the jobs' slurmstepd processes, which end with it), then the controller,
# then munge, which both use.
stop slurmd "$STATE/slurmd.pid" /usr/sbin/slurmd
stop slurmctld "$STATE/slurmctld.pid" /usr/sbin/slurmctld
stop munged "$STATE/munge/munged.pid" /usr/sbin/munged

# the /etc/slurm/slurm.conf link setup.sh made (only if it still points into STATE_DIR)
if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$STATE/slurm.conf" ]; then
  rm -f /etc/slurm/slurm.conf
  log "removed the link /etc/slurm/slurm.conf"
fi

if [ "$PURGE" = --purge ]; then
  rm -rf "$STATE"
  log "removed $STATE"
fi
exit 0
