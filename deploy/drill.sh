#!/usr/bin/env bash
# confdr DR drills against the sandbox: inject a fault, measure the restore,
# check the outcome independently of css (docs/drills.md).
#
# Usage: deploy/sandbox.sh drill SCENARIO [options]     (or deploy/drill.sh, same environment)
#        deploy/sandbox.sh drill stop                    stop the daemons and the drill's simulators
#
# Scenarios:
#   mcu-failure          kill -9 drill-p1-r1-b (2 MCUs): its conferences restored on p1-r1's others
#   mcu-reboot           kill -9 drill-p1-r1-b and start it again at once, empty, before its heartbeats
#                        are missed: its conferences restored on p1-r1's others, the restart known
#                        by its new boot (rms_all_mcu_ntf reason restarted)
#   mcu-reboot-from-one  the same, the restarted MCUs numbering their lists from 1 (--seq-from-one)
#   mcu-reboot-no-boot   the same, MCUs that tell no boot and number their lists from 1 (--no-boot
#                        --seq-from-one): css knows the restart from a list whose seq went back
#   room-failure         kill -9 both simulators of p1-r2: restored in its backup room p1-r1
#   room-switch          confdrctl room switch p1-r1 --to backup (MCUs stay up): its conferences
#                        move to p1-r2 and are ended on p1-r1's MCUs
#   room-switchback      room-switch, settled, then room switch p1-r1 --to normal: nothing moves
#                        (restored 0); 20 new conferences of p1-r1's domains land in p1-r1
#   platform-failure     kill -9 p1's css, rms, pms, simulators and redis-p1: every p1 conference
#                        runs again on p2's MCUs
#   platform-switchback  platform-failure, settled, then redis-p1, p1's simulators and daemons (its
#                        css too) back, confdrctl platform failback p1 with p1's css running all
#                        along: nothing moves (restored 0); a create of p1's domains every 250 ms
#                        through the hand-over is answered (platform_down, then ACK on p1's MCUs);
#                        20 new conferences of p1's domains land on p1's MCUs; then drill-p2-r1-a
#                        killed: p1's conferences it hosted since the takeover are restored by
#                        p1's css in p1-r1 (it hears p2's rms), p2's own in p2-r1 (or p2-r2 when full)
#   platform-power-off   (multi-host) p1's host powered off (sandbox.sh fault power-off p1: its
#                        broker, Redis, MariaDB, ZooKeeper member, daemons and MCUs at once):
#                        every p1 conference runs again on p2's MCUs, once; then, with p1's
#                        MariaDB still down, 20 conferences of p1's domains created and 20 of
#                        p1's ended through p2's css; p1's MariaDB and ZooKeeper member back:
#                        its confinfo catches up with the promoted Redis, each row once
#   platform-partition   (multi-host) p1 and p2 cut from each other for 20 s (fault partition p1
#                        p2), both still with the ZooKeeper majority through zk: nothing is
#                        declared down, nothing moves, every create through either platform
#                        is answered and lands at home, no E164 on two MCUs in any second;
#                        healed: settled, nothing lost or doubled
#   zk-partition         (multi-host) p1 cut from the ZooKeeper majority only, for 20 s (fault
#                        zk-cut p1: its broker, Redis, MariaDB and MCUs still reached): p1 is
#                        heard on its broker, so nothing is declared down and nothing moves;
#                        p1's pms announces nothing; no E164 on two MCUs in any second; every
#                        create through either platform answered; healed: nothing lost or doubled
#   main-room-failure    p1's main room p1-r1 fails: its MCUs and p1's Redis (the main room's
#                        check) killed: the room abnormal, p1 down (main_room_abnormal), every
#                        p1 conference on p2's MCUs, once
#
# Options:
#   --confs N            conferences created before the fault, half through each css (default 1000)
#   --json FILE          the report as one JSON object to FILE
#   --timeout S          bound of the settle wait (default 60 + N/100)
#   --list-interval MS   the simulators' conference-list interval (default 1000)
#   --rate R             creates per second per platform (default 500)
#   --stop               stop the daemons and the drill's simulators at the end
#   --one-room           room-failure only: all N conferences created in the failing room p1-r2
#                        (through p1's css, ud-p1-r2-a and -b), every one of them moves
#                        (the benchmarks' restore of a full room, bench/run.sh)
#   -h, --help           this text
#
# Each drill starts from a clean state: daemons and simulators stopped, Redis replicas re-linked
# to their primaries and flushed, confinfo emptied, queues purged, every platform up and every
# room normal; then the daemons, two of each per platform (sandbox.sh start), and two simulators per room (drill-<room>-a,
# -b: 2 MCUs and 1 VRS each, state files run/sims/drill-*.json). Settled: every conference that ran
# before the fault runs on exactly one live MCU or is closed in MySQL (end_ms, end_reason), no E164
# runs twice, held for 3 s (5 s after a switch-back). Exit 0 when settled with lost = duplicates =
# redis_mysql_mismatches = 0 (and the scenario's own expectation met), 1 otherwise (reason
# printed), 64 bad usage.
set -uo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=drill SAY_T0=$SECONDS
# shellcheck source=lib.sh
. "$SELF_DIR/lib.sh"
SANDBOX=$TOP/deploy/sandbox.sh
PLATFORMS=(p1 p2)
ROOMS=(p1-r1 p1-r2 p2-r1 p2-r2)
SIDES=(a b)

usage() { sed -n '2,70p' "$SELF_DIR/drill.sh" | sed 's/^# \{0,1\}//'; }
fail_setup() { printf 'drill: FAILED: %s\n' "$*" >&2; cleanup_watchers; exit 1; }
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- arguments

SCENARIO=${1:-}
case $SCENARIO in
-h | --help | help) usage; exit 0 ;;
mcu-failure | mcu-reboot | mcu-reboot-from-one | mcu-reboot-no-boot | room-failure | room-switch | room-switchback | \
	platform-failure | platform-switchback | platform-power-off | platform-partition | zk-partition | \
	main-room-failure | stop) shift ;;
'') usage >&2; exit 64 ;;
*) printf 'drill: unknown scenario "%s"\n' "$SCENARIO" >&2; usage >&2; exit 64 ;;
esac
# The readings of the MCU contract the drill's simulators take (docs/mcusim.md).
SIM_OPTS=
case $SCENARIO in
mcu-reboot-from-one) SIM_OPTS=--seq-from-one ;;
mcu-reboot-no-boot) SIM_OPTS="--no-boot --seq-from-one" ;;
esac
N=1000 JSON_OUT= TIMEOUT= LIST_MS=1000 RATE=500 STOP_AT_END=0 DEST= ONE_ROOM=0
while [ $# -gt 0 ]; do
	case $1 in
	--confs) N=${2:-}; shift 2 ;;
	--json) JSON_OUT=${2:-}; shift 2 ;;
	--timeout) TIMEOUT=${2:-}; shift 2 ;;
	--list-interval) LIST_MS=${2:-}; shift 2 ;;
	--rate) RATE=${2:-}; shift 2 ;;
	--stop) STOP_AT_END=1; shift ;;
	--one-room) ONE_ROOM=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) printf 'drill: unknown option "%s" (see --help)\n' "$1" >&2; exit 64 ;;
	esac
done
isnum() { case ${1:-} in '' | *[!0-9]*) return 1 ;; esac; }
isnum "$N" && [ "$N" -ge 8 ] && [ "$N" -le 100000 ] || { echo "drill: --confs wants 8..100000" >&2; exit 64; }
isnum "$LIST_MS" && [ "$LIST_MS" -ge 100 ] || { echo "drill: --list-interval wants ms >= 100" >&2; exit 64; }
isnum "$RATE" && [ "$RATE" -ge 1 ] || { echo "drill: --rate wants creates per second >= 1" >&2; exit 64; }
[ $ONE_ROOM = 0 ] || [ "$SCENARIO" = room-failure ] || { echo "drill: --one-room is for room-failure only" >&2; exit 64; }
[ -n "$TIMEOUT" ] || TIMEOUT=$((60 + N / 100))
isnum "$TIMEOUT" && [ "$TIMEOUT" -ge 1 ] || { echo "drill: --timeout wants seconds" >&2; exit 64; }
if [ -n "$JSON_OUT" ]; then JSON_OUT=$(realpath -m "$JSON_OUT"); fi

# What the drill runs comes from Debian's packages: installed first (a no-op when present), then checked.
"$TOP/deploy/install-deps.sh" || { echo "drill: dependencies missing (deploy/install-deps.sh)" >&2; exit 1; }
for t in jq redis-cli mariadb setsid; do command -v $t >/dev/null || { echo "drill: $t is missing" >&2; exit 1; }; done

# Capacity: half a room (one simulator, 2 MCUs) holds the room's N/4, and one
# platform's 8 MCUs hold all N: N/8 per MCU, with half again for an uneven spread.
CAP=$(((N * 3 + 15) / 16 + 10))
# --one-room: the room's 4 MCUs hold all N, and so do its backup room's: N/4
# per MCU, with half again.
[ $ONE_ROOM = 0 ] || CAP=$(((N * 3 + 7) / 8 + 10))
WORK=$RUN/drill/$SCENARIO
HOLD_S=3

# ---------------------------------------------------------------- helpers

# checker COMMAND ARGS...: confdrctl drill COMMAND (docs/drills.md), bounded.
checker() {
	local cmd=$1
	shift
	# Redis's admin: the checks read every key, INFO and EVAL (lib.sh: ctl)
	CONFDR_REDIS_PASSWORD_FILE=$SECRETS/redis-admin.password \
		timeout $((TIMEOUT + 120)) "$BUILD/confdrctl" drill "$cmd" "$@"
}
# Each platform's database on its MariaDB (one server in single-host, one per platform host in multi-host).
DB=(--mysql-socket "p1=$(mysql_sock p1)" --mysql-socket "p2=$(mysql_sock p2)" --mysql-user root)
# p1_db_down: p1's MariaDB is down (its host powered off): the checker counts
# none of p1's conferences closed, and Redis is compared with MySQL for p2 only.
P1_DB_DOWN=0
p1_db_down() { P1_DB_DOWN=1 DB=(--mysql-socket p1=none --mysql-socket "p2=$(mysql_sock p2)" --mysql-user root); }
p1_db_up() { P1_DB_DOWN=0 DB=(--mysql-socket "p1=$(mysql_sock p1)" --mysql-socket "p2=$(mysql_sock p2)" --mysql-user root); }
SIMS=(--sims "$RUN/sims" --pids "$RUN/pids" --prefix drill-)
# kill9 NAME: SIGKILL to NAME's process group (a daemon and its supervisor,
# which would otherwise start it again: a drill's crash is for good).
kill9() {
	local p
	p=$(pid_of "$1") || p=$(cat "$(pidfile "$1")" 2>/dev/null) || true
	[ -n "$p" ] || return 1
	kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || return 1
	echo "$1(pid $p)"
}

sim_names() { local r x; for r in "${ROOMS[@]}"; do for x in "${SIDES[@]}"; do echo "drill-$r-$x"; done; done; }

# spawn_sim ROOM SIDE [MCUSIM-OPTIONS...]: simulator drill-ROOM-SIDE (2 MCUs, 1 VRS), its state file afresh.
spawn_sim() {
	local r=$1 x=$2 p=${1%%-*} name=drill-$1-$2
	shift 2
	rm -f "$RUN/sims/$name.json"
	spawn "$name" "$BUILD/mcusim" --platform "$p" --room "$r" --count 2 --prefix "mcu-$r-$x" --vrs 1 \
		--vrs-prefix "vrs-$r-$x" --capacity "$CAP" --list-interval "$LIST_MS" \
		--amqp "$(amqp_at "$p" mcu)" --state "$RUN/sims/$name.json" -q "$@"
}

# start_sims [PLATFORM]: the drill's simulators (all, or one platform's).
start_sims() {
	local r x
	mkdir -p "$RUN/sims" "$RUN/logs" "$RUN/pids"
	for r in "${ROOMS[@]}"; do
		[ -n "${1:-}" ] && [ "${r%%-*}" != "$1" ] && continue
		for x in "${SIDES[@]}"; do
			pid_of "drill-$r-$x" >/dev/null && continue
			spawn_sim "$r" "$x" $SIM_OPTS
		done
	done
}
stop_drill_sims() { local n; for n in $(sim_names); do stop_pid "$n" 10; done; }
stop_default_sims() { local r; for r in "${ROOMS[@]}"; do stop_pid "sim-$r" 10; done; }

# drill_mcus_registered PLATFORM|all: the drill's MCUs (8 per platform) up in rms.
drill_mcus_registered() {
	local want=16 a=()
	[ "$1" != all ] && want=8 a=(--platform "$1")
	ctl mcu list "${a[@]}" --json 2>/dev/null |
		jq -e --argjson w $want '[.[] | select(.state == "up" and (.mcu | test("^mcu-p[12]-r[12]-[ab]-[0-9]+$")))] | length == $w' >/dev/null
}

# mcus_up PLATFORM|all: the drill's MCUs up in rms (8 per platform) and no other MCU up.
mcus_up() {
	local want=16 filter=.
	[ "$1" != all ] && { want=8; filter="select(.platform == \"$1\")"; }
	ctl mcu list --json 2>/dev/null | jq -e --argjson want $want "[.[] | $filter | select(.state == \"up\")] |
		([.[] | select(.mcu | test(\"^mcu-p[12]-r[12]-[ab]-[0-9]+\$\"))] | length) == \$want and
		([.[] | select(.mcu | test(\"^mcu-p[12]-r[12]-[ab]-[0-9]+\$\") | not)] | length) == 0" >/dev/null
}

cleanup_watchers() { stop_pid drill-watch-p1 5 2>/dev/null; stop_pid drill-watch-p2 5 2>/dev/null; }
# the sampler of a partition drill stops too (its loop is bounded anyway)
trap 'cleanup_watchers; [ -n "${SAMPLER_PID:-}" ] && touch "$WORK/sampler.stop"' EXIT
trap 'echo "drill: interrupted" >&2; exit 1' INT TERM

# The daemons first (sandbox.sh stop: every pms first), then the simulators:
# MCUs stopped under a running pms make their rooms abnormal and, through the
# main room, their platform down, which the next drill would have to undo.
stop_all() {
	cleanup_watchers
	"$SANDBOX" stop >/dev/null || warn "sandbox.sh stop failed"
	stop_drill_sims
}

if [ "$SCENARIO" = stop ]; then
	stop_all
	say "daemons and drill simulators stopped"
	exit 0
fi

# ---------------------------------------------------------------- setup

redis_empty() { [ "$(rcli "$1" dbsize 2>/dev/null)" = 0 ]; } # NAME
redis_role() { rcli "$1" info replication 2>/dev/null | tr -d '\r' | sed -n 's/^role://p'; }

clean_state() {
	local p q n port rport db
	say "clean state: stopping daemons and simulators"
	stop_all
	say "clean state: sandbox.sh up (servers a drill killed come back; multi-host: every link up)"
	"$SANDBOX" up >"$WORK/up.log" 2>&1 || { tail -n 20 "$WORK/up.log" >&2; fail_setup "sandbox.sh up failed"; }
	clean_redis
	# a takeover publishes the promoted replica as the platform's Redis: the files' endpoints again
	load_topology
}

# load_topology: the files' topology and endpoints into ZooKeeper; three
# tries of 15 s each, as sandbox.sh up (a loaded machine: a fresh-root run
# saw 'no answer ... within 5 s' right after the ensemble came back).
load_topology() {
	local try
	for try in 1 2 3; do
		ctl --timeout 15 topology load "$TOP/conf/sandbox-topology.json" --endpoints "$RUN/endpoints.json" >/dev/null &&
			return 0
		[ $try = 3 ] || { warn "confdrctl topology load failed (try $try of 3); again in 2 s"; sleep 2; }
	done
	fail_setup "confdrctl topology load failed (3 tries)"
}

# clean_redis: each platform's Redis the master, its replica linked, both
# empty; confinfo emptied; the queues purged.
clean_redis() {
	local p q n prim repl db
	for p in "${PLATFORMS[@]}"; do
		prim=redis-$p repl=redis-$p-replica # names (lib.sh: rcli)
		# A platform drill may have promoted the replica: the primary is the master again.
		[ "$(redis_role $prim)" = master ] || rcli $prim replicaof no one >/dev/null
		say "clean state: redis-$p master, redis-$p-replica its replica, both flushed; confdr_$p.confinfo emptied; queues of $p purged"
		rcli $repl replicaof "$(addr_of $prim)" "$(redis_port $prim)" >/dev/null || fail_setup "redis-$p-replica: REPLICAOF failed"
		wait_for 30 "redis-$p-replica linked to redis-$p" replica_linked $repl ||
			fail_setup "redis-$p-replica does not replicate redis-$p"
		rcli $prim flushall >/dev/null || fail_setup "FLUSHALL on redis-$p failed"
		wait_for 10 "redis-$p-replica empty" redis_empty $repl ||
			fail_setup "redis-$p-replica did not follow the FLUSHALL"
		db=confdr_$p
		if [ "$(mysql_root $p -N -B -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='$db' AND table_name='confinfo'")" = 1 ]; then
			mysql_root $p -N -B "$db" -e "TRUNCATE TABLE confinfo" || fail_setup "cannot empty $db.confinfo"
		fi
		# Only non-empty queues are purged (each rabbitmqctl call costs a second).
		while read -r q n; do
			[ "${n:-0}" != 0 ] && [ -n "$q" ] && "$SANDBOX" rabbitmqctl --on "$p" -q purge_queue -p "$p" "$q" >/dev/null 2>&1
		done < <("$SANDBOX" rabbitmqctl --on "$p" -q list_queues -p "$p" name messages 2>/dev/null | grep -v '^name' || true)
	done
}

# start_world [PLATFORM]: the drill's simulators (of PLATFORM only, else all:
# before the daemons, so that no room looks dead once sandbox.sh's default
# simulators are stopped), the daemons that do not run, then the default
# simulators that sandbox.sh start adds are stopped.
start_world() {
	start_sims "${1:-}"
	"$SANDBOX" start >"$WORK/start.log" 2>&1 || { tail -n 20 "$WORK/start.log" >&2; fail_setup "sandbox.sh start failed"; }
	wait_for 60 "$((6 * INSTANCES)) daemons up and connected" ctl status --wait 5 --expect $((6 * INSTANCES)) ||
		fail_setup "the daemons are not all up:
$(ctl status 2>&1 | head -n 40)
(logs: $RUN/logs/*-css.log, *-rms.log, *-pms.log; last lines of each:
$(for f in "$RUN"/logs/p[12]-{css,rms,pms}{,-[0-9]}.log; do [ -f "$f" ] && { echo "== $f"; tail -n 5 "$f"; }; done))"
	wait_for 30 "the drill's MCUs registered" drill_mcus_registered "${1:-all}" ||
		fail_setup "the drill's MCUs (${1:-all}) are not all up in rms"
	stop_default_sims
}

reset_pms() {
	local st x
	st=$(ctl status --json) || fail_setup "confdrctl status --json failed"
	for x in $(jq -r '.platforms[] | select(.state != "up") | .platform' <<<"$st"); do
		say "reset: platform $x is down: confdrctl platform switch $x --to normal --force"
		ctl platform switch "$x" --to normal --force --reason "drill reset" --operator drill >/dev/null ||
			fail_setup "cannot switch platform $x back to normal"
	done
	for x in $(jq -r '.rooms[] | select(.state != "normal") | .room' <<<"$st"); do
		say "reset: room $x is abnormal: confdrctl room switch $x --to normal --force"
		ctl room switch "$x" --to normal --force --reason "drill reset" --operator drill >/dev/null ||
			fail_setup "cannot switch room $x back to normal"
	done
}

states_clean() {
	ctl status --json | jq -e '([.platforms[] | select(.state != "up")] | length) == 0 and
		([.rooms[] | select(.state != "normal")] | length) == 0' >/dev/null
}

setup() {
	rm -rf "$WORK"
	mkdir -p "$WORK" "$RUN/pids" "$RUN/logs" "$RUN/sims"
	clean_state
	say "starting the drill's simulators (2 per room, 2 MCUs of $CAP each) and the daemons"
	start_world
	if ! states_clean; then
		# A platform found down at start makes its backup's css take over
		# (its Redis replica promoted and published in ZooKeeper): after the
		# reset, the css are stopped and the Redis roles, data and endpoints
		# made clean again before they start for the drill.
		reset_pms
		wait_for 20 "every platform up, every room normal" states_clean || fail_setup "pms states could not be reset"
		say "reset: the css stopped, Redis and endpoints made clean again, the css started"
		for n in $(dnames p1 css) $(dnames p2 css); do stop_pid "$n" 20 2>/dev/null || :; done
		clean_redis
		load_topology
		start_world
	fi
	wait_for 30 "16 drill MCUs up and no other MCU up in rms" mcus_up all || fail_setup "MCUs not as expected in rms ($(ctl mcu list 2>&1 | head -n 30))"
	echo '{}' >"$WORK/home.json"
}

# ---------------------------------------------------------------- conferences

# create PLATFORM COUNT E164_START OUT DOMAINS...: through PLATFORM's css; fails unless all ACKed.
create() {
	local p=$1 n=$2 start=$3 out=$4 a=() d
	shift 4
	for d in "$@"; do a+=(--domain "$d"); done
	"$BUILD/cmsim" create --platform "$p" --amqp "$(amqp_at "$p" cm)" "${a[@]}" \
		--count "$n" --rate "$RATE" --e164-start "$start" --timeout 60 -q --json "$out" >"$out.txt" 2>&1
	[ "$(jq -r .acked "$out" 2>/dev/null)" = "$n" ]
}
# add_home FILE PLATFORM: E164 -> home platform for the created conferences.
add_home() {
	jq -c --slurpfile c "$1" --arg p "$2" 'reduce $c[0].confs[] as $x (.; .[$x["e164"]] = $p)' "$WORK/home.json" >"$WORK/home.tmp" &&
		mv "$WORK/home.tmp" "$WORK/home.json"
}
create_all() {
	local base half=$((N / 2)) ok=1 p
	base=$(now_ms)00
	if [ $ONE_ROOM = 1 ]; then
		say "creating $N conferences through cmsim, all in room p1-r2 via p1's css (2 domains, $RATE/s)"
		create p1 "$N" "$base" "$WORK/create-p1.json" ud-p1-r2-a ud-p1-r2-b ||
			fail_setup "not every create was ACKed: $(jq -c '{acked, nacked, unanswered, nack_reasons}' "$WORK/create-p1.json" 2>/dev/null || tail -n 5 "$WORK/create-p1.json.txt")"
		add_home "$WORK/create-p1.json" p1
		jq '[.confs[]["e164"]]' "$WORK/create-p1.json" >"$WORK/acked.json"
		echo '{"acked": 0, "ack_latency_ms": null, "confs": []}' >"$WORK/create-p2.json"
		return
	fi
	say "creating $N conferences through cmsim: $half via p1's css, $((N - half)) via p2's (8 domains, $RATE/s each)"
	create p1 $half "$base" "$WORK/create-p1.json" ud-p1-r1-a ud-p1-r1-b ud-p1-r2-a ud-p1-r2-b &
	local j1=$!
	create p2 $((N - half)) "$((base + half))" "$WORK/create-p2.json" ud-p2-r1-a ud-p2-r1-b ud-p2-r2-a ud-p2-r2-b &
	local j2=$!
	wait $j1 || ok=0
	wait $j2 || ok=0
	for p in p1 p2; do
		if ! jq -e . "$WORK/create-$p.json" >/dev/null 2>&1; then
			fail_setup "cmsim create on $p failed: $(tail -n 5 "$WORK/create-$p.json.txt" 2>/dev/null)"
		fi
		add_home "$WORK/create-$p.json" $p
	done
	[ $ok = 1 ] || fail_setup "not every create was ACKed: p1 $(jq -c '{acked, nacked, unanswered, nack_reasons}' "$WORK/create-p1.json"), p2 $(jq -c '{acked, nacked, unanswered, nack_reasons}' "$WORK/create-p2.json")"
	jq -s '[.[].confs[]["e164"]]' "$WORK/create-p1.json" "$WORK/create-p2.json" >"$WORK/acked.json"
}

# snapshot OUT [ACKED]: what the drill's live simulators run (confdrctl drill
# snapshot: their state files, each while its simulator runs): [{e, m, s, r,
# p, h}] (E164, MCU, started_ms, room, platform of the MCU, home platform of
# the conference); with ACKED, fails unless every E164 of that file runs.
snapshot() {
	checker snapshot "${SIMS[@]}" --home "$WORK/home.json" --out "$1" ${2:+--expect "$2"}
}
all_acked_running() { snapshot "$WORK/snap.json" "$WORK/acked.json" 2>/dev/null; }

# settle ROOM: confdrctl drill verify --settle: the verdict on each conference
# of before.json against the live simulators and the rows MySQL closed, every
# second until it holds for HOLD_S s (bounded by --timeout), its progress
# lines shown as they come; the last verdict in analysis.json, the last
# snapshot in now.json. Sets SETTLED, SETTLE_S; CHECKER_FAILED when it could
# not check (a server unreachable: said on stderr).
settle() {
	local room=$1 rc l
	SETTLED=false SETTLE_S=null CHECKER_FAILED=
	rm -f "$WORK/analysis.json"
	checker verify --before "$WORK/before.json" "${SIMS[@]}" --home "$WORK/home.json" "${DB[@]}" \
		--room "$room" --dest "$DEST" --now "$WORK/now.json" --settle --timeout "$TIMEOUT" --hold "$HOLD_S" \
		--json "$WORK/analysis.json" | while IFS= read -r l; do say "  $l"; done
	rc=${PIPESTATUS[0]}
	case $rc in
	0) SETTLED=true SETTLE_S=$(jq -n "($(jq .settled_since_ms "$WORK/analysis.json") - $INJECT_MS) / 1000") ;;
	1) return 1 ;;
	*) CHECKER_FAILED="confdrctl drill verify failed (exit $rc; its reason above)"; return 1 ;;
	esac
}

# ---------------------------------------------------------------- watchers and announcements

start_watchers() {
	local p n
	for p in "${PLATFORMS[@]}"; do
		n=drill-watch-$p
		stop_pid $n 5
		: >"$(logfile $n)"
		spawn $n "$BUILD/cmsim" watch --platform $p --amqp "$(amqp_at $p ops)" \
			--out "$WORK/watch-$p.jsonl" --timeout 30
	done
	for p in "${PLATFORMS[@]}"; do
		wait_for 30 "bus watcher of $p subscribed" grep -q 'subscribed' "$(logfile drill-watch-$p)" ||
			fail_setup "the bus watcher of $p did not subscribe (log $(logfile drill-watch-$p))"
	done
}

# announcement SELECT: the first message after the injection the select matches (or null).
announcement() {
	cat "$WORK"/watch-p*.jsonl 2>/dev/null | jq -c -s --argjson t "$INJECT_MS" \
		"[.[] | select(.ts_ms >= \$t) | select($1)] | min_by(.ts_ms)"
}

# ---------------------------------------------------------------- Redis vs MySQL

# compare_all OUT: confdrctl drill compare: for each platform, the Redis that is
# master for it now (redis-P, or redis-P-replica when only that one is) against
# confdr_P.confinfo's open rows; retried up to 10 s while not equal (MySQL is
# written in batches after Redis). Sets COMPARE_FAILED (and OUT to []) when it
# could not compare (a server unreachable: said on stderr).
compare_all() {
	local rc=0
	COMPARE_FAILED=
	# P1_REDIS: p1's Redis to compare when both are masters (p1's own came
	# back after an isolation: the promoted replica is the one in use)
	local r1=(--redis "p1=${P1_REDIS:-$(redis_hp redis-p1),$(redis_hp redis-p1-replica)}")
	[ "$P1_DB_DOWN" = 1 ] && r1=()
	checker compare "${r1[@]}" --redis "p2=$(redis_hp redis-p2),$(redis_hp redis-p2-replica)" "${DB[@]}" \
		--retry 10 --json "$1" || rc=$?
	if [ $rc -gt 1 ]; then
		COMPARE_FAILED="confdrctl drill compare failed (exit $rc; its reason above): Redis and MySQL not compared"
		echo '[]' >"$1"
	fi
	return $rc
}

# ---------------------------------------------------------------- faults

kill_sims() { local n; for n in "$@"; do kill9 "$n" >/dev/null || warn "$n was not running"; done; }

inject() { # SCENARIO-STEP; sets INJECT_MS
	local out rc
	INJECT_MS=$(now_ms)
	case $1 in
	mcu-failure) kill_sims drill-p1-r1-b ;;
	mcu-reboot*)
		# back at once, empty, with a new boot (unless --no-boot): well before
		# rms misses its heartbeats
		kill_sims drill-p1-r1-b
		spawn_sim p1-r1 b $SIM_OPTS
		say "  drill-p1-r1-b started again (pid $(cat "$(pidfile drill-p1-r1-b)")${SIM_OPTS:+, $SIM_OPTS})" ;;
	room-failure) kill_sims drill-p1-r2-a drill-p1-r2-b ;;
	host-mcu-failure) kill_sims drill-p2-r1-a ;;
	room-switch)
		out=$(ctl room switch p1-r1 --to backup --reason drill --operator drill 2>&1) ||
			fail_setup "confdrctl room switch p1-r1 --to backup failed: $out" ;;
	room-switchback)
		out=$(ctl room switch p1-r1 --to normal --reason "drill: switch back" --operator drill 2>&1) || {
			REFUSED="confdrctl room switch p1-r1 --to normal refused: $out"
			return 1
		} ;;
	platform-failure)
		out=$(for n in $(dnames p1 css) $(dnames p1 rms) $(dnames p1 pms) redis-p1 drill-p1-r1-a drill-p1-r1-b drill-p1-r2-a drill-p1-r2-b; do kill9 $n; done)
		say "  killed: $(echo $out)" ;;
	platform-power-off)
		"$SANDBOX" fault power-off p1 >"$WORK/power-off.log" 2>&1 || fail_setup "sandbox.sh fault power-off p1 failed: $(tail -n 3 "$WORK/power-off.log")"
		say "  $(tail -n 1 "$WORK/power-off.log")"
		p1_db_down ;;
	main-room-failure)
		out=$(for n in redis-p1 drill-p1-r1-a drill-p1-r1-b; do kill9 $n; done)
		say "  killed: $(echo $out)" ;;
	platform-partition) partition_window "partition p1 p2" "heal p1 p2" ;;
	platform-isolation) partition_window "partition-zk p1" "heal" ;;
	zk-partition) partition_window "zk-cut p1" "heal" ;;
	platform-failback)
		out=$(ctl platform failback p1 --operator drill 2>&1)
		rc=$?
		printf '%s\n' "$out" >"$WORK/failback.log"
		if [ $rc != 0 ]; then
			REFUSED="confdrctl platform failback p1 failed (exit $rc): $out"
			return 1
		fi ;;
	esac
	return 0
}

# ---------------------------------------------------------------- one phase

# phase NAME ROOM SELECT STEP DEST: snapshot before, watchers, inject STEP,
# settle, checks (DEST: a regex every restored conference's new room must
# match; "" for none); the phase's report in $WORK/report-NAME.json. Returns 1
# on a failure.
phase() {
	local name=$1 room=$2 sel=$3 step=$4 ann ann_ms detect fails=() extra
	DEST=$5
	snapshot "$WORK/before.json"
	cp "$WORK/before.json" "$WORK/before-$name.json"
	say "$name: running before: $(jq length "$WORK/before.json") conferences on live MCUs (state files)"
	start_watchers
	# pms refuses a fail-back while no pms of the platform is live
	# (docs/operations.md): p1 comes back first, then the fail-back.
	if [ "$step" = platform-failback ]; then
		bring_p1_back
		P1_CSS_PID=$(p1_css_pids) || fail_setup "p1's css is not running before the fail-back"
		probe_start
	fi
	say "$name: injecting the fault ($step)"
	REFUSED=
	if ! inject "$step"; then
		cleanup_watchers
		jq -n --arg s "$name" --arg r "$REFUSED" '{scenario: $s, pass: false, failures: [$r]}' >"$WORK/report-$name.json"
		return 1
	fi
	if [ "$step" = platform-failback ]; then
		say "  the fail-back's steps:"
		sed 's/^/    /' "$WORK/failback.log"
		sleep 2 # a few creates after the hand-over too
		probe_stop
	fi
	say "$name: waiting until settled (at most $TIMEOUT s; held ${HOLD_S} s)"
	settle "$room" || :
	if [ -n "$CHECKER_FAILED" ]; then
		cleanup_watchers
		jq -n --arg s "$name" --arg r "$CHECKER_FAILED" '{scenario: $s, pass: false, failures: [$r]}' >"$WORK/report-$name.json"
		return 1
	fi
	sleep 0.5
	ann=
	[ -n "$sel" ] && ann=$(announcement "$sel")
	cleanup_watchers
	cp "$WORK/analysis.json" "$WORK/analysis-$name.json"
	compare_all "$WORK/redis-mysql-$name.json" || :
	[ -z "$COMPARE_FAILED" ] || fails+=("$COMPARE_FAILED")
	ann_ms=$(jq -r '.ts_ms // empty' <<<"$ann")
	[ -n "$ann_ms" ] || [ -z "$sel" ] || fails+=("no announcement seen by the bus watchers ($sel)")
	detect=null
	[ -n "$ann_ms" ] && detect=$(jq -n "($ann_ms - $INJECT_MS) / 1000")
	jq -n --arg s "$name" --argjson confs "$N" --slurpfile a "$WORK/analysis.json" --slurpfile rm "$WORK/redis-mysql-$name.json" \
		--argjson inj "$INJECT_MS" --argjson ann "${ann:-null}" --argjson detect "$detect" \
		--argjson settled "$SETTLED" --argjson settle_s "$SETTLE_S" --arg step "$step" --arg dest "$DEST" '
		def pct(v; p): if (v | length) == 0 then null else v[((((v | length) * p + 99) / 100 | floor) - 1) | if . < 0 then 0 else . end] end;
		$a[0] as $A | ($ann.ts_ms // $inj) as $t0 | [$A.restored_started[] | (. - $t0) / 1000] as $r |
		{scenario: $s, step: $step, confs: $confs, running_before: $A.running_before, running_after: $A.running_after,
		 restored: $A.restored, ended_on_purpose: $A.ended_on_purpose, lost: $A.lost, duplicates: $A.duplicates,
		 running_but_closed: $A.running_but_closed, stuck_in_room: $A.stuck_in_room,
		 restored_to: $A.restored_to, misplaced: $A.misplaced, expected_rooms: $dest,
		 redis_mysql_mismatches: ([$rm[0][].mismatches] | add), redis_mysql: $rm[0],
		 injected_ms: $inj, announcement: $ann, detect_s: $detect,
		 restore_from: (if $ann == null then "injection" else "announcement" end),
		 restore_all_s: (if ($r | length) > 0 then $r[-1] else null end),
		 restore_p50_s: pct($r; 50), restore_p99_s: pct($r; 99),
		 settled: $settled, settle_s: $settle_s, examples: $A.examples}' >"$WORK/report-$name.json" ||
		{ echo "drill: internal error: cannot build the report" >&2; return 1; }
	# The checks of section 8 of the design, and the phase's own expectation.
	extra=$(jq -r '[if .settled | not then "not settled within the timeout" else empty end,
		if .lost > 0 then "\(.lost) conferences lost (e.g. \(.examples.lost | join(", ")))" else empty end,
		if .duplicates > 0 then "\(.duplicates) E164s run on two MCUs (e.g. \(.examples.duplicates | map(.["e164"] + " on " + (.mcus | join("+"))) | join(", ")))" else empty end,
		if .running_but_closed > 0 then "\(.running_but_closed) closed in MySQL but still running on an MCU (e.g. \(.examples.running_but_closed | join(", ")))" else empty end,
		if .misplaced > 0 then "\(.misplaced) conferences restored outside the expected rooms (\(.expected_rooms)): \(.restored_to)" else empty end,
		if .stuck_in_room > 0 then "\(.stuck_in_room) conferences still in the switched room (e.g. \(.examples.stuck_in_room | join(", ")))" else empty end,
		if .redis_mysql_mismatches > 0 then "Redis and MySQL disagree on \(.redis_mysql_mismatches) conferences (\(.redis_mysql | map(select(.mismatches > 0) | "\(.platform) \(.redis): " + (.examples | join("; "))) | join(" | ")))" else empty end] | .[]' "$WORK/report-$name.json")
	while IFS= read -r l; do [ -n "$l" ] && fails+=("$l"); done <<<"$extra"
	case $step in
	host-mcu-failure)
		[ "$(jq '.restored_to["p1-r1"] // 0' "$WORK/report-$name.json")" -gt 0 ] ||
			fails+=("no conference of p1 hosted on drill-p2-r1-a was restored in p1-r1 by p1's css: $(jq -c .restored_to "$WORK/report-$name.json")") ;;
	room-switchback | platform-failback | platform-partition | zk-partition)
		[ "$(jq .restored "$WORK/report-$name.json")" = 0 ] ||
			fails+=("$(jq .restored "$WORK/report-$name.json") conferences moved by the switch-back (expected 0)") ;;
	*)
		[ "$(jq '.restored + .ended_on_purpose' "$WORK/report-$name.json")" -gt 0 ] ||
			fails+=("nothing was restored (expected the conferences of the failed MCUs/room/platform to move)") ;;
	esac
	jq '.failures = $ARGS.positional | .pass = (.failures | length == 0)' --args "${fails[@]}" <"$WORK/report-$name.json" >"$WORK/r.tmp" &&
		mv "$WORK/r.tmp" "$WORK/report-$name.json"
	[ ${#fails[@]} = 0 ]
}

# Before the fail-back: p1's simulators (empty: a dead platform's MCUs come
# back without conferences), p1's pms and rms, from the configs sandbox.sh
# start wrote, under the same names. Not p1's css: confdrctl platform failback
# refuses while one is live (it would act on the Redis being moved), and pms
# refuses while no pms of p1 is live.
bring_p1_back() {
	local d
	local n
	say "  p1's simulators, pms, rms and css back (run/p1/{pms,rms,css}*.conf): its css runs through the fail-back"
	start_sims p1
	for d in pms rms css; do
		for n in $(dnames p1 "$d"); do
			[ -s "$(dconf_of "$n")" ] || fail_setup "no $(dconf_of "$n") (written by sandbox.sh start)"
			pid_of "$n" >/dev/null || spawn_daemon "$n" "$d" "$(dconf_of "$n")"
		done
	done
	wait_for 30 "p1's pms live" p1_pms_live || warn "p1's pms is not live"
	wait_for 30 "p1's drill MCUs registered" drill_mcus_registered p1 || warn "p1's drill MCUs are not all up in its rms"
}
# p1_css_pids: the pids of p1's css instances, one line (fails if one is not running).
p1_css_pids() {
	local n out=()
	for n in $(dnames p1 css); do out+=("$(daemon_pid "$n")") || return 1; done
	echo "${out[*]}"
}
p1_css_waits() { ctl status --json | jq -e '[.daemons[] | select(.platform == "p1" and .daemon == "css" and .role == "active" and .stats.home_wait == true)] | length == 1' >/dev/null; }

# The hand-over seen by the CM: one create of ud-p1-r1-a every 250 ms through
# p1's broker while the fail-back runs (at most 480, 2 minutes); a line each
# in probe.txt: the send time (wall ms), then "ack MCU", "nack REASON" or
# "unanswered -".
probe_start() {
	wait_for 30 "p1's css active, acting as down until its Redis is home" p1_css_waits || warn "p1's css does not tell home_wait"
	rm -f "$WORK/probe.stop" "$WORK/probe.txt"
	(
		for ((i = 0; i < 480; i++)); do
			[ -e "$WORK/probe.stop" ] && break
			t=$(now_ms)
			"$BUILD/cmsim" create --platform p1 --amqp "$(amqp_at p1 cm)" --domain ud-p1-r1-a \
				--count 1 --e164-start "${t}99" --timeout 5 -q --json "$WORK/probe-1.json" >/dev/null 2>&1
			jq -r --arg t "$t" '"\($t) " + if .acked == 1 then "ack \(.confs[0].mcu // "-") \(.confs[0]["e164"])"
				elif .nacked == 1 then "nack \(.nack_reasons | keys[0])" else "unanswered -" end' "$WORK/probe-1.json" \
				>>"$WORK/probe.txt" 2>/dev/null || echo "$t unanswered -" >>"$WORK/probe.txt"
			sleep 0.25
		done
	) &
	PROBE_PID=$!
	say "  probing: a create of ud-p1-r1-a every 250 ms through p1's broker (pid $PROBE_PID)"
}
probe_stop() {
	touch "$WORK/probe.stop"
	wait "$PROBE_PID" 2>/dev/null || :
}

# probe_report UP_MS: the probe's answers around the announcement of p1 up, as JSON.
probe_report() {
	jq -R -s --argjson up "$1" '
		[split("\n")[] | select(length > 0) | split(" ") | {t: (.[0] | tonumber), what: .[1], detail: .[2], id: .[3]}] as $p |
		([$p[] | select(.what == "ack")] | first) as $first |
		{probes: ($p | length), acked: ([$p[] | select(.what == "ack")] | length),
		 platform_down: ([$p[] | select(.what == "nack" and .detail == "platform_down")] | length),
		 platform_down_after_up: ([$p[] | select(.what == "nack" and .detail == "platform_down" and .t >= $up)] | length),
		 other_nacks: [$p[] | select(.what == "nack" and .detail != "platform_down") | .detail],
		 unanswered: ([$p[] | select(.what != "ack" and .what != "nack")] | length),
		 nack_after_ack: ([$p[] | select(.what == "nack" and $first != null and .t > $first.t)] | length),
		 acks_off_p1: [$p[] | select(.what == "ack" and (.detail | startswith("mcu-p1-") | not)) | .id],
		 acked_e164s: [$p[] | select(.what == "ack") | .id],
		 window_s: (if $first == null then null else (($first.t - $up) / 1000) end),
		 last_platform_down_s: ([$p[] | select(.what == "nack" and .t >= $up) | (.t - $up) / 1000] | max)}' "$WORK/probe.txt"
}

p1_pms_live() { ctl status --json | jq -e '[.daemons[] | select(.platform == "p1" and .daemon == "pms" and .role == "active")] | length == 1' >/dev/null; }

# new_confs PLATFORM MCU_REGEX DOMAINS...: 20 new conferences; sets NEW_ACKED, NEW_IN.
new_confs() {
	local p=$1 re=$2 start
	shift 2
	start=$(now_ms)00
	NEW_ACKED=0 NEW_IN=0
	create "$p" 20 "$start" "$WORK/create-new.json" "$@" || warn "not all 20 new conferences were ACKed: $(jq -c '{acked, nacked, nack_reasons}' "$WORK/create-new.json" 2>/dev/null)"
	NEW_ACKED=$(jq -r '.acked // 0' "$WORK/create-new.json" 2>/dev/null || echo 0)
	NEW_IN=$(jq -r --arg re "$re" '[.confs[] | select(.mcu | test($re))] | length' "$WORK/create-new.json" 2>/dev/null || echo 0)
	add_home "$WORK/create-new.json" "$p"
}

# handover_check: p1's css ran through the fail-back (same pid); every probe
# answered, platform_down the only refusal, none after the first ACK, every
# ACK on p1's MCUs; the window in the report (.handover).
handover_check() {
	local r up pid fails=()
	r=$WORK/report-platform-switchback.json
	up=$(jq -r '.announcement.ts_ms // .injected_ms' "$r")
	if ! probe_report "$up" >"$WORK/handover.json"; then
		jq '.failures += ["the probe creates could not be read (probe.txt)"] | .pass = false' "$r" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$r"
		return 1
	fi
	pid=$(p1_css_pids) || pid=none
	[ "$pid" = "$P1_CSS_PID" ] || fails+=("p1's css did not run through the fail-back (pids $P1_CSS_PID before, $pid after)")
	jq -e '.unanswered == 0' "$WORK/handover.json" >/dev/null || fails+=("$(jq .unanswered "$WORK/handover.json") probe creates unanswered")
	jq -e '.other_nacks == []' "$WORK/handover.json" >/dev/null || fails+=("probe creates refused other than platform_down: $(jq -c .other_nacks "$WORK/handover.json")")
	jq -e '.acked > 0' "$WORK/handover.json" >/dev/null || fails+=("no probe create ACKed after the fail-back")
	jq -e '.nack_after_ack == 0' "$WORK/handover.json" >/dev/null || fails+=("$(jq .nack_after_ack "$WORK/handover.json") probe creates refused after the first ACK")
	jq -e '.acks_off_p1 == []' "$WORK/handover.json" >/dev/null || fails+=("probe creates ACKed off p1's MCUs: $(jq -c .acks_off_p1 "$WORK/handover.json")")
	jq '[.[], $h[0].acked_e164s[]]' --slurpfile h "$WORK/handover.json" "$WORK/acked.json" >"$WORK/acked.tmp" && mv "$WORK/acked.tmp" "$WORK/acked.json"
	jq -c --arg p p1 'reduce .acked_e164s[] as $e ({}; .[$e] = $p)' "$WORK/handover.json" >"$WORK/probe-home.json"
	jq -s '.[0] + .[1]' "$WORK/home.json" "$WORK/probe-home.json" >"$WORK/home.tmp" && mv "$WORK/home.tmp" "$WORK/home.json"
	say "hand-over: $(jq -c 'del(.acked_e164s)' "$WORK/handover.json")"
	jq --slurpfile h "$WORK/handover.json" '.handover = ($h[0] | del(.acked_e164s)) | .failures += $ARGS.positional |
		.pass = (.failures | length == 0)' --args "${fails[@]}" <"$r" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$r"
	[ ${#fails[@]} = 0 ]
}

# ---------------------------------------------------------------- partitions and power cuts

# The MCUs' side, every second while a fault lasts: a snapshot of the live
# simulators' state files and the number of E164s on two MCUs, one line
# "WALL_MS DUPLICATES" in samples.txt (at most 600 samples).
sampler_start() {
	rm -f "$WORK/sampler.stop" "$WORK/samples.txt"
	(
		for ((i = 0; i < 600; i++)); do
			[ -e "$WORK/sampler.stop" ] && break
			t=$(now_ms)
			if checker snapshot "${SIMS[@]}" --out "$WORK/sample.json" 2>/dev/null; then
				echo "$t $(jq '[group_by(.e)[] | select(length > 1)] | length' "$WORK/sample.json")" >>"$WORK/samples.txt"
			fi
			sleep 1
		done
	) &
	SAMPLER_PID=$!
}
sampler_stop() {
	[ -n "${SAMPLER_PID:-}" ] || return 0
	touch "$WORK/sampler.stop"
	wait "$SAMPLER_PID" 2>/dev/null || :
	SAMPLER_PID=
}
# sampler_json: {samples, max_duplicates, seconds_with_duplicates}
sampler_json() {
	jq -R -s '[split("\n")[] | select(length > 0) | split(" ") | (.[1] | tonumber)] |
		{samples: length, max_duplicates: (max // 0), seconds_with_duplicates: ([.[] | select(. > 0)] | length)}' \
		"$WORK/samples.txt" 2>/dev/null || echo '{"samples": 0, "max_duplicates": 0, "seconds_with_duplicates": 0}'
}

# partition_window "FAULT" "HEAL": sandbox.sh fault FAULT for PARTITION_S s
# while 15 creates go through each platform (1 a second) and the sampler
# runs; then sandbox.sh fault HEAL (HEAL_MS). The creates' results in
# create-part-P.json: answered by 60 s after the last, the heal included (a
# css cut from the majority leaves them queued for the leader after it).
PARTITION_S=20
partition_window() {
	local p j=() t0=$SECONDS
	# shellcheck disable=SC2086 # the fault's words
	"$SANDBOX" fault $1 >"$WORK/partition.log" 2>&1 ||
		fail_setup "sandbox.sh fault $1 failed: $(cat "$WORK/partition.log")"
	say "  $(tail -n 1 "$WORK/partition.log")"
	sampler_start
	for p in "${PLATFORMS[@]}"; do
		"$BUILD/cmsim" create --platform $p --amqp "$(amqp_at $p cm)" --domain "ud-$p-r1-a" --domain "ud-$p-r2-a" \
			--count 15 --rate 1 --e164-start "$(now_ms)${p#p}000" --timeout 60 -q --json "$WORK/create-part-$p.json" \
			>"$WORK/create-part-$p.txt" 2>&1 &
		j+=($!)
	done
	while [ $((SECONDS - t0)) -lt $PARTITION_S ]; do sleep 1; done
	# The cut ends when the heal begins: its first step (the zk-cut's rules
	# gone) reconnects p1 before the command returns, and what p1 does then
	# is no longer done while cut (a fresh-root run saw p1's pms re-elected
	# and announcing before the heal command had returned).
	HEAL_MS=$(now_ms)
	# shellcheck disable=SC2086
	"$SANDBOX" fault $2 >>"$WORK/partition.log" 2>&1 || fail_setup "sandbox.sh fault $2 failed"
	say "  healed after $((SECONDS - t0)) s: $(tail -n 1 "$WORK/partition.log")"
	wait "${j[@]}"
	say "  the creates made during the partition: $(for p in "${PLATFORMS[@]}"; do
		jq -c --arg p "$p" '{($p): {acked, nacked, unanswered, nack_reasons, ack_latency_ms}}' "$WORK/create-part-$p.json" 2>/dev/null; done | tr '\n' ' ')"
	sampler_stop
}

# partition_check: after platform-partition: no platform declared down, every
# create during the partition answered and ACKed on its own platform's MCUs,
# no E164 on two MCUs in any second; the new ones join the final check.
partition_check() { # SCENARIO
	local r=$WORK/report-$1.json fails=() p acked down from_p1
	for p in "${PLATFORMS[@]}"; do
		acked=$(jq -r '.acked // 0' "$WORK/create-part-$p.json" 2>/dev/null || echo 0)
		if [ "$1" = zk-partition ] && [ $p = p1 ]; then
			# the minority side: its creates wait for the heal and are
			# answered then, ACKed or (while rms re-learns its MCUs
			# after its re-election) refused: each one answered
			[ "$(jq -r '.unanswered // 15' "$WORK/create-part-$p.json" 2>/dev/null || echo 15)" = 0 ] ||
				fails+=("creates through p1 during the ZooKeeper cut unanswered: $(jq -c '{acked, nacked, unanswered, nack_reasons}' "$WORK/create-part-$p.json" 2>/dev/null)")
		else
			[ "$acked" = 15 ] || fails+=("only $acked of 15 creates through $p during the partition ACKed ($(jq -c '{nacked, unanswered, nack_reasons}' "$WORK/create-part-$p.json" 2>/dev/null))")
		fi
		[ "$(jq -r --arg p "mcu-$p-" '[.confs[] | select(.mcu != null and (.mcu | startswith($p) | not))] | length' "$WORK/create-part-$p.json" 2>/dev/null)" = 0 ] ||
			fails+=("creates through $p during the partition ACKed off $p's MCUs")
		add_home "$WORK/create-part-$p.json" $p
	done
	jq -s '[.[].confs[] | select(.mcu != null) | .["e164"]]' "$WORK"/create-part-p[12].json >"$WORK/acked.json"
	down=$(cat "$WORK"/watch-p*.jsonl 2>/dev/null | jq -c -s --argjson t "$INJECT_MS" \
		'[.[] | select(.ts_ms >= $t and .type == "pms_all_platform_ntf" and .body.state == "down") | .body.platform] | unique')
	[ "$down" = "[]" ] || fails+=("platforms declared down during the partition: $down")
	sampler_json >"$WORK/samples.json"
	jq -e '.max_duplicates == 0' "$WORK/samples.json" >/dev/null ||
		fails+=("E164s on two MCUs during the partition: $(jq -c . "$WORK/samples.json")")
	if [ "$1" = zk-partition ]; then
		# the minority side acts on no role change: p1's pms announces nothing
		from_p1=$(jq -c -s --argjson t "$INJECT_MS" --argjson h "$HEAL_MS" '[.[] | select(.ts_ms >= $t and .ts_ms < $h and (.src // "" | test("pms-p1|p1-pms")) and
			(.type == "pms_all_platform_ntf" or .type == "pms_all_room_ntf")) | "\(.type) \(.body.platform // .body.room) \(.body.state)"]' \
			"$WORK"/watch-p1.jsonl 2>/dev/null || echo '[]')
		[ "$from_p1" = "[]" ] || [ -z "$from_p1" ] || fails+=("p1's pms announced states while cut from the majority: $from_p1")
	fi
	jq --slurpfile s "$WORK/samples.json" '.mcu_samples = $s[0] | .failures += $ARGS.positional |
		.pass = (.failures | length == 0)' --args "${fails[@]}" <"$r" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$r"
	[ ${#fails[@]} = 0 ]
}

# replica_caught_up MASTER REPLICA: the replica's link up and its offset at the master's.
replica_caught_up() {
	local m r
	m=$(rcli "$1" info replication 2>/dev/null | tr -d '\r' | sed -n 's/^master_repl_offset://p')
	r=$(rcli "$2" info replication 2>/dev/null | tr -d '\r' | sed -n 's/^slave_repl_offset://p')
	[ -n "$m" ] && [ "$m" = "$r" ] && replica_linked "$2"
}

# isolation_check: after p1 was cut from p2 and the majority: p1 declared
# down (settled: its conferences on p2's MCUs), no E164 on two MCUs in any
# second, p1's css released (ended p1's conferences on p1's MCUs before p2
# ran them), the creates through p2 ACKed, each through p1 answered (ACKed
# before the release, or refused platform_down), p1 still down after the heal.
isolation_check() {
	local r=$WORK/report-platform-isolation.json fails=() p acked n
	sampler_json >"$WORK/samples.json"
	jq -e '.max_duplicates == 0' "$WORK/samples.json" >/dev/null ||
		fails+=("E164s on two MCUs at once during the isolation: $(jq -c . "$WORK/samples.json")")
	acked=$(jq -r '.acked // 0' "$WORK/create-part-p2.json" 2>/dev/null || echo 0)
	[ "$acked" = 15 ] || fails+=("only $acked of 15 creates through p2 during the isolation ACKed")
	n=$(jq -r '(.unanswered // 15) + ([.nack_reasons // {} | to_entries[] | select(.key != "platform_down") | .value] | add // 0)' \
		"$WORK/create-part-p1.json" 2>/dev/null || echo 15)
	[ "$n" = 0 ] || fails+=("$n creates through p1 during the isolation unanswered or refused other than platform_down: $(jq -c '{acked, nacked, unanswered, nack_reasons}' "$WORK/create-part-p1.json" 2>/dev/null)")
	for p in "${PLATFORMS[@]}"; do
		jq -c '{acked: [.confs[] | select(.mcu != null)]}' "$WORK/create-part-$p.json" >/dev/null 2>&1 &&
			jq --arg p "$p" '{confs: [.confs[] | select(.mcu != null)]}' "$WORK/create-part-$p.json" >"$WORK/create-part-$p-acked.json" &&
			add_home "$WORK/create-part-$p-acked.json" "$p"
	done
	grep -q 'ALARM critical platform_isolated' $(for n in $(dnames p1 css); do logfile "$n"; done) ||
		fails+=("p1's css did not release (no platform_isolated alarm in its log)")
	ctl status --json | jq -e '.platforms[] | select(.platform == "p1") | .state == "down"' >/dev/null ||
		fails+=("p1 is not down after the heal (the majority declared it down; fail-back is manual)")
	jq --slurpfile s "$WORK/samples.json" '.mcu_samples = $s[0] | .failures += $ARGS.positional |
		.pass = (.failures | length == 0)' --args "${fails[@]}" <"$r" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$r"
	[ ${#fails[@]} = 0 ]
}

# history_check: p1 powered off and its conferences on p2: 20 creates of p1's
# domains and 20 ends of p1's conferences through p2's css while p1's MariaDB
# is down; then p1's MariaDB and ZooKeeper member back: confdr_p1.confinfo
# catches up with the promoted Redis (compared), each conference one row, the
# 20 new there, the 20 ended closed there, none of them in confdr_p2.
history_check() {
	local r=$WORK/report-platform-power-off.json fails=() q n e164s
	say "platform-power-off: with p1's MariaDB down, 20 creates of p1's domains and 20 ends of p1's conferences through p2's css"
	"$BUILD/cmsim" create --platform p2 --amqp "$(amqp_at p2 cm)" --domain ud-p1-r1-a --domain ud-p1-r1-b \
		--domain ud-p1-r2-a --domain ud-p1-r2-b --count 20 --rate 50 --e164-start "$(now_ms)03" --timeout 30 -q \
		--json "$WORK/create-down.json" >"$WORK/create-down.txt" 2>&1
	n=$(jq -r '.acked // 0' "$WORK/create-down.json" 2>/dev/null || echo 0)
	[ "$n" = 20 ] || fails+=("only $n of 20 creates of p1's domains through p2 ACKed while p1 is down ($(jq -c '{nacked, unanswered, nack_reasons}' "$WORK/create-down.json" 2>/dev/null))")
	add_home "$WORK/create-down.json" p1
	jq '[.confs[:20][]["e164"]]' "$WORK/create-p1.json" >"$WORK/ended.json"
	# shellcheck disable=SC2046 # one --e164 E164 pair per word pair
	"$BUILD/cmsim" end --platform p2 --amqp "$(amqp_at p2 cm)" $(jq -r '.[] | "--e164 " + .' "$WORK/ended.json") \
		--rate 50 --timeout 30 -q --json "$WORK/end-down.json" >"$WORK/end-down.txt" 2>&1
	n=$(jq -r '.acked // 0' "$WORK/end-down.json" 2>/dev/null || echo 0)
	[ "$n" = 20 ] || fails+=("only $n of 20 ends of p1's conferences through p2 ACKed while p1 is down")
	say "platform-power-off: p1's MariaDB and ZooKeeper member back (sandbox.sh server start mariadb-p1 zookeeper-1)"
	"$SANDBOX" server start mariadb-p1 >"$WORK/p1-back.log" 2>&1 || fails+=("mariadb-p1 did not start: $(tail -n 3 "$WORK/p1-back.log")")
	"$SANDBOX" server start zookeeper-1 >>"$WORK/p1-back.log" 2>&1 || fails+=("zookeeper-1 did not start")
	p1_db_up
	# p1's Redis is the promoted replica (redis-p1 stays down with its host's broker)
	COMPARE_FAILED=
	checker compare --redis "p1=$(redis_hp redis-p1-replica)" --redis "p2=$(redis_hp redis-p2),$(redis_hp redis-p2-replica)" \
		"${DB[@]}" --retry 120 --json "$WORK/redis-mysql-back.json" >/dev/null || :
	[ -s "$WORK/redis-mysql-back.json" ] || echo '[]' >"$WORK/redis-mysql-back.json"
	n=$(jq '[.[].mismatches] | add // 0' "$WORK/redis-mysql-back.json")
	[ "$(jq length "$WORK/redis-mysql-back.json")" = 2 ] || fails+=("Redis and MySQL could not be compared once p1's MariaDB was back")
	[ "$n" = 0 ] || fails+=("p1's MySQL disagrees with its Redis on $n conferences once back: $(jq -c '[.[] | select(.mismatches > 0) | .examples]' "$WORK/redis-mysql-back.json")")
	q() { mysql_root "$1" -N -B "confdr_$1" -e "$2"; }
	e164s=$(jq -r '[.confs[]["e164"]] | map("'"'"'" + . + "'"'"'") | join(",")' "$WORK/create-down.json")
	[ -n "$e164s" ] || e164s="''"
	n=$(q p1 "SELECT COUNT(*) FROM (SELECT e164 FROM confinfo GROUP BY e164 HAVING COUNT(*) > 1) d")
	[ "$n" = 0 ] || fails+=("$n E164s with two rows in confdr_p1.confinfo")
	n=$(q p1 "SELECT COUNT(DISTINCT e164) FROM confinfo WHERE e164 IN ($e164s)")
	[ "$n" = "$(jq '.confs | length' "$WORK/create-down.json")" ] || fails+=("$n of the creates made while p1 was down in confdr_p1.confinfo")
	e164s=$(jq -r 'map("'"'"'" + . + "'"'"'") | join(",")' "$WORK/ended.json")
	n=$(q p1 "SELECT COUNT(*) FROM confinfo WHERE e164 IN ($e164s) AND end_ms IS NOT NULL")
	[ "$n" = 20 ] || fails+=("$n of the 20 ends made while p1 was down closed in confdr_p1.confinfo")
	n=$(q p2 "SELECT COUNT(*) FROM confinfo WHERE home_platform = 'p1'")
	[ "$n" = 0 ] || fails+=("$n rows of p1's conferences in confdr_p2.confinfo")
	# what runs now: every conference ACKed and not ended, once
	jq -s '[.[0].confs[]["e164"], .[1].confs[]["e164"], .[2].confs[]["e164"]] - .[3]' "$WORK/create-p1.json" \
		"$WORK/create-p2.json" "$WORK/create-down.json" "$WORK/ended.json" >"$WORK/acked.json"
	wait_for 20 "every conference not ended running" all_acked_running ||
		fails+=("not every conference ACKed and not ended runs: $(jq length "$WORK/acked.json") expected")
	snapshot "$WORK/final.json"
	[ "$(jq '[group_by(.e)[] | select(length > 1)] | length' "$WORK/final.json")" = 0 ] || fails+=("E164s on two MCUs at the end")
	jq --slurpfile h "$WORK/redis-mysql-back.json" '.history = {redis_mysql_after_back: $h[0]} | .failures += $ARGS.positional |
		.pass = (.failures | length == 0)' --args "${fails[@]}" <"$r" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$r"
	[ ${#fails[@]} = 0 ]
}

# ---------------------------------------------------------------- report

print_report() { # FILE
	jq -r '
		def n(x): if x == null then "-" else (x | tostring) end;
		def s(x): if x == null then "-" else ((x * 1000 | round) / 1000 | tostring) + " s" end;
		"",
		"drill \(.scenario): " + (if .pass then "PASS" else "FAIL" end),
		(if .confs == null then ((.failures // [])[] | "  FAILED: " + .), halt else empty end),
		"  conferences        \(.confs) created; running before \(.running_before), after \(.running_after)",
		"  restored           \(.restored) " + (.restored_to // {} | tostring) + "   ended on purpose \(.ended_on_purpose)   lost \(.lost)   duplicates \(.duplicates)",
		"  Redis vs MySQL     \(.redis_mysql_mismatches) mismatches (" + ((.redis_mysql // []) | map("\(.platform): \(.redis) \(.redis_open) open, MySQL \(.mysql_open)") | join("; ")) + ")",
		"  detect             " + s(.detect_s) + (if .announcement then "  (\(.announcement.type) \(.announcement.body.mcu // .announcement.body.room // .announcement.body.platform) \(.announcement.body.state) from \(.announcement.src))" else "  (no announcement seen)" end),
		"  restore            all " + s(.restore_all_s) + "   p50 " + s(.restore_p50_s) + "   p99 " + s(.restore_p99_s) + "  (from the \(.restore_from))",
		"  settled            \(.settled) after " + s(.settle_s),
		(if .new_created != null then "  new conferences    \(.new_created) ACKed, \(.new_in_room) on the expected MCUs" else empty end),
		(if .handover != null then "  hand-over          \(.handover.probes) probe creates: \(.handover.platform_down) platform_down (\(.handover.platform_down_after_up) after the announcement), \(.handover.acked) ACKed; first ACK " + s(.handover.window_s) + " after the announcement" else empty end),
		((.failures // [])[] | "  FAILED: " + .)' "$1"
}

# ---------------------------------------------------------------- main

mkdir -p "$RUN/drill"
say "scenario $SCENARIO, $N conferences, MCU capacity $CAP, list interval $LIST_MS ms, settle timeout $TIMEOUT s (run dir $RUN)"
[ -x "$BUILD/mcusim" ] && [ -x "$BUILD/cmsim" ] || say "simulators not built yet: sandbox.sh start builds them"
setup
create_all
say "waiting until the simulators' state files show all $N ACKed conferences"
wait_for $((30 + N / 500)) "all ACKed conferences in the state files" all_acked_running ||
	fail_setup "the state files do not show every ACKed conference ($(jq length "$WORK/snap.json") of $N)"

SEL_MCU='.type == "rms_all_mcu_ntf" and .body.state == "down" and (.body.mcu | startswith("mcu-p1-r1-b-"))'
SEL_REBOOT='.type == "rms_all_mcu_ntf" and .body.reason == "restarted" and (.body.mcu | startswith("mcu-p1-r1-b-"))'
mcu_sel() { echo ".type == \"rms_all_mcu_ntf\" and .body.state == \"down\" and (.body.mcu | startswith(\"$1\"))"; }
room_sel() { echo ".type == \"pms_all_room_ntf\" and .body.room == \"$1\" and .body.state == \"$2\""; }
plat_sel() { echo ".type == \"pms_all_platform_ntf\" and .body.platform == \"$1\" and .body.state == \"$2\""; }
# first_settled FIRST: the switch back is tried when the first phase settled
# (nothing lost, nothing twice), even if it failed another check.
first_settled() {
	jq -e '.settled == true and .lost == 0 and .duplicates == 0' "$WORK/report-$1.json" >/dev/null 2>&1 && SECOND=1
}
SECOND=0
# first_failed FIRST: the switch-back not tried; the report is the first phase's.
first_failed() {
	jq --arg f "$1" '.failures += ["the first phase (\($f)) failed: the switch back was not tried"]' \
		"$WORK/report-$1.json" >"$WORK/report-$SCENARIO.json"
}
rc=0
case $SCENARIO in
mcu-failure) phase mcu-failure "" "$SEL_MCU" mcu-failure '^p1-r1$' || rc=1 ;;
mcu-reboot | mcu-reboot-from-one) phase "$SCENARIO" "" "$SEL_REBOOT" "$SCENARIO" '^p1-r1$' || rc=1 ;;
# no boot: rms cannot tell the restart (nothing on the bus); css knows it from a list
mcu-reboot-no-boot) phase "$SCENARIO" "" "" "$SCENARIO" '^p1-r1$' || rc=1 ;;
room-failure) phase room-failure "" "$(room_sel p1-r2 abnormal)" room-failure '^p1-r1$' || rc=1 ;;
room-switch) phase room-switch p1-r1 "$(room_sel p1-r1 abnormal)" room-switch '^p1-r2$' || rc=1 ;;
platform-failure) phase platform-failure "" "$(plat_sel p1 down)" platform-failure '^p2-' || rc=1 ;;
main-room-failure) phase main-room-failure "" "$(plat_sel p1 down)" main-room-failure '^p2-' || rc=1 ;;
platform-power-off)
	phase platform-power-off "" "$(plat_sel p1 down)" platform-power-off '^p2-' || rc=1
	if jq -e '.settled == true' "$WORK/report-platform-power-off.json" >/dev/null 2>&1; then
		history_check || rc=1
	fi ;;
platform-partition | zk-partition)
	phase "$SCENARIO" "" "" "$SCENARIO" "" || rc=1
	if [ -s "$WORK/analysis-$SCENARIO.json" ]; then
		partition_check "$SCENARIO" || rc=1
		wait_for 20 "the creates made during the partition running" all_acked_running || :
		snapshot "$WORK/final.json"
		[ "$(jq '[group_by(.e)[] | select(length > 1)] | length' "$WORK/final.json")" = 0 ] || {
			jq '.failures += ["E164s on two MCUs at the end"] | .pass = false' "$WORK/report-$SCENARIO.json" >"$WORK/r.tmp" &&
				mv "$WORK/r.tmp" "$WORK/report-$SCENARIO.json"
			rc=1
		}
	fi
	if [ "$SCENARIO" = platform-partition ] && [ -s "$WORK/analysis-$SCENARIO.json" ]; then
		# Second phase: p1 cut from p2 and from zk, so p2's side keeps the majority.
		mv "$WORK/report-platform-partition.json" "$WORK/report-platform-cut.json"
		# What p1's css wrote while cut from p2 reaches p2's replica of its
		# Redis first (the replica is what p2 takes over from).
		wait_for 30 "redis-p1-replica caught up with redis-p1" replica_caught_up redis-p1 redis-p1-replica ||
			warn "redis-p1-replica is behind redis-p1: p2 takes over from what it has"
		say "platform-partition: second phase: p1 cut from p2 and from the ZooKeeper majority (zk)"
		P1_REDIS=$(redis_hp redis-p1-replica)
		phase platform-isolation "" "$(plat_sel p1 down)" platform-isolation '^p2-' || rc=1
		if [ -s "$WORK/analysis-platform-isolation.json" ]; then isolation_check || rc=1; fi
		jq --slurpfile f "$WORK/report-platform-cut.json" '.scenario = "platform-partition" | .first_phase = $f[0] |
			.pass = (.pass and ($f[0].pass // false))' "$WORK/report-platform-isolation.json" >"$WORK/report-platform-partition.json"
		SECOND=1
	fi ;;
room-switchback)
	phase room-switch p1-r1 "$(room_sel p1-r1 abnormal)" room-switch '^p1-r2$' || rc=1
	if first_settled room-switch; then
		HOLD_S=5
		phase room-switchback "" "$(room_sel p1-r1 normal)" room-switchback "" || rc=1
		if [ -s "$WORK/analysis-room-switchback.json" ]; then
			say "room-switchback: 20 new conferences for ud-p1-r1-a/b after the switch back"
			new_confs p1 '^mcu-p1-r1-' ud-p1-r1-a ud-p1-r1-b
		fi
	else
		first_failed room-switch
	fi ;;
platform-switchback)
	phase platform-failure "" "$(plat_sel p1 down)" platform-failure '^p2-' || rc=1
	if first_settled platform-failure; then
		HOLD_S=5
		say "platform-switchback: redis-p1 back (sandbox.sh server start redis-p1)"
		"$SANDBOX" server start redis-p1 >"$WORK/redis-p1-start.log" 2>&1 || fail_setup "redis-p1 did not start: $(tail -n 5 "$WORK/redis-p1-start.log")"
		# Not "| grep -q": with pipefail, confdrctl killed by SIGPIPE once grep
		# has its line made a loaded machine report the command missing.
		if ! grep -q 'platform failback' <<<"$(ctl --help 2>&1)"; then
			jq -n '{scenario: "platform-switchback", pass: false, failures: ["confdrctl platform failback: not implemented (confdrctl --help has no such command)"]}' >"$WORK/report-platform-switchback.json"
			rc=1
		else
			phase platform-switchback "" "$(plat_sel p1 up)" platform-failback "" || rc=1
			if [ -s "$WORK/report-platform-switchback.json" ] && [ -s "$WORK/probe.txt" ]; then
				handover_check || rc=1
			fi
			if [ -s "$WORK/analysis-platform-switchback.json" ]; then
				say "platform-switchback: 20 new conferences for p1's domains"
				new_confs p1 '^mcu-p1-' ud-p1-r1-a ud-p1-r1-b ud-p1-r2-a ud-p1-r2-b
				# p1's conferences still hosted on p2's MCUs are p1's css's to restore
				phase host-mcu-failure "" "$(mcu_sel mcu-p2-r1-a-)" host-mcu-failure '^(p1-r1|p1-r2|p2-r1|p2-r2)$' || rc=1
			fi
		fi
	else
		first_failed platform-failure
	fi ;;
esac

REPORT=$WORK/report-$SCENARIO.json
case $SCENARIO in
room-switchback | platform-switchback)
	first=room-switch
	[ $SCENARIO = platform-switchback ] && first=platform-failure
	if [ -n "${NEW_ACKED:-}" ]; then
		# The new ones must run once too: settled again with them, then Redis vs MySQL once more.
		jq '[.confs[]["e164"]]' "$WORK/create-new.json" >"$WORK/acked.json"
		# the hand-over's probe creates ACKed must run once too
		if [ -s "$WORK/handover.json" ]; then
			jq '. + $h[0].acked_e164s' --slurpfile h "$WORK/handover.json" "$WORK/acked.json" >"$WORK/acked.tmp" &&
				mv "$WORK/acked.tmp" "$WORK/acked.json"
		fi
		wait_for 20 "the new conferences in the state files" all_acked_running || :
		sleep $(((LIST_MS * 2 + 999) / 1000))
		snapshot "$WORK/final.json"
		dups=$(jq '[group_by(.e)[] | select(length > 1)] | length' "$WORK/final.json")
		compare_all "$WORK/redis-mysql-final.json" || :
		mm=$(jq '[.[].mismatches] | add // 0' "$WORK/redis-mysql-final.json")
		jq --argjson acked "$NEW_ACKED" --argjson in "$NEW_IN" --argjson dups "$dups" --argjson mm "$mm" --arg cf "$COMPARE_FAILED" \
			--slurpfile rm "$WORK/redis-mysql-final.json" '
			.new_created = $acked | .new_in_room = $in | .duplicates = ([.duplicates, $dups] | max) |
			.redis_mysql_mismatches = ([.redis_mysql_mismatches, $mm] | max) | .redis_mysql = $rm[0] |
			.failures += ([if $acked < 20 then "only \($acked) of 20 new conferences ACKed" else empty end,
				if $in < $acked then "only \($in) of \($acked) new conferences on the expected MCUs" else empty end,
				if $dups > 0 then "\($dups) E164s on two MCUs after the new creates" else empty end,
				if $mm > 0 then "Redis and MySQL disagree on \($mm) conferences after the new creates" else empty end,
				if $cf != "" then $cf else empty end]) |
			.pass = (.failures | length == 0)' "$REPORT" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$REPORT"
	fi
	jq --slurpfile f "$WORK/report-$first.json" '.scenario = "'$SCENARIO'" | .first_phase = $f[0] |
		.pass = (.pass and ($f[0].pass // false))' "$REPORT" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$REPORT"
	if [ $SCENARIO = platform-switchback ] && [ -s "$WORK/report-host-mcu-failure.json" ]; then
		jq --slurpfile h "$WORK/report-host-mcu-failure.json" '.host_mcu_phase = $h[0] | .pass = (.pass and ($h[0].pass // false))' \
			"$REPORT" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$REPORT"
	fi
	;;
esac
jq --argjson li "$LIST_MS" --argjson cap "$CAP" --argjson to "$TIMEOUT" --argjson rate "$RATE" \
	--argjson one $ONE_ROOM --slurpfile c1 "$WORK/create-p1.json" --slurpfile c2 "$WORK/create-p2.json" \
	'.config = {list_interval_ms: $li, mcu_capacity: $cap, mcus_per_simulator: 2, simulators_per_room: 2,
	  settle_timeout_s: $to, create_rate_per_platform: $rate, one_room: ($one == 1)} |
	 .created = {p1: $c1[0].acked, p2: $c2[0].acked,
	  ack_latency_ms: {p1: $c1[0].ack_latency_ms, p2: $c2[0].ack_latency_ms}}' "$REPORT" >"$WORK/r.tmp" && mv "$WORK/r.tmp" "$REPORT"
[ "$(jq -r '.pass' "$REPORT")" = true ] || rc=1
if [ $SECOND = 1 ]; then
	jq '.first_phase' "$REPORT" >"$WORK/first.json"
	print_report "$WORK/first.json" | sed '2s/^drill /drill (first phase) /'
fi
if jq -e '.host_mcu_phase' "$REPORT" >/dev/null 2>&1; then
	jq '.host_mcu_phase' "$REPORT" >"$WORK/third.json"
	print_report "$WORK/third.json" | sed '2s/^drill /drill (after the fail-back: a p2 MCU hosting p1 conferences killed) /'
fi
print_report "$REPORT"
[ -n "$JSON_OUT" ] && cp "$REPORT" "$JSON_OUT"
say "work files in $WORK; logs in $RUN/logs (drill-*, p1-css, ...)"
if [ $STOP_AT_END = 1 ]; then stop_all; say "daemons and drill simulators stopped"; fi
exit $rc
