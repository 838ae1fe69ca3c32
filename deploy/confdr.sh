#!/usr/bin/env bash
# Starts, stops and restarts the confdr daemons of this machine, and restarts
# an active/standby pair without a gap in service.
#
#   deploy/confdr.sh [OPTIONS] start|stop|restart|status [DAEMON...]
#   deploy/confdr.sh [OPTIONS] rolling-restart [DAEMON...]
#
# DAEMON: css, rms, pms (default: all three). start, stop and restart act on
# every instance of each DAEMON found here (below), one after another; status
# lists them with their process and, from ZooKeeper (confdrctl status
# --json), their role, epoch and readiness.
#
# rolling-restart restarts each platform's instances of each DAEMON in turn
# (css, then rms, then pms when all are named), one line per step:
#   1. each standby instance is restarted, and waited for until it is up,
#      connected and standby again ("ready" in its liveness node, which is
#      also when systemd gets READY=1);
#   2. hand-over: the active instance is stopped (SIGTERM: it steps down
#      first, and a standby takes over at once); the new active one is waited
#      for in `confdrctl status --json` (active, ready: taking all its work);
#   3. the old active instance is started again and waited for as in 1.
# Requests that arrive meanwhile wait in their queues (durable) and are
# taken by the new active instance. It refuses to start when the platform has
# no active instance of DAEMON or only one instance is managed here.
#
# Options:
#   --manager systemd|sandbox  how the daemons run (default $CONFDR_MANAGER,
#                      else systemd when systemd runs). systemd: the instances
#                      are the files $CONFDR_ETC/DAEMON-INSTANCE.conf (default
#                      /etc/confdr; unit confdr-DAEMON@INSTANCE), driven with
#                      systemctl. sandbox: the daemons of the sandbox in
#                      $CONFDR_RUN_DIR (deploy/sandbox.sh; p1-css, p1-css-2, ...),
#                      under confdr-supervise, as tests and drills run them.
#   --platform P       only P's instances (default: every platform's)
#   --timeout S        bound of each wait (default 60)
#   -h, --help         this text
# confdrctl is found as for operators (docs/operations.md): $CONFDR_ZK,
# $CONFDR_ZK_CHROOT, ... ($CONFDR_CTL: its path, default confdrctl on
# PATH); the sandbox manager uses the sandbox's. Each instance's
# [daemon] instance must be set in its file (its name in ZooKeeper).
# Exit 0 done, 1 failed (a wait ran out, an instance did not start), 64 bad usage.
set -uo pipefail

self_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=confdr
say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$PROG" "$*" >&2; exit 64; }

manager=${CONFDR_MANAGER:-} platform= timeout=60 cmd= daemons=()
while [ $# -gt 0 ]; do
	case $1 in
	--manager) manager=${2:-}; shift ;;
	--platform) platform=${2:-}; shift ;;
	--timeout) timeout=${2:-}; shift ;;
	-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	start | stop | restart | status | rolling-restart)
		[ -z "$cmd" ] || usage_error "one command at a time ($cmd, $1)"
		cmd=$1 ;;
	css | rms | pms) daemons+=("$1") ;;
	*) usage_error "unknown argument $1" ;;
	esac
	shift
done
[ -n "$cmd" ] || usage_error "a command: start, stop, restart, status or rolling-restart"
[ ${#daemons[@]} -gt 0 ] || daemons=(css rms pms)
case $timeout in '' | *[!0-9]*) usage_error "--timeout wants seconds" ;; esac
if [ -z "$manager" ]; then
	[ -d /run/systemd/system ] || usage_error "systemd does not run here: give --manager sandbox (or CONFDR_MANAGER)"
	manager=systemd
fi

# conf_get FILE SECTION KEY: a value of an INI file (docs/configuration.md).
conf_get() {
	awk -v s="[$2]" -v k="$3" '
		/^[ \t]*[#;]/ { next }
		/^[ \t]*\[/ { gsub(/[ \t]/, ""); in_s = ($0 == s); next }
		in_s { i = index($0, "="); if (!i) next
			key = substr($0, 1, i - 1); gsub(/[ \t]/, "", key)
			if (key != k) next
			v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v); print v; exit }' "$1"
}

# ---------------------------------------------------------------- managers
# Each manager gives: m_names DAEMON (the instances here, one name a line),
# m_conf NAME (its config file), m_start NAME, m_stop NAME, m_proc NAME
# ("running pid N" or "stopped"), ctl ARGS (confdrctl).

case $manager in
systemd)
	ETC=${CONFDR_ETC:-/etc/confdr}
	command -v systemctl >/dev/null || die "systemctl is not here"
	m_names() {
		local f
		for f in "$ETC/$1"-*.conf; do
			[ -f "$f" ] || continue
			f=${f##*/}
			f=${f%.conf}
			echo "$1@${f#"$1"-}"
		done
	}
	m_conf() { echo "$ETC/${1%%@*}-${1#*@}.conf"; }
	m_unit() { echo "confdr-$1.service"; }
	# systemctl start returns once the daemon sent READY=1 (Type=notify)
	m_start() { systemctl start "$(m_unit "$1")"; }
	m_stop() { systemctl stop "$(m_unit "$1")"; }
	m_proc() {
		local p
		p=$(systemctl show -p MainPID --value "$(m_unit "$1")" 2>/dev/null)
		if [ -n "$p" ] && [ "$p" != 0 ]; then echo "running pid $p ($(m_unit "$1"))"; else echo "stopped ($(m_unit "$1"))"; fi
	}
	ctl() { timeout 60 "${CONFDR_CTL:-confdrctl}" "$@"; }
	;;
sandbox)
	# shellcheck source=lib.sh
	. "$self_dir/lib.sh"
	m_names() {
		local p
		for p in p1 p2; do dnames "$p" "$1"; done
	}
	m_conf() { dconf_of "$1"; }
	# started, then waited for until ready, as systemd waits for READY=1
	m_start() {
		running "$1" && return 0
		spawn_daemon "$1" "$(daemon_of "$1")" "$(dconf_of "$1")"
		running "$1" && wait_ready "$(inst_of "$1")" "" any
	}
	m_stop() { stop_pid "$1" 20; }
	m_proc() {
		local p
		if p=$(daemon_pid "$1"); then echo "running pid $p (supervisor $(pid_of "$1"))"; else echo stopped; fi
	}
	;;
*) usage_error "--manager systemd or sandbox, not '$manager'" ;;
esac

# names DAEMON: the instances of DAEMON here (of --platform only).
names() {
	local n f
	for n in $(m_names "$1"); do
		f=$(m_conf "$n")
		[ -f "$f" ] || continue
		[ -z "$platform" ] || [ "$(conf_get "$f" daemon platform)" = "$platform" ] || continue
		echo "$n"
	done
}
inst_of() { conf_get "$(m_conf "$1")" daemon instance; }
plat_of() { conf_get "$(m_conf "$1")" daemon platform; }

# live: the daemons' liveness nodes (confdrctl status --json .daemons), or [].
live() { ctl status --json 2>/dev/null | jq -c '.daemons // []' 2>/dev/null || echo '[]'; }
# live_of INSTANCE: "role epoch ready pid" of INSTANCE in ZooKeeper, or nothing.
live_of() {
	live | jq -r --arg i "$1" '.[] | select(.instance == $i) | "\(.role) \(.epoch) \(.ready // false) \(.pid)"' | head -n 1
}
# active_of DAEMON PLATFORM: "instance epoch pid" of its active, ready instance.
active_of() {
	live | jq -r --arg d "$1" --arg p "$2" '[.[] | select(.daemon == $d and .platform == $p and .role == "active" and (.ready // false))] |
		if length == 1 then "\(.[0].instance) \(.[0].epoch) \(.[0].pid)" else empty end'
}

now_ms() { date +%s%3N; }
secs_since() { local d=$(($(now_ms) - $1)); printf '%d.%01d s' $((d / 1000)) $((d % 1000 / 100)); }

# wait_ready INSTANCE OLD_PID [ROLE]: until INSTANCE is live again in another
# process than OLD_PID, ready, and in ROLE (default standby; any: either) (at
# most --timeout).
wait_ready() {
	local end=$((SECONDS + timeout)) want=${3:-standby} role epoch ready pid
	while [ $SECONDS -lt $end ]; do
		read -r role epoch ready pid <<<"$(live_of "$1")"
		if [ "${ready:-}" = true ] && [ "${pid:-}" != "$2" ] && { [ "$want" = any ] || [ "$role" = "$want" ]; }; then
			return 0
		fi
		sleep 0.2
	done
	warn "$1 not up, connected and ${want/any/ready} within $timeout s (last: ${role:-not live}${ready:+, ready $ready})"
	return 1
}
# wait_active DAEMON PLATFORM OLD_INSTANCE: until another instance is active
# and ready; prints "instance epoch".
wait_active() {
	local end=$((SECONDS + timeout)) a
	while [ $SECONDS -lt $end ]; do
		a=$(active_of "$1" "$2")
		if [ -n "$a" ] && [ "${a%% *}" != "$3" ]; then echo "${a% *}"; return 0; fi
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------- commands

each() {
	local fn=$1 d n rc=0 any=0
	for d in "${daemons[@]}"; do
		for n in $(names "$d"); do
			any=1
			"$fn" "$n" || rc=1
		done
	done
	[ $any = 1 ] || warn "no instance of ${daemons[*]}${platform:+ of $platform} here"
	return $rc
}
do_start() {
	local t0
	t0=$(now_ms)
	m_start "$1" || { warn "$1 did not start"; return 1; }
	say "$1 started ($(m_proc "$1")) in $(secs_since "$t0")"
}
do_stop() {
	local t0
	t0=$(now_ms)
	m_stop "$1" || { warn "$1 did not stop"; return 1; }
	say "$1 stopped in $(secs_since "$t0")"
}
do_restart() { do_stop "$1" && do_start "$1"; }
do_status() {
	local inst l role epoch ready pid
	inst=$(inst_of "$1")
	l=$(live_of "$inst")
	if [ -n "$l" ]; then
		read -r role epoch ready pid <<<"$l"
		printf '%-14s %-10s %-12s epoch %-6s ready %-5s %s\n' "$1" "$(plat_of "$1")" "$role" "$epoch" "$ready" "$(m_proc "$1")"
	else
		printf '%-14s %-10s %-12s %-25s %s\n' "$1" "$(plat_of "$1")" "not live" "" "$(m_proc "$1")"
	fi
}

# rolling DAEMON PLATFORM: the rolling restart of PLATFORM's instances of DAEMON.
rolling() {
	local d=$1 p=$2 n inst act= act_name= standbys=() a epoch pid steps k=0 t0 t_all l
	a=$(active_of "$d" "$p")
	[ -n "$a" ] || { warn "$d of $p: no active, ready instance in ZooKeeper: not restarting"; return 1; }
	read -r act epoch pid <<<"$a"
	for n in $(names "$d"); do
		[ "$(plat_of "$n")" = "$p" ] || continue
		inst=$(inst_of "$n")
		[ -n "$inst" ] || { warn "$n: [daemon] instance is not set in $(m_conf "$n")"; return 1; }
		if [ "$inst" = "$act" ]; then act_name=$n; else standbys+=("$n"); fi
	done
	[ -n "$act_name" ] || { warn "$d of $p: the active instance $act is not one of this machine's"; return 1; }
	[ ${#standbys[@]} -gt 0 ] || { warn "$d of $p: no standby instance here: a restart would leave $p without $d"; return 1; }
	steps=$((${#standbys[@]} + 2))
	t_all=$(now_ms)
	say "rolling restart of $d on $p: active $act_name ($act, epoch $epoch), standby ${standbys[*]}"
	for n in "${standbys[@]}"; do
		k=$((k + 1))
		inst=$(inst_of "$n")
		l=$(live_of "$inst")
		say "$k/$steps restarting the standby $n ($inst)"
		t0=$(now_ms)
		if ! do_stop "$n" >/dev/null || ! m_start "$n"; then warn "$n did not start again"; return 1; fi
		wait_ready "$inst" "$(awk '{ print $4 }' <<<"$l")" || return 1
		say "    $n up, connected and standby again in $(secs_since "$t0")"
	done
	k=$((k + 1))
	say "$k/$steps hand-over: stopping the active $act_name ($act, epoch $epoch)"
	t0=$(now_ms)
	m_stop "$act_name" || { warn "$act_name did not stop"; return 1; }
	say "    stopped in $(secs_since "$t0")"
	a=$(wait_active "$d" "$p" "$act") || { warn "no other $d of $p active within $timeout s"; return 1; }
	say "    $d of $p active: ${a% *} (epoch ${a#* }), $(secs_since "$t0") after the stop began"
	k=$((k + 1))
	say "$k/$steps starting the old active $act_name ($act) again"
	t0=$(now_ms)
	m_start "$act_name" || { warn "$act_name did not start again"; return 1; }
	wait_ready "$act" "$pid" || return 1
	say "    $act_name up, connected and standby in $(secs_since "$t0")"
	say "rolling restart of $d on $p done in $(secs_since "$t_all"); active now ${a% *}"
}

case $cmd in
start) each do_start ;;
stop) each do_stop ;;
restart) each do_restart ;;
status)
	command -v jq >/dev/null || die "jq is needed"
	each do_status ;;
rolling-restart)
	command -v jq >/dev/null || die "jq is needed"
	rc=0
	for d in "${daemons[@]}"; do
		plats=$(for n in $(names "$d"); do plat_of "$n"; done | sort -u)
		[ -n "$plats" ] || { warn "no instance of $d${platform:+ of $platform} here"; rc=1; continue; }
		for p in $plats; do rolling "$d" "$p" || { rc=1; break 2; }; done
	done
	exit $rc ;;
esac
