#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the live SLURM test (tests/test_slurm_live.py)
# and for trying profiles/slurm by hand. Debian/Ubuntu packages (SLURM 22.05 on Debian 12), run
# as root, no systemd needed: every daemon is started by hand and its PID recorded.
#
#   scripts/local_slurm.sh install            apt-get the packages that are missing
#   scripts/local_slurm.sh start  [STATE_DIR] write /etc/slurm/slurm.conf, start munged,
#                                             slurmctld, slurmd; wait until the node is idle
#   scripts/local_slurm.sh stop   [STATE_DIR] cancel our jobs, stop the daemons we started (by PID)
#   scripts/local_slurm.sh status [STATE_DIR] the recorded daemons, alive or not, and sinfo
#
# STATE_DIR (default $LRSTUDY_SLURM_STATE or /run/lrstudy-slurm) holds the PID files, the daemons'
# logs and their spool/state directories; `start` wipes the cluster state, so each start is a fresh
# cluster (job ids from 1) and a start after a failed start works.
#
# The config has to be /etc/slurm/slurm.conf: the executor plugin's job step strips every SLURM_*
# variable (SLURM_CONF included) before it calls srun inside the job. A slurm.conf this script did
# not write is never overwritten. The cluster runs without accounting (no slurmdbd): Snakemake's
# SLURM executor must use `--slurm-status-command squeue`, which is reliable because MinJobAge=3600
# keeps finished jobs visible to squeue for an hour (the plugin wants MinJobAge >= 3 x
# --slurm-init-seconds-before-status-checks; the tests read every job's state back afterwards).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

PACKAGES=(slurmctld slurmd slurm-client munge)
CONF=/etc/slurm/slurm.conf
MARKER="# Written by lrstudy scripts/local_slurm.sh"
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
START_TIMEOUT=${LRSTUDY_SLURM_START_TIMEOUT:-90}
STOP_TIMEOUT=20
# Daemons in start order; stopped in reverse.
DAEMONS=(munged slurmctld slurmd)

die() {
    echo "local_slurm.sh: error: $*" >&2
    exit 1
}

say() {
    echo "local_slurm.sh: $*" >&2
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "$1 needs root (it writes $CONF and starts system daemons)"
}

state_dir() {
    STATE=${1:-${LRSTUDY_SLURM_STATE:-/run/lrstudy-slurm}}
    case $STATE in
        /*) ;;
        *) STATE=$(pwd)/$STATE ;;
    esac
}

# --- install ---------------------------------------------------------------------------------

cmd_install() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "already installed: ${PACKAGES[*]}"
        return
    fi
    need_root install
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} with this system's package manager"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

# --- PIDs ------------------------------------------------------------------------------------

pid_of() { # the recorded PID of daemon $1, or nothing
    local file=$STATE/$1.pid
    [[ -s $file ]] && cat "$file" || true
}

# True when daemon $1's recorded PID is alive (not a zombie waiting to be reaped) and still that
# program (not a reused PID).
running() {
    local pid comm stat
    pid=$(pid_of "$1")
    [[ -n $pid ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ $comm == "$1" && ${stat%% *} != Z ]]
}

# Start daemon $1 (the command line that follows) in the background, in a session of its own, its
# output in STATE/$1.out; record its PID and wait until that PID runs the daemon's program (until
# then /proc/PID/comm still names the shell, setsid or setpriv that execs into it).
launch() {
    local name=$1 pid waited=0
    shift
    setsid "$@" </dev/null >"$STATE/$name.out" 2>&1 &
    pid=$!
    echo "$pid" >"$STATE/$name.pid"
    until running "$name"; do
        kill -0 "$pid" 2>/dev/null || fail_start "$name exited at once"
        ((waited < 100)) || fail_start "$name (PID $pid) did not start within 10 s"
        sleep 0.1
        waited=$((waited + 1))
    done
}

stop_daemon() {
    local name=$1 pid waited=0
    pid=$(pid_of "$name")
    if [[ -z $pid ]]; then
        return
    fi
    if running "$name"; then
        kill -TERM "$pid" 2>/dev/null || true
        while running "$name" && ((waited < STOP_TIMEOUT * 10)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if running "$name"; then
            say "$name (PID $pid) ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            waited=0
            while running "$name" && ((waited < 50)); do
                sleep 0.1
                waited=$((waited + 1))
            done
            running "$name" && die "$name (PID $pid) survived SIGKILL"
        fi
        say "stopped $name (PID $pid)"
    fi
    rm -f "$STATE/$name.pid"
}

# Cancel every job of this cluster (it is ours: we wrote its config) so that no slurmstepd or job
# process outlives the daemons; wait a little for them to go.
cancel_jobs() {
    running slurmctld || return 0
    local jobs waited=0
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    [[ -n $jobs ]] || return 0
    say "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    while [[ -n $(squeue -h -t running,completing -o %i 2>/dev/null || true) ]] && ((waited < 100)); do
        sleep 0.2
        waited=$((waited + 1))
    done
}

# --- start -----------------------------------------------------------------------------------

print_logs() {
    local file
    for file in "$STATE"/*.log "$STATE"/*.out /var/log/munge/munged.log; do
        [[ -s $file ]] || continue
        echo "----- $file (last 40 lines) -----" >&2
        tail -n 40 "$file" >&2
    done
}

fail_start() {
    say "start failed: $*"
    print_logs
    cmd_stop "$STATE" || true
    exit 1
}

write_conf() {
    local node=$1 cpus memory_mb real_memory
    cpus=$(nproc)
    memory_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
    # Headroom for the OS and for slurmd's own reading of the memory (a node that claims more
    # than slurmd finds is drained): 10%, at least 512 MB.
    real_memory=$((memory_mb - (memory_mb / 10 > 512 ? memory_mb / 10 : 512)))
    if [[ -e $CONF ]] && ! head -n 1 "$CONF" | grep -qF "$MARKER"; then
        die "$CONF exists and was not written by this script; move it away to run the local cluster"
    fi
    mkdir -p "$(dirname "$CONF")"
    cat >"$CONF" <<EOF
$MARKER; rewritten on every start.
ClusterName=lrstudy
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
SwitchType=switch/none
# No cgroups needed: processes tracked by parent PID, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# No accounting database: status queries go through squeue, which keeps finished jobs for
# MinJobAge seconds (>= 3 x the executor's --slurm-init-seconds-before-status-checks).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
ReturnToService=2
KillWait=5
MailProg=/bin/true
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_memory State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    say "wrote $CONF: node $node, $cpus CPUs, ${real_memory} MB"
}

start_munged() {
    if [[ ! -s $MUNGE_KEY ]]; then
        say "creating $MUNGE_KEY"
        mkdir -p "$(dirname "$MUNGE_KEY")"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY" "$(dirname "$MUNGE_KEY")"
    chmod 0400 "$MUNGE_KEY"
    mkdir -p "$MUNGE_RUN" /var/log/munge /var/lib/munge
    chown munge:munge "$MUNGE_RUN" /var/log/munge /var/lib/munge
    chmod 0755 "$MUNGE_RUN"
    if [[ -S $MUNGE_RUN/munge.socket.2 ]] && munge -n </dev/null | unmunge >/dev/null 2>&1; then
        # Another munged (the system's) already answers: use it, it is not ours to stop.
        say "a munged not started by this script is running; using it"
        return
    fi
    rm -f "$MUNGE_RUN/munge.socket.2" "$MUNGE_RUN/munge.socket.2.lock" "$MUNGE_RUN/munged.pid"
    # setsid and setpriv exec, so the recorded PID is munged's own; -F keeps it in the foreground.
    launch munged setpriv --reuid=munge --regid=munge --init-groups munged -F
    local waited=0
    until munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; do
        running munged || fail_start "munged exited"
        ((waited < 100)) || fail_start "munged did not answer within 10 s"
        sleep 0.1
        waited=$((waited + 1))
    done
    say "munged running (PID $(pid_of munged))"
}

cmd_start() {
    need_root start
    state_dir "${1:-}"
    for program in munged slurmctld slurmd sinfo squeue setpriv; do
        command -v "$program" >/dev/null || die "$program not found: run 'scripts/local_slurm.sh install' first"
    done
    # A start after a (failed) start: stop what we started before, then begin afresh.
    if [[ -d $STATE ]]; then
        cmd_stop "$STATE"
    fi
    local node
    node=$(hostname -s)
    for port in 6817 6818; do
        if (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
            die "port $port is in use: a SLURM daemon not started by this script is running (stop it first)"
        fi
    done
    rm -rf "$STATE/slurmctld" "$STATE/slurmd"
    mkdir -p "$STATE/slurmctld" "$STATE/slurmd"
    rm -f "$STATE"/*.log "$STATE"/*.out
    write_conf "$node"
    start_munged

    launch slurmctld slurmctld -D
    local waited=0
    until scontrol ping 2>/dev/null | grep -q "is UP"; do
        running slurmctld || fail_start "slurmctld exited"
        ((waited < START_TIMEOUT * 5)) || fail_start "slurmctld did not answer within ${START_TIMEOUT}s"
        sleep 0.2
        waited=$((waited + 1))
    done
    say "slurmctld running (PID $(pid_of slurmctld))"

    launch slurmd slurmd -D -N "$node"
    waited=0
    local state=""
    while true; do
        state=$(sinfo -h -N -n "$node" -o %T 2>/dev/null | head -n 1 || true)
        [[ $state == idle ]] && break
        running slurmctld || fail_start "slurmctld exited"
        running slurmd || fail_start "slurmd exited"
        ((waited < START_TIMEOUT * 5)) || fail_start "node $node is '${state:-unknown}', not idle, after ${START_TIMEOUT}s"
        sleep 0.2
        waited=$((waited + 1))
    done
    say "slurmd running (PID $(pid_of slurmd)); node $node idle"
}

# --- stop / status ---------------------------------------------------------------------------

cmd_stop() {
    state_dir "${1:-}"
    [[ -d $STATE ]] || return 0
    cancel_jobs
    local index
    for ((index = ${#DAEMONS[@]} - 1; index >= 0; index--)); do
        stop_daemon "${DAEMONS[index]}"
    done
}

cmd_status() {
    state_dir "${1:-}"
    local name alive=0
    for name in "${DAEMONS[@]}"; do
        if running "$name"; then
            echo "$name: running (PID $(pid_of "$name"))"
            alive=$((alive + 1))
        else
            echo "$name: not running"
        fi
    done
    if running slurmctld; then
        sinfo
    fi
    [[ $alive -eq ${#DAEMONS[@]} ]]
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start "${2:-}" ;;
    stop) cmd_stop "${2:-}" ;;
    status) cmd_status "${2:-}" ;;
    *)
        echo "usage: $0 install | start [STATE_DIR] | stop [STATE_DIR] | status [STATE_DIR]" >&2
        exit 2
        ;;
esac
