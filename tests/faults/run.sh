#!/usr/bin/env bash
# The fault suite (docs/reliability.md, "The fault suite"): faults injected
# into a multi-host sandbox with two instances of every daemon per platform,
# while the CM creates conferences on p1 and ends the previous scenario's
# ones. Afterwards, from the client's history (cmsim --json: every request,
# its first answer or none, how many answers) and from the MCUs' own state
# files, each scenario counts:
#   lost          ACKed creates not running on any MCU
#   moved         conferences running before that run on another MCU after
#                 (a blip or a takeover of a daemon moves nothing)
#   vanished      conferences running before, not ended, running nowhere
#   doubled       E164s on two MCUs at once
#   unanswered    requests without an answer
#   differently   requests answered again with another answer
#   nack_running  refused creates that run anyway
#   end_running   ACKed ends whose conference still runs
#   two_actives   instances of one daemon of p1 active at the same time
#                 (from their logs: "role: active" to "role: standby", to
#                 the start of a frozen loop, or to the next start)
#   redis_mysql   p1's open records in Redis against confdr_p1 in MariaDB
#   doubled_any   E164s on two MCUs in any of the samples taken every second
#                 from the injection to the end
# All must be 0, and no daemon of either platform may crash (die of a
# signal other than KILL or TERM: its supervisor's line in its log); where
# a standby takes over, it must within the ZooKeeper session (6 s) + 3 s
# (by the new leader's clock: wait_takeover). Refusals (NACKs) are answers:
# counted, not failed.
# Every platform must be up and every room normal after the fault, except in
# stop-pms-both, where p1 must be down, its conferences moved to p2, and
# p1's css must have released them before p2 declared p1 down.
#
# Usage: tests/faults/run.sh [--list] [--json FILE] [--keep] [SCENARIO...]
#   SCENARIO  the scenarios to run (default: all, in the order of --list)
# The CM (cmsim) sends a request again, the same, when it has had no answer
# for 30 s (--retry; longer than the slowest answer of any scenario, 24 s in
# zk-down): an answer sent while its reply queue was gone (a broker restart)
# is otherwise lost, and the protocol's remedy is the repeat.
#   --json    the reports as a JSON array to FILE
#   --keep    leave the sandbox up at the end (default: down)
# Environment: CONFDR_PORT_BASE (default 24000) and CONFDR_RUN_DIR (default
# <repo>/run/faults): the sandbox of the suite, brought up (multi-host, two
# instances) and torn down by it; CONFDR_FAULT_CREATES (creates per scenario,
# default 400) at CONFDR_FAULT_RATE per second (default 40);
# CONFDR_FAULT_FP_AT (default 300): the answer at which the instance armed by
# a crash-* scenario kills itself.
# Exit 0 when every scenario passed, 1 when one failed, 64 bad usage.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
export CONFDR_PORT_BASE=${CONFDR_PORT_BASE:-24000}
export CONFDR_RUN_DIR=${CONFDR_RUN_DIR:-$top/run/faults}
export CONFDR_SANDBOX_HOSTS=multi CONFDR_INSTANCES=2
PROG=faults
SAY_T0=$SECONDS
# shellcheck source=../../deploy/lib.sh
. "$top/deploy/lib.sh"
SB=$top/deploy/sandbox.sh
CREATES=${CONFDR_FAULT_CREATES:-400}
RATE=${CONFDR_FAULT_RATE:-40}
SESSION_S=6 # [zookeeper] session_timeout of the sandbox's daemons
FP_AT=${CONFDR_FAULT_FP_AT:-300} # crash-*: the answer at which the armed instance kills itself
DOMAINS=(--domain ud-p1-r1-a --domain ud-p1-r1-b --domain ud-p1-r2-a --domain ud-p1-r2-b)

ALL=(kill-css kill-rms kill-pms stop-css stop-rms stop-pms crash-css-unsent crash-css-unacked crash-rms-unsent crash-rms-unacked kill-mcu-rms broker-restart redis-restart mariadb-restart zk-down zk-expire restore-broker restore-redis restore-mariadb restore-zk stop-pms-both)
# Run only when named (none at the moment).
EXTRA=()
describe() {
	case $1 in
	kill-css) echo "kill -9 p1's active css (its supervisor starts it again; the standby takes over)" ;;
	kill-rms) echo "kill -9 p1's active rms" ;;
	kill-pms) echo "kill -9 p1's active pms (the standby pms keeps beating for p1)" ;;
	stop-css) echo "SIGSTOP p1's active css for 10 s, then SIGCONT (the standby takes over; the woken one does nothing that sticks)" ;;
	stop-rms) echo "SIGSTOP p1's active rms for 10 s, then SIGCONT" ;;
	stop-pms) echo "SIGSTOP p1's active pms for 10 s, then SIGCONT" ;;
	broker-restart) echo "p1's RabbitMQ stopped for 5 s, then started (no room or platform failover)" ;;
	redis-restart) echo "p1's Redis stopped for 3 s, then started (no failover)" ;;
	mariadb-restart) echo "p1's MariaDB stopped for 5 s, then started (history rows wait, each written once)" ;;
	zk-down) echo "all three ZooKeeper members stopped for 15 s, then started (leaders step down, then are elected again)" ;;
	zk-expire) echo "p1 cut from every ZooKeeper member for 10 s (nftables): the sessions of its daemons expire; its pms is still heard on its broker, so nothing is declared" ;;
	crash-css-unsent) echo "p1's active css kills itself (failpoint answer.unsent) at its ${FP_AT}th answer: stored, not sent, not acked (the redelivery must be answered the same)" ;;
	crash-css-unacked) echo "p1's active css kills itself (failpoint answer.unacked) at its ${FP_AT}th answer: stored and sent, not acked (answered again, the same)" ;;
	crash-rms-unsent) echo "p1's active rms kills itself (failpoint answer.unsent) at its ${FP_AT}th answer: made, not sent, not acked" ;;
	crash-rms-unacked) echo "p1's active rms kills itself (failpoint answer.unacked) at its ${FP_AT}th answer: sent, not acked" ;;
	kill-mcu-rms) echo "kill -9 of two MCUs of room p1-r1 (a simulator of their own, started for the scenario), then 0.5 s later of p1's active rms: the new rms, which never heard them, must let them be declared down and their conferences restored" ;;
	restore-redis) echo "p1's Redis stopped, room p1-r2 switched to its backup room p1-r1 meanwhile (its conferences to restore), Redis started 2 s later; then p1-r2 switched back (nothing may run in it after the switch)" ;;
	restore-broker) echo "room p1-r2 switched to its backup room p1-r1 (its conferences to restore), p1's RabbitMQ stopped at once for 5 s; then p1-r2 switched back" ;;
	restore-mariadb) echo "room p1-r2 switched to its backup room p1-r1, p1's MariaDB stopped at once for 5 s; then p1-r2 switched back" ;;
	restore-zk) echo "room p1-r2 switched to its backup room p1-r1, all three ZooKeeper members stopped at once for 10 s; then p1-r2 switched back" ;;
	stop-pms-both) echo "SIGSTOP both pms of p1 for 10 s: p2 declares p1 down and runs its conferences; p1's css, hearing no pms, releases them first" ;;
	*) return 1 ;;
	esac
}

json_out= keep=0 pick=()
while [ $# -gt 0 ]; do
	case $1 in
	--list)
		for s in "${ALL[@]}"; do printf '%-16s %s\n' "$s" "$(describe "$s")"; done
		for s in "${EXTRA[@]+"${EXTRA[@]}"}"; do printf '%-16s %s (only when named)\n' "$s" "$(describe "$s")"; done
		exit 0 ;;
	--json) json_out=${2:?--json wants a file}; shift ;;
	--keep) keep=1 ;;
	-h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "faults: unknown option $1 (see --help)" >&2; exit 64 ;;
	*) describe "$1" >/dev/null || { echo "faults: unknown scenario $1 (see --list)" >&2; exit 64; }; pick+=("$1") ;;
	esac
	shift
done
[ ${#pick[@]} -gt 0 ] || pick=("${ALL[@]}")
case $CREATES$RATE in *[!0-9]*) die "CONFDR_FAULT_CREATES and CONFDR_FAULT_RATE must be whole numbers" ;; esac

WORK=$RUN/faults
mkdir -p "$WORK"
cleanup() {
	[ -n "${LOAD_PIDS:-}" ] && kill $LOAD_PIDS 2>/dev/null
	# a sandbox kept up keeps no failpoint armed
	[ $keep = 1 ] && [ -n "${ARMED:-}" ] && unprepare "$ARMED"
	for n in $(dnames p1 css) $(dnames p1 rms) $(dnames p1 pms); do
		p=$(daemon_pid "$n" 2>/dev/null) && kill -CONT "$p" 2>/dev/null
	done
	if [ $keep = 0 ]; then "$SB" down >"$WORK/down.log" 2>&1 || warn "sandbox.sh down failed (see $WORK/down.log)"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------- readings

# now_ms: the wall clock in ms (the logs' and cmsim's clock).
now_ms() { date +%s%3N; }

# running FILE: what the live simulators of the sandbox run, as
# [{e: E164, m: MCU}], from their state files (run/sims/<room>.json).
running() {
	local f p files=()
	for f in "$RUN"/sims/p[12]-r[12].json "$RUN"/sims/$XSIM.json; do
		[ -s "$f" ] || continue
		p=$(jq -r '.pid // 0' "$f" 2>/dev/null) || continue
		# alive and still a simulator: a killed simulator's pid may be reused
		# by then (kill-mcu-rms kills one; its file would show its
		# conferences running long after)
		kill -0 "$p" 2>/dev/null && grep -qa mcusim "/proc/$p/cmdline" 2>/dev/null && files+=("$f")
	done
	if [ ${#files[@]} = 0 ]; then echo '[]' >"$1"; return; fi
	jq -s '[.[] | .mcus[] | .id as $m | .confs[] | {e: ."e164", m: $m}]' "${files[@]}" >"$1"
}

# active DAEMON [PID]: "instance epoch pid" of p1's active instance of
# DAEMON (other than the process PID: a killed one's /live node stays until
# its session expires).
active() {
	ctl status --json 2>/dev/null | jq -r --arg d "$1" --argjson x "${2:-0}" \
		'[.daemons[] | select(.platform == "p1" and .daemon == $d and .role == "active" and .pid != $x)] |
		 if length == 1 then "\(.[0].instance) \(.[0].epoch) \(.[0].pid) \(.[0].role_since // 0)" else empty end'
}
has_active() { [ -n "$(active "$1")" ]; }
# running_in ROOM: the E164s running on ROOM's simulator (its state file).
running_in() { jq -r '.mcus[].confs[]."e164"' "$RUN/sims/$1.json" 2>/dev/null; }
room_empty() { [ -z "$(running_in "$1")" ]; }
# sandbox_name INSTANCE: the sandbox's name of an instance (p1-css-1 -> p1-css).
sandbox_name() { case $1 in *-1) echo "${1%-1}" ;; *) echo "$1" ;; esac; }

# states_clean: every platform up, every room normal.
states_clean() {
	ctl status --json 2>/dev/null | jq -e '([.platforms[] | select(.state != "up")] | length) == 0 and
		([.rooms[] | select(.state != "normal")] | length) == 0' >/dev/null
}

# day_ms TIMESTAMP: ms of an ISO-8601 log timestamp (UTC), from the epoch.
# two_actives DAEMON FROM_MS TO_MS: "count max_ms" of overlaps between the
# active intervals of p1's instances of DAEMON, from their logs.
two_actives() {
	local d=$1 from=$2 to=$3 n
	for n in $(dnames p1 "$d"); do
		[ -f "$(logfile "$n")" ] || continue
		# Timestamps to ms since the epoch with date, once per line kept.
		grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$(logfile "$n")" |
			awk -v inst="$n" '
			function ms(ts,   d, t, h, m, s) {
				# days from the date (a month is not crossed by a scenario), then the time
				split(substr(ts, 1, 10), d, "-")
				split(substr(ts, 12, 12), t, ":")
				return ((d[1] * 372 + d[2] * 31 + d[3]) * 86400 + t[1] * 3600 + t[2] * 60) * 1000 + int(t[3] * 1000 + 0.5)
			}
			{ t = ms($1) }
			/ role: active, epoch / { if (start == "") start = t; last = t; next }
			/ role: standby / { if (start != "") printf "%.0f %.0f %s\n", start, t, inst; start = ""; last = t; next }
			/ the loop stood still for / {
				if (start != "") { match($0, /still for [0-9]+ ms/); x = substr($0, RSTART + 10, RLENGTH - 13); printf "%.0f %.0f %s\n", start, t - x, inst; start = "" }
				last = t; next }
			/ starting: instance / { if (start != "") printf "%.0f %.0f %s\n", start, last, inst; start = ""; last = t; next }
			{ last = t }
			END { if (start != "") printf "%.0f open %s\n", start, inst }'
	done | awk -v f="$(ms_of_wall "$from")" -v to="$(ms_of_wall "$to")" '
		{ e = ($2 == "open") ? to : $2; if (e < f || $1 > to) next; s[NR] = $1; en[NR] = e; in_[NR] = $3 }
		END {
			c = 0; mx = 0
			for (i in s) for (j in s) if (i < j && in_[i] != in_[j]) {
				lo = (s[i] > s[j]) ? s[i] : s[j]; hi = (en[i] < en[j]) ? en[i] : en[j]
				if (hi - lo > 0) { c++; if (hi - lo > mx) mx = hi - lo }
			}
			printf "%d %d\n", c, mx
		}'
}
# ms_of_wall MS: a wall-clock ms value in two_actives' units.
ms_of_wall() {
	local ts
	ts=$(date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S)
	echo "$ts" | awk -v r=$(($1 % 1000)) '{ split(substr($1, 1, 10), d, "-"); split(substr($1, 12, 8), t, ":")
		printf "%.0f\n", ((d[1] * 372 + d[2] * 31 + d[3]) * 86400 + t[1] * 3600 + t[2] * 60 + t[3]) * 1000 + r }'
}

# sampler_start FILE / sampler_stop: every second, the E164s on two MCUs at
# once (one JSON array per line), until stopped; at most 120 samples.
sampler_start() {
	local f=$1
	: >"$f"
	(
		for _ in $(seq 120); do
			running "$f.now" 2>/dev/null && jq -c '[group_by(.e)[] | select(length > 1) | .[0].e]' "$f.now" >>"$f" 2>/dev/null
			sleep 1
		done
	) &
	SAMPLER=$!
}
sampler_stop() { [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; SAMPLER=; }

# ---------------------------------------------------------------- the world

ensure_world() {
	local n
	"$SB" start >"$WORK/start.log" 2>&1 || { tail -n 20 "$WORK/start.log" >&2; return 1; }
	wait_for 90 "the 12 daemons up and connected" ctl status --wait 5 --expect 12 || return 1
	if ! states_clean; then
		warn "a platform is down or a room abnormal before the scenario: the sandbox is made anew (data too)"
		"$SB" down >"$WORK/down.log" 2>&1
		# the passwords and the CA stay: the clients here hold them (the env)
		find "$RUN" -mindepth 1 -maxdepth 1 ! -name faults ! -name secrets ! -name tls -exec rm -rf {} +
		"$SB" start >"$WORK/start.log" 2>&1 || { tail -n 20 "$WORK/start.log" >&2; return 1; }
		eval "$("$SB" env)"
		wait_for 90 "the 12 daemons up and connected" ctl status --wait 5 --expect 12 || return 1
		states_clean || return 1
		rm -f "$WORK/prev-acked.json"
	fi
	for n in css rms pms; do wait_for 30 "an active $n on p1" has_active "$n" || return 1; done
	return 0
}

# ---------------------------------------------------------------- faults

TAKEOVER= # the daemon whose standby must take over (set by inject)
FAULT_PID=0
FAULT_MS=0
# signal_active DAEMON SIGNAL: to p1's active instance of DAEMON (the daemon
# itself, not its supervisor); FAULT_MS: when, the takeover's start, not
# the moment before its lookup (confdrctl status): in a fresh-root run the
# STOP went out about 2 s after that moment (its line at 246 s, SIGCONT at
# 254 s "after 10 s"), and stop-pms failed with a takeover of 9,055 ms
# against 9,000.
signal_active() {
	local a name p inst epoch
	a=$(active "$1") || true
	[ -n "$a" ] || { warn "no active $1 on p1"; return 1; }
	read -r inst epoch p _ <<<"$a"
	name=$(sandbox_name "$inst")
	[ "$(daemon_pid "$name")" = "$p" ] || { warn "$name's pid is not $p, as /live says"; return 1; }
	FAULT_MS=$(now_ms)
	kill "-$2" "$p"
	say "  $2 to $name (pid $p, instance $inst, epoch $epoch)"
	FAULT_PID=$p
}
# crash_lines: the supervisors' lines of the daemons (both platforms) that
# died of a signal other than KILL and TERM: a crash (SIGSEGV, SIGABRT, ...).
# kill -9 and the failpoints are KILL; a stop is TERM.
crash_lines() {
	local p d n
	for p in p1 p2; do
		for d in css rms pms; do
			for n in $(dnames "$p" "$d"); do
				grep -H 'died (signal ' "$(logfile "$n")" 2>/dev/null | grep -Ev 'died \(signal (9|15) '
			done
		done
	done
}

# wait_takeover T0_MS DAEMON: "ms instance": when another process of DAEMON
# became active after the fault (at most 30 s), or "none -". The moment is
# the new leader's own ("role_since" in its liveness node, its wall clock:
# the sandbox's daemons share this host's), not when this poll saw it: on
# a loaded machine a poll of confdrctl status may take a second.
wait_takeover() {
	local t0=$1 d=$2 a end=$((SECONDS + 30)) since now
	while [ $SECONDS -lt $end ]; do
		a=$(active "$d" "$FAULT_PID") || true
		if [ -n "$a" ]; then
			now=$(now_ms)
			read -r _ _ _ since <<<"$a"
			[ "${since:-0}" -gt "$t0" ] && [ "$since" -le "$now" ] || since=$now
			echo "$((since - t0)) ${a%% *}"
			return 0
		fi
		sleep 0.2
	done
	echo "none -"
}

# arm DAEMON SPEC...: p1's instances of DAEMON started again, the standbys
# first, each with CONFDR_FAILPOINTS set to the next SPEC (the last for the
# rest; "" for none: the failpoint module, docs/testing.md). Stopping the
# active one hands over to the first, already armed; a killed instance is
# started again by its supervisor, armed as before.
arm() {
	local d=$1 a inst act name spec order=()
	shift
	a=$(active "$d") || true
	read -r inst _ <<<"$a"
	act=$(sandbox_name "${inst:-none}")
	for name in $(dnames p1 "$d"); do [ "$name" = "$act" ] || order+=("$name"); done
	for name in $(dnames p1 "$d"); do [ "$name" = "$act" ] && order+=("$name"); done
	for name in "${order[@]}"; do
		spec=$1
		[ $# -gt 1 ] && shift
		stop_pid "$name" 20
		(export CONFDR_FAILPOINTS="$spec" CONFDR_FAILPOINT_MARKS="$FP_MARKS" && spawn_daemon "$name" "$d" "$(dconf_of "$name")")
		say "  $name started again${spec:+ with CONFDR_FAILPOINTS=$spec} (pid $(pid_of "$name"))"
		wait_for 30 "the 12 daemons up and connected" ctl status --wait 5 --expect 12 || return 1
	done
	wait_for 30 "an active $d on p1" has_active "$d"
}

# The simulator kill-mcu-rms kills: two MCUs of room p1-r1 in a process of
# their own (the sandbox's simulators run four in one).
XSIM=sim-p1-r1-x
xsim_registered() {
	jq -e '[.mcus[] | select(.registered)] | length == 2' "$RUN/sims/$XSIM.json" >/dev/null 2>&1
}

# prepare SCENARIO: what a scenario needs before its load.
prepare() {
	ARMED=$1
	# each failpoint fires once in the scenario, not again in the instance
	# its supervisor starts again
	FP_MARKS=$WORK/$1/failpoints
	case $1 in crash-*) mkdir -p "$FP_MARKS" ;; esac
	# crash-D-F: the standby of D armed with failpoint answer.F, the active
	# one started again without (so the armed one takes over): one crash
	case $1 in
	crash-*) local x=${1#crash-}; arm "${x%-*}" "answer.${x##*-}=$FP_AT" "" ;;
	kill-mcu-rms)
		rm -f "$RUN/sims/$XSIM.json"
		spawn "$XSIM" "$BUILD/mcusim" --platform p1 --room p1-r1 --count 2 --prefix mcu-p1-r1-x --capacity 500 \
			--amqp "$(amqp_at p1 mcu)" --state "$RUN/sims/$XSIM.json" -q
		wait_for 30 "mcu-p1-r1-x-01 and -02 registered" xsim_registered ;;
	esac
}
# unprepare SCENARIO: undoes prepare.
unprepare() {
	ARMED=
	case $1 in
	crash-*) local x=${1#crash-}; arm "${x%-*}" "" ;;
	esac
}
# crashes DAEMON FROM_MS: how many times p1's instances of DAEMON killed
# themselves at a failpoint since FROM_MS.
crashes() {
	local n l c=0 from
	from=$(date -u -d "@$(($2 / 1000))" +%Y-%m-%dT%H:%M:%S)
	for n in $(dnames p1 "$1"); do
		l=$(grep -E '^[0-9T:.-]+Z? ERROR .* failpoint .* the process kills itself' "$(logfile "$n")" 2>/dev/null |
			awk -v f="$from" 'substr($1, 1, 19) >= f' | wc -l)
		c=$((c + l))
	done
	echo "$c"
}

# restore_start: room p1-r2 switched to its backup room (its conferences to
# restore); AT_SWITCH: how many ran in it then.
restore_start() {
	AT_SWITCH=$(running_in p1-r2 | wc -l)
	ctl room switch p1-r2 --to backup --reason "fault suite" --operator faults >>"$WORK/$1.log" 2>&1 ||
		warn "room switch p1-r2 --to backup refused (see $WORK/$1.log)"
}

inject() {
	local s=$1 t0 r a inst epoch p
	TAKEOVER= TAKEOVER_MS= TAKEOVER_BY=
	case $s in
	kill-css | kill-rms | kill-pms)
		TAKEOVER=${s#kill-}
		signal_active "$TAKEOVER" KILL || return 1
		t0=$FAULT_MS
		read -r TAKEOVER_MS TAKEOVER_BY < <(wait_takeover "$t0" "$TAKEOVER") ;;
	stop-css | stop-rms | stop-pms)
		TAKEOVER=${s#stop-}
		signal_active "$TAKEOVER" STOP || return 1
		t0=$FAULT_MS
		read -r TAKEOVER_MS TAKEOVER_BY < <(wait_takeover "$t0" "$TAKEOVER")
		r=$((10000 - ($(now_ms) - t0)))
		[ $r -gt 0 ] && sleep "$((r / 1000)).$(printf '%03d' $((r % 1000)))"
		kill -CONT "$FAULT_PID" 2>/dev/null
		say "  SIGCONT to pid $FAULT_PID after $((($(now_ms) - t0) / 1000)) s" ;;
	broker-restart)
		"$SB" server stop rabbitmq-p1 >>"$WORK/$s.log" 2>&1
		sleep 5
		"$SB" server start rabbitmq-p1 >>"$WORK/$s.log" 2>&1 ;;
	redis-restart)
		"$SB" server stop redis-p1 >>"$WORK/$s.log" 2>&1
		sleep 3
		"$SB" server start redis-p1 >>"$WORK/$s.log" 2>&1 ;;
	mariadb-restart)
		"$SB" server stop mariadb-p1 >>"$WORK/$s.log" 2>&1
		sleep 5
		"$SB" server start mariadb-p1 >>"$WORK/$s.log" 2>&1 ;;
	zk-expire)
		"$SB" fault zk-cut p1 >>"$WORK/$s.log" 2>&1
		sleep 10
		"$SB" fault heal >>"$WORK/$s.log" 2>&1 ;;
	crash-*)
		# The crash: the active (armed) instance's pid gone (at most 60 s).
		TAKEOVER=${s#crash-} TAKEOVER=${TAKEOVER%-*}
		a=$(active "$TAKEOVER") || true
		read -r inst epoch p _ <<<"$a"
		[ -n "$p" ] || { warn "no active $TAKEOVER on p1"; return 1; }
		FAULT_PID=$p
		r=$((SECONDS + 60))
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $r ]; do sleep 0.1; done
		if kill -0 "$p" 2>/dev/null; then
			warn "$inst (pid $p) did not reach its failpoint within 60 s"
			TAKEOVER=
		else
			# from the failpoint's own line: the crash may come before
			# this wait began (the load starts 3 s before inject)
			r=$(grep -h 'failpoint .* the process kills itself' "$(logfile "$(sandbox_name "$inst")")" | tail -n 1 | cut -c1-23)
			t0=$(date -u -d "${r/T/ }" +%s%3N 2>/dev/null) || t0=$(now_ms)
			say "  $inst (pid $p, epoch $epoch) killed itself at its failpoint at ${r:-?}"
			read -r TAKEOVER_MS TAKEOVER_BY < <(wait_takeover "$t0" "$TAKEOVER")
		fi ;;
	kill-mcu-rms)
		AT_KILL=$(jq '[.mcus[].confs[]] | length' "$RUN/sims/$XSIM.json" 2>/dev/null || echo 0)
		p=$(pid_of "$XSIM") || { warn "$XSIM does not run"; return 1; }
		kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"
		say "  kill -9 $XSIM (pid $p): $AT_KILL conferences ran on its two MCUs"
		sleep 0.5
		TAKEOVER=rms
		t0=$(now_ms)
		signal_active rms KILL || return 1
		read -r TAKEOVER_MS TAKEOVER_BY < <(wait_takeover "$t0" rms) ;;
	restore-redis)
		"$SB" server stop redis-p1 >>"$WORK/$s.log" 2>&1
		restore_start "$s"
		sleep 2
		"$SB" server start redis-p1 >>"$WORK/$s.log" 2>&1 ;;
	restore-broker)
		restore_start "$s"
		"$SB" server stop rabbitmq-p1 >>"$WORK/$s.log" 2>&1
		sleep 5
		"$SB" server start rabbitmq-p1 >>"$WORK/$s.log" 2>&1 ;;
	restore-mariadb)
		restore_start "$s"
		"$SB" server stop mariadb-p1 >>"$WORK/$s.log" 2>&1
		sleep 5
		"$SB" server start mariadb-p1 >>"$WORK/$s.log" 2>&1 ;;
	restore-zk)
		restore_start "$s"
		for n in 1 2 3; do "$SB" server stop "zookeeper-$n" >>"$WORK/$s.log" 2>&1; done
		sleep 10
		"$SB" up >>"$WORK/$s.log" 2>&1 ;;
	stop-pms-both)
		local n p
		FAULT_PIDS=
		for n in $(dnames p1 pms); do
			p=$(daemon_pid "$n") && { kill -STOP "$p"; FAULT_PIDS="$FAULT_PIDS $p"; }
		done
		say "  SIGSTOP to p1's pms:$FAULT_PIDS"
		sleep 10
		# shellcheck disable=SC2086
		kill -CONT $FAULT_PIDS 2>/dev/null
		say "  SIGCONT after 10 s" ;;
	zk-down)
		# One by one (the sandbox's lock); started again together by 'up'
		# (a member alone cannot serve, so 'server start' would wait for it).
		for n in 1 2 3; do "$SB" server stop "zookeeper-$n" >>"$WORK/$s.log" 2>&1; done
		sleep 15
		"$SB" up >>"$WORK/$s.log" 2>&1 ;;
	esac
	say "  fault over: $(tail -n 1 "$WORK/$s.log" 2>/dev/null)"
}

# released_before_declared FROM_MS: p1 is down, and its css's release
# (ALARM platform_isolated, in the log of the instance active then) came
# before p2's declaration (/state of p1, since). RBD says why not.
released_before_declared() {
	local st since rel n l
	st=$(ctl status --json) || { RBD="confdrctl status failed"; return 1; }
	[ "$(jq -r '.platforms[] | select(.platform == "p1") | .state' <<<"$st")" = down ] ||
		{ RBD="p1 is not down after both its pms stood still for 10 s"; return 1; }
	since=$(jq -r '.platforms[] | select(.platform == "p1") | .since' <<<"$st")
	rel=
	for n in $(dnames p1 css); do
		l=$(grep -h 'ALARM critical platform_isolated' "$(logfile "$n")" 2>/dev/null | tail -n 1 | cut -c1-23)
		[ -n "$l" ] && rel=$(date -u -d "${l/T/ }" +%s%3N)
	done
	[ -n "$rel" ] && [ "$rel" -ge "$1" ] || { RBD="p1's css did not release (no platform_isolated alarm since the fault)"; return 1; }
	RELEASE_LEAD_MS=$((since - rel))
	[ "$RELEASE_LEAD_MS" -gt 0 ] || { RBD="p1's css released $((rel - since)) ms after p2 declared p1 down"; return 1; }
	say "  p1's css released $RELEASE_LEAD_MS ms before p2 declared p1 down"
}

# ---------------------------------------------------------------- one scenario

REPORTS=()
scenario() {
	local s=$1 w=$WORK/$1 t_from t_to e164 fails=() settle_end x y two c m over
	rm -rf "$w"
	mkdir -p "$w"
	: >"$WORK/$s.log"
	say "$s: $(describe "$s")"
	ensure_world || { fails+=("the sandbox is not ready (see $WORK/start.log)"); report "$s" "${fails[@]}"; return 1; }
	prepare "$s" || { fails+=("could not prepare $s"); unprepare "$s"; report "$s" "${fails[@]}"; return 1; }
	running "$w/before.json"
	crash_lines >"$w/crashes-before.txt"
	t_from=$(now_ms)
	# The load: creates at RATE/s, and ends of the previous scenario's conferences.
	e164=$(printf '%d%06d' $((t_from / 1000 % 100000000 + 100000000)) 0)
	"$BUILD/cmsim" create --platform p1 "${DOMAINS[@]}" --count "$CREATES" --rate "$RATE" --e164-start "$e164" \
		--timeout 60 --linger 3000 --retry 30 --json "$w/create.json" -q >"$w/create.out" 2>&1 &
	LOAD_PIDS=$!
	if [ -s "$WORK/prev-acked.json" ]; then
		"$BUILD/cmsim" end --platform p1 --from-json "$WORK/prev-acked.json" --rate "$RATE" --timeout 60 --linger 3000 --retry 30 \
			--json "$w/end.json" -q >"$w/end.out" 2>&1 &
		LOAD_PIDS="$LOAD_PIDS $!"
	fi
	sleep 3
	sampler_start "$w/samples.jsonl"
	inject "$s"
	# shellcheck disable=SC2086
	wait $LOAD_PIDS
	LOAD_PIDS=
	[ -s "$w/create.json" ] || fails+=("cmsim create wrote no history ($(tail -n 3 "$w/create.out"))")
	# Settled: every ACKed create runs once, no ACKed end runs, nothing twice; at most 40 s.
	jq '[.history[] | select(.answer == "ack") | ."e164"]' "$w/create.json" >"$w/acked.json" 2>/dev/null || echo '[]' >"$w/acked.json"
	jq '[.history[] | select(.answer == "ack") | ."e164"]' "$w/end.json" >"$w/ended.json" 2>/dev/null || echo '[]' >"$w/ended.json"
	jq '[.history[] | ."e164"]' "$w/end.json" >"$w/end-asked.json" 2>/dev/null || echo '[]' >"$w/end-asked.json"
	settle_end=$((SECONDS + 40))
	while :; do
		running "$w/running.json"
		jq -n --slurpfile r "$w/running.json" --slurpfile a "$w/acked.json" --slurpfile e "$w/ended.json" --slurpfile c "$w/create.json" \
			--slurpfile b "$w/before.json" --slurpfile x "$w/end-asked.json" '
			($r[0] | group_by(.e) | map({key: .[0].e, value: length}) | from_entries) as $n |
			($r[0] | map({key: .e, value: .m}) | from_entries) as $on |
			($x[0] | map({key: ., value: true}) | from_entries) as $asked |
			{lost: [$a[0][] | select(($n[.] // 0) == 0)],
			 moved: [$b[0][] | select($on[.e] != null and $on[.e] != .m) | .e],
			 vanished: [$b[0][] | select($on[.e] == null and ($asked[.e] | not)) | .e],
			 doubled: [$n | to_entries[] | select(.value > 1) | .key],
			 end_running: [$e[0][] | select(($n[.] // 0) > 0)],
			 nack_running: [$c[0].history[] | select(.answer == "nack" and (($n[."e164"] // 0) > 0)) | ."e164"]}' >"$w/mcus.json"
		jq -e '[.lost, .doubled, .end_running, .nack_running, .vanished | length] | add == 0' "$w/mcus.json" >/dev/null && break
		[ $SECONDS -ge $settle_end ] && break
		sleep 1
	done
	t_to=$(now_ms)
	sampler_stop
	jq -s '[.[][]] | unique' "$w/samples.jsonl" >"$w/doubled-any.json" 2>/dev/null || echo '[]' >"$w/doubled-any.json"
	# After a takeover p1's records live in its promoted replica (redis-p1
	# is a master too, left behind).
	local redis_p1="$(redis_hp redis-p1),$(redis_hp redis-p1-replica)"
	[ "$s" = stop-pms-both ] && redis_p1=$(redis_hp redis-p1-replica)
	# Until they agree, at most 30 s: history rows wait for MySQL after a
	# fault (a fresh-root run under heavy load saw 69 apart 10 s after
	# restore-redis, and none at the next scenario's compare).
	ctl drill compare --redis "p1=$redis_p1" \
		--mysql-socket "p1=$(mysql_sock p1)" --mysql-user root --retry 30 --json "$w/compare.json" >/dev/null 2>&1
	for x in css rms pms; do
		read -r c m < <(two_actives "$x" "$t_from" "$t_to")
		echo "{\"daemon\": \"$x\", \"overlaps\": ${c:-0}, \"max_ms\": ${m:-0}}"
	done | jq -s . >"$w/actives.json"
	over=$((SESSION_S * 1000 + 3000))
	jq -n --arg s "$s" --arg d "$(describe "$s")" --slurpfile c "$w/create.json" --slurpfile m "$w/mcus.json" \
		--slurpfile a "$w/actives.json" --slurpfile cmp "$w/compare.json" --slurpfile da "$w/doubled-any.json" \
		--argjson endj "$(cat "$w/end.json" 2>/dev/null || echo null)" \
		--argjson samples "$(wc -l <"$w/samples.jsonl" 2>/dev/null || echo 0)" --arg tk "$TAKEOVER" --arg tkms "${TAKEOVER_MS:-}" --arg tkby "${TAKEOVER_BY:-}" --argjson over "$over" '
		def h: .history // [];
		($c[0] | h) as $ch | (($endj // {}) | h) as $eh |
		{scenario: $s, fault: $d,
		 creates: ($ch | length), acked: ([$ch[] | select(.answer == "ack")] | length),
		 nacked: ([$ch[] | select(.answer == "nack")] | length),
		 nack_reasons: ([$ch[] | select(.answer == "nack") | .reason] | group_by(.) | map({key: .[0], value: length}) | from_entries),
		 ends: ($eh | length), ends_acked: ([$eh[] | select(.answer == "ack")] | length),
		 lost: ($m[0].lost | length), doubled: ($m[0].doubled | length),
		 moved: ($m[0].moved | length), vanished: ($m[0].vanished | length),
		 doubled_any: ($da[0] | length), samples: $samples,
		 ack_latency_ms: $c[0].ack_latency_ms,
		 unanswered: ([$ch[], $eh[] | select(.answer == null)] | length),
		 differently: ([$ch[], $eh[] | select(.differs)] | length),
		 answered_twice: ([$ch[], $eh[] | select(.answers > 1)] | length),
		 nack_running: ($m[0].nack_running | length), end_running: ($m[0].end_running | length),
		 two_actives: ([$a[0][] | .overlaps] | add), two_actives_max_ms: ([$a[0][] | .max_ms] | max),
		 redis_mysql: (if ($cmp | length) > 0 then ([$cmp[0][] | .mismatches] | add) else null end),
		 takeover: (if $tk == "" then null else {daemon: $tk, ms: ($tkms | tonumber? // null), by: $tkby, bound_ms: $over} end),
		 examples: {lost: $m[0].lost[:5], doubled: $m[0].doubled[:5], doubled_any: $da[0][:5], moved: $m[0].moved[:5], vanished: $m[0].vanished[:5], nack_running: $m[0].nack_running[:5], end_running: $m[0].end_running[:5],
			    unanswered: [$ch[], $eh[] | select(.answer == null) | ."e164"][:5],
			    differently: [$ch[], $eh[] | select(.differs) | {e164: ."e164", answer, reason, answers, resent}][:5]}}' >"$w/report.json" 2>"$w/report.err" ||
		{ fails+=("the report could not be made: $(head -c 300 "$w/report.err")"); }
	if [ -s "$w/report.json" ]; then
		local checks=(lost doubled doubled_any moved vanished unanswered differently nack_running end_running two_actives)
		# where conferences must move, moving is no failure
		case $s in
		stop-pms-both) checks=(lost doubled doubled_any vanished unanswered differently nack_running end_running two_actives) ;;
		# a manual switch is make-before-break: a conference runs in both
		# rooms for a moment, which the samples (two state files read one
		# after the other) may catch
		restore-*) checks=(lost doubled vanished unanswered differently nack_running end_running two_actives) ;;
		esac
		for x in "${checks[@]}"; do
			y=$(jq -r ".$x" "$w/report.json")
			[ "$y" = 0 ] || fails+=("$x: $y $(jq -c ".examples.$x // empty" "$w/report.json")")
		done
		y=$(jq -r '.redis_mysql' "$w/report.json")
		[ "$y" = 0 ] || fails+=("Redis and MySQL differ for p1: ${y} (compare.json)")
		crash_lines | grep -vxFf "$w/crashes-before.txt" >"$w/crashes.txt"
		[ -s "$w/crashes.txt" ] && fails+=("daemons crashed: $(sed 's|^.*/logs/||' "$w/crashes.txt" | head -n 3 | tr '\n' ' ')")
		if [ -n "$TAKEOVER" ]; then
			y=$(jq -r '.takeover.ms // "none"' "$w/report.json")
			if [ "$y" = none ] || [ "$y" -gt "$over" ]; then fails+=("no $TAKEOVER standby active within $over ms (took: $y)"); fi
		fi
		if [ "$s" = stop-pms-both ]; then
			released_before_declared "$t_from" || fails+=("$RBD")
		elif [ "$s" = kill-mcu-rms ]; then
			[ "${AT_KILL:-0}" -gt 0 ] || fails+=("nothing ran on the killed MCUs: no restore was exercised")
			states_clean || fails+=("a platform is down or a room abnormal after the fault")
		elif [[ $s == restore-* ]]; then
			[ "${AT_SWITCH:-0}" -gt 0 ] || fails+=("nothing ran in p1-r2 at the switch: no restore was exercised")
			say "  $AT_SWITCH conferences ran in p1-r2 at its switch"
			wait_for 30 "p1-r2 runs nothing" room_empty p1-r2 ||
				fails+=("conferences still run in p1-r2 after its switch: $(running_in p1-r2 | head -c 200)")
			ctl room switch p1-r2 --to normal --reason "fault suite: back" --operator faults >>"$WORK/$s.log" 2>&1 ||
				fails+=("p1-r2 could not be switched back to normal")
			wait_for 20 "every platform up, every room normal" states_clean ||
				fails+=("a platform is down or a room abnormal after the switch-back")
		else
			states_clean || fails+=("a platform is down or a room abnormal after the fault: $(ctl status --json | jq -c '[.platforms[] | {platform, state}], [.rooms[] | select(.state != "normal") | {room, state}]')")
		fi
	fi
	case $s in
	crash-*)
		x=${s#crash-} x=${x%-*}
		c=$(crashes "$x" "$t_from")
		say "  p1's $x instances killed themselves $c times at their failpoints"
		[ "$c" -gt 0 ] || fails+=("no $x instance reached its failpoint: nothing was exercised")
		unprepare "$s" || fails+=("p1's $x instances could not be started again without failpoints")
		;;
	esac
	if [ ${#fails[@]} -gt 0 ]; then
		mkdir -p "$w/logs"
		cp "$RUN"/logs/p[12]-*.log "$w/logs/" 2>/dev/null
	fi
	jq '{confs: [.[] | {e164: .}]}' "$w/acked.json" >"$WORK/prev-acked.json" 2>/dev/null || rm -f "$WORK/prev-acked.json"
	report "$s" "${fails[@]}"
}

report() {
	local s=$1 r=$WORK/$1/report.json
	shift
	[ -s "$r" ] || echo "{\"scenario\": \"$s\"}" >"$r"
	jq --argjson f "$(printf '%s\n' "$@" | jq -R . | jq -s 'map(select(length > 0))')" '.failures = $f | .pass = ($f | length == 0)' "$r" >"$r.tmp" && mv "$r.tmp" "$r"
	REPORTS+=("$r")
	if [ $# = 0 ]; then
		say "$s: PASS $(jq -c '{acked, nacked, nack_reasons, ends_acked, lost, doubled, moved, unanswered, differently, two_actives, redis_mysql, takeover_ms: .takeover.ms}' "$r")"
	else
		say "$s: FAIL $(jq -c '{acked, nacked, nack_reasons, ends_acked, lost, doubled, moved, unanswered, differently, two_actives, redis_mysql, takeover_ms: .takeover.ms}' "$r")"
		printf '    - %s\n' "$@"
	fi
	[ $# = 0 ]
}

# ---------------------------------------------------------------- main

say "sandbox $RUN (port base $BASE, multi-host, 2 instances of each daemon); scenarios: ${pick[*]}"
"$SB" up >"$WORK/up.log" 2>&1 || { tail -n 20 "$WORK/up.log" >&2; die "sandbox.sh up failed (see $WORK/up.log)"; }
eval "$("$SB" env)"
# A sandbox that ran drills (tests/run.sh's lane) has their simulators and
# states: the drill's stop first, the default simulators then come with start.
if compgen -G "$RUN/pids/drill-*.pid" >/dev/null; then
	"$SB" drill stop >"$WORK/drill-stop.log" 2>&1 || warn "sandbox.sh drill stop failed (see $WORK/drill-stop.log)"
fi
rm -f "$WORK/prev-acked.json"
failed=0
for s in "${pick[@]}"; do
	scenario "$s" || failed=$((failed + 1))
done
[ -z "$json_out" ] || jq -s . "${REPORTS[@]}" >"$json_out"
echo
printf '%-16s %-5s %6s %6s %5s %7s %6s %6s %6s %6s %6s %9s\n' SCENARIO PASS ACKED NACKED LOST DOUBLED MOVED UNANS DIFFER ACTIVE2 REDIS TAKEOVER
for r in "${REPORTS[@]}"; do
	jq -r '[.scenario, (if .pass then "yes" else "NO" end), .acked, .nacked, .lost, .doubled, .moved, .unanswered, .differently, .two_actives, .redis_mysql, (if .takeover then "\(.takeover.ms) ms" else "-" end)] | map(tostring) | @tsv' "$r" |
		awk -F'\t' '{ printf "%-16s %-5s %6s %6s %5s %7s %6s %6s %6s %6s %6s %9s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 }'
done
echo "faults: $((${#pick[@]} - failed)) of ${#pick[@]} scenarios passed (reports in $WORK/<scenario>/report.json)"
[ $failed = 0 ]
