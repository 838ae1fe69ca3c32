#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds twice (plain and with
# AddressSanitizer + UndefinedBehaviorSanitizer), runs the unit and valgrind
# tests, then the integration tests and DR drills in two parallel lanes, each
# with a sandbox of real servers of its own (run/test-a, run/test-b; ports
# from CONFDR_PORT_BASE, default 17000, and that + 1000): single-host for the
# integration tests, then multi-host for the drills; tears the sandboxes
# down (also on failure) and ends with one line "N passed, N failed".
# Lane a ends with the fault suite (tests/faults/run.sh, docs/reliability.md)
# on its multi-host sandbox: one count per scenario. Lane b runs a rolling
# restart under load (tests/integration/deploy.sh) on a new multi-host
# sandbox of its own.
# Lane b runs the benchmarks once (bench/run.sh --quick) after its
# integration tests, on its single-host sandbox: one count, for running
# through and reporting every figure, never for speed; then it builds the
# .deb files from the plain build and checks them uninstalled
# (tests/package.sh, docs/packaging.md): one count.
#
#   ./tests/run.sh            everything
#   ./tests/run.sh --unit     unit tests only (no servers)
#   ./tests/run.sh --faults   the fault suite only (plain build, a sandbox of its own)
#   ./tests/run.sh --no-asan  skip the sanitizer build
# CONFDR_INTEG_JOBS: integration tests at once in each lane (default 4).
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

unit_only=0 asan=1 faults_only=0
for a in "$@"; do
	case $a in
	--unit) unit_only=1 ;;
	--faults) faults_only=1 asan=0 ;;
	--no-asan) asan=0 ;;
	-h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown option $a (see --help)" >&2; exit 64 ;;
	esac
done

say() { printf '\n==> %s\n' "$*"; }
die() { echo "run.sh: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

say "dependencies"
./deploy/install-deps.sh || die "installing dependencies failed"

jobs=$(nproc 2>/dev/null || echo 2)
say "build (plain)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || die "cmake failed"
cmake --build build -j"$jobs" || die "build failed"
if [ "$asan" = 1 ]; then
	say "build (AddressSanitizer + UndefinedBehaviorSanitizer)"
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCONFDR_SANITIZE=ON >/dev/null || die "cmake (asan) failed"
	cmake --build build-asan -j"$jobs" || die "build (asan) failed"
fi

# Every ctest run and drill run writes one line "PASSED FAILED WHAT" to a
# file in $res; the summary adds them up (the lanes below are subshells).
res=$(mktemp -d)
n_res=0
record() { n_res=$((n_res + 1)); echo "$1 $2 $3" >"$res/r.$BASHPID.$n_res"; }

# run_ctest DIR LABEL [JOBS]: ctest in build dir DIR for label regex LABEL,
# JOBS tests at once (default 1).
run_ctest() {
	local dir=$1 label=$2 jobs=${3:-1} log total nfail
	log=$(mktemp)
	say "ctest $dir -L $label -j $jobs"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir "$dir" -L "$label" -j "$jobs" --output-on-failure --timeout 900 2>&1 | tee "$log"
	total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$log" | tail -1)
	nfail=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
	if [ -z "$total" ]; then
		# ctest found nothing or died: count it as one failure, never as a pass.
		record 0 1 "$dir $label: no result"
	else
		record $((total - nfail)) "$nfail" "$dir $label: $((total - nfail))/$total"
	fi
	grep -E '^\s+[0-9]+ - ' "$log" | sed 's/^/  FAILED /' >>"$res/failed-tests" || true
	rm -f "$log"
}

# run_drills NAMES...: the DR drills (tests/integration/drills.sh, plain
# build) against the sandbox in the environment; one count per drill.
run_drills() {
	local log ok nok
	log=$(mktemp)
	say "drills $* (build)"
	CONFDR_DRILLS="$*" CONFDR_BINARY_DIR=$top/build CONFDR_SOURCE_DIR=$top \
		timeout 1800 bash tests/integration/drills.sh 2>&1 | tee "$log"
	ok=$(grep -c '^ok ' "$log") nok=$(grep -c '^not ok ' "$log")
	if [ $((ok + nok)) = 0 ]; then
		record 0 1 "drills $*: no result"
	else
		record "$ok" "$nok" "drills $*: $ok/$((ok + nok))"
	fi
	# each failed drill with the reasons it gives (the summary is what a CI
	# log keeps in view)
	grep -E '^not ok |^#   FAILED' "$log" | sed 's/^/  FAILED /' >>"$res/failed-tests" || true
	rm -f "$log"
}

# run_bench: the benchmarks' smoke run (bench/run.sh --quick, docs/performance.md)
# on the single-host sandbox in the environment: they run and report every
# figure; how fast is not judged here (the machine is shared with the other lane).
BENCH_FIELDS='create_p50_ms create_floor_p50_ms create_ratio create_max_rate create_throughput restore_10k_s
restore_rate restore_floor_rate css_bytes_per_conf cpu_ms_per_create'
run_bench() {
	local log json=$res/bench.json missing
	log=$(mktemp)
	say "benchmarks, smoke run (bench/run.sh --quick)"
	timeout 900 ./bench/run.sh --quick --json "$json" 2>&1 | tee "$log"
	if [ "${PIPESTATUS[0]}" != 0 ] || ! [ -s "$json" ]; then
		record 0 1 "bench --quick: did not run through"
		tail -n 5 "$log" | sed 's/^/  FAILED bench: /' >>"$res/failed-tests"
	else
		missing=$(for f in $BENCH_FIELDS; do jq -e --arg f "$f" '.[$f] != null' "$json" >/dev/null || echo "$f"; done)
		if [ -n "$missing" ]; then
			record 0 1 "bench --quick: no figure for $(echo $missing)"
		else
			record 1 0 "bench --quick: every figure reported (create p50 $(jq .create_p50_ms "$json") ms, $(jq .create_throughput "$json")/s)"
		fi
	fi
	rm -f "$log"
}

# run_package: the .deb files made from the plain build by CPack and checked
# without installing them (tests/package.sh: content, conffiles, Depends, the
# man pages rendered); no server. One count, its checks named in the line.
run_package() {
	local log ok nok rc
	log=$(mktemp)
	say "packages (tests/package.sh --build-dir build)"
	timeout 600 bash tests/package.sh --build-dir "$top/build" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	ok=$(grep -c '^ok ' "$log") nok=$(grep -c '^not ok ' "$log")
	if [ "$rc" = 0 ] && [ "$ok" -gt 0 ] && [ "$nok" = 0 ]; then
		record 1 0 "package: $ok/$ok checks"
	else
		record 0 1 "package: $ok/$((ok + nok)) checks"
		grep '^not ok ' "$log" | sed 's/^/  FAILED package: /' >>"$res/failed-tests" || true
	fi
	rm -f "$log"
}

# run_faults: the multi-host sandbox's fault primitives (tests/integration/faults.sh).
run_faults() {
	local log ok nok
	log=$(mktemp)
	say "faults of the multi-host sandbox"
	CONFDR_BINARY_DIR=$top/build timeout 600 bash tests/integration/faults.sh 2>&1 | tee "$log"
	ok=$(grep -c '^ok ' "$log") nok=$(grep -c '^not ok ' "$log")
	if [ $((ok + nok)) = 0 ]; then record 0 1 "faults: no result"; else record "$ok" "$nok" "faults: $ok/$((ok + nok))"; fi
	grep '^not ok ' "$log" | sed 's/^/  FAILED faults: /' >>"$res/failed-tests" || true
	rm -f "$log"
}

# run_deploy: a rolling restart of p1's daemons under load (tests/integration/deploy.sh)
# on a multi-host sandbox of its own, made anew at the end of lane b.
run_deploy() {
	local log ok nok
	log=$(mktemp)
	say "rolling restart under load (deploy/confdr.sh)"
	CONFDR_BINARY_DIR=$top/build timeout 600 bash tests/integration/deploy.sh 2>&1 | tee "$log"
	# a bail-out after some checks is a failure, not fewer passes
	ok=$(grep -c '^ok ' "$log") nok=$(($(grep -c '^not ok ' "$log") + $(grep -c '^Bail out' "$log")))
	if [ $((ok + nok)) = 0 ]; then record 0 1 "deploy: no result"; else record "$ok" "$nok" "deploy: $ok/$((ok + nok))"; fi
	grep '^not ok \|^Bail out' "$log" | sed 's/^/  FAILED deploy: /' >>"$res/failed-tests" || true
	rm -f "$log"
}

# run_fault_suite: tests/faults/run.sh against the sandbox in the
# environment (a lane's), or one of its own; one count per scenario.
run_fault_suite() {
	local log json ok nok
	log=$(mktemp) json=$(mktemp)
	say "fault suite (tests/faults/run.sh)"
	timeout 2400 bash tests/faults/run.sh --keep --json "$json" 2>&1 | tee "$log"
	ok=$(jq '[.[] | select(.pass)] | length' "$json" 2>/dev/null) nok=$(jq '[.[] | select(.pass | not)] | length' "$json" 2>/dev/null)
	if [ -z "$ok" ] || [ $((ok + nok)) = 0 ]; then
		record 0 1 "fault suite: no result"
	else
		record "$ok" "$nok" "fault suite: $ok/$((ok + nok)) scenarios"
		jq -r '.[] | select(.pass | not) | "  FAILED fault suite: \(.scenario): \(.failures | join("; "))"' "$json" >>"$res/failed-tests"
	fi
	rm -f "$log" "$json"
}

if [ "$faults_only" = 1 ]; then
	export CONFDR_RUN_DIR=${CONFDR_RUN_DIR:-$top/run/test-faults} CONFDR_PORT_BASE=${CONFDR_PORT_BASE:-17000}
	trap './deploy/sandbox.sh down >/dev/null 2>&1' EXIT
	run_fault_suite
	./deploy/sandbox.sh down || record 0 1 "fault suite: sandbox down left processes"
	trap - EXIT
	unit_only=1 # nothing more: the summary
else
	run_ctest build '^unit$'
	command -v valgrind >/dev/null && run_ctest build '^valgrind$'
	[ "$asan" = 1 ] && run_ctest build-asan '^unit$'
fi

if [ "$unit_only" = 0 ]; then
	# Two lanes in parallel, each with a sandbox of its own (own run dir and
	# ports, nothing shared): the plain build's integration tests and half the
	# drills; the sanitizer build's integration tests and the other half. The
	# integration tests of a lane run INTEG_JOBS at once, each in a namespace
	# of its own on the lane's servers (tests/ns.sh; those that stop a server
	# get a private one); the drills after them, one at a time. The lanes do
	# not see each other.
	run_base=${CONFDR_RUN_DIR:-$top/run/test}
	# Measured on 2 cores with both lanes running (docs/testing.md).
	integ_jobs=${CONFDR_INTEG_JOBS:-4}
	port_base=${CONFDR_PORT_BASE:-17000}
	lane_down() { CONFDR_RUN_DIR=$run_base-$1 CONFDR_PORT_BASE=$2 ./deploy/sandbox.sh down; }
	cleanup() {
		lane_down a "$port_base" >/dev/null 2>&1
		lane_down b $((port_base + 1000)) >/dev/null 2>&1
		lane_down b-deploy $((port_base + 1000)) >/dev/null 2>&1
	}
	trap cleanup EXIT
	# lane NAME PORT_BASE BUILD_DIR DRILLS...: the integration tests on a
	# single-host sandbox (tests/ns.sh needs one), then the drills on a
	# multi-host one (docs/sandbox.md), in the same run dir and port base.
	lane() {
		local name=$1 base=$2 dir=$3
		shift 3
		export CONFDR_RUN_DIR=$run_base-$name CONFDR_PORT_BASE=$base
		if [ -n "$dir" ]; then
			say "lane $name: single-host sandbox (run dir $CONFDR_RUN_DIR, ports from $base)"
			if CONFDR_SANDBOX_HOSTS=single ./deploy/sandbox.sh up && eval "$(./deploy/sandbox.sh env)"; then
				run_ctest "$dir" '^integration$' "$integ_jobs"
				[ "$name" = b ] && run_bench
			else
				record 0 1 "lane $name: the single-host sandbox did not come up"
			fi
			say "lane $name: single-host sandbox down"
			./deploy/sandbox.sh down || record 0 1 "lane $name: sandbox down left processes"
		fi
		[ "$name" = b ] && run_package # no server: between the two sandboxes
		say "lane $name: multi-host sandbox for the drills"
		if CONFDR_SANDBOX_HOSTS=multi ./deploy/sandbox.sh up && eval "$(./deploy/sandbox.sh env)"; then
			[ "$name" = b ] && run_faults
			run_drills "$@"
			[ "$name" = a ] && run_fault_suite
		else
			record 0 1 "lane $name: the multi-host sandbox did not come up"
		fi
		say "lane $name: multi-host sandbox down"
		./deploy/sandbox.sh down || record 0 1 "lane $name: sandbox down left processes"
		if [ "$name" = b ]; then
			# The rolling restart on a sandbox of its own, made anew: on the
			# lane's, after its drills p1 was down (all 1,600 creates
			# refused platform_down), and after its other work 469 and 507
			# creates were refused no_capacity.
			export CONFDR_RUN_DIR=$run_base-$name-deploy
			rm -rf "$CONFDR_RUN_DIR"
			say "lane $name: a new multi-host sandbox for the rolling restart (run dir $CONFDR_RUN_DIR)"
			if CONFDR_SANDBOX_HOSTS=multi ./deploy/sandbox.sh up && eval "$(./deploy/sandbox.sh env)"; then
				run_deploy
			else
				record 0 1 "lane $name: the rolling restart's sandbox did not come up"
			fi
			./deploy/sandbox.sh down || record 0 1 "lane $name: sandbox down left processes"
		fi
		: >"$res/lane-$name.done"
	}
	say "integration tests and drills in two lanes (their lines prefixed [a] and [b])"
	asan_dir=
	[ "$asan" = 1 ] && asan_dir=build-asan
	lane a "$port_base" build mcu-failure mcu-reboot mcu-reboot-no-boot room-failure room-switch \
		platform-power-off zk-partition 2>&1 |
		sed -u 's/^/[a] /' &
	lane_a=$!
	lane b $((port_base + 1000)) "$asan_dir" mcu-reboot-from-one room-switchback platform-failure \
		platform-switchback main-room-failure platform-partition 2>&1 |
		sed -u 's/^/[b] /' &
	lane_b=$!
	wait $lane_a $lane_b
	trap - EXIT
fi

say "summary"
passed=0 failed=0
for f in "$res"/r.*; do
	[ -e "$f" ] || continue
	read -r p n what <"$f"
	passed=$((passed + p)) failed=$((failed + n))
	echo "  $what"
done
if [ "$unit_only" = 0 ]; then
	# A lane that died half-way counts as a failure, never as fewer passes.
	for l in a b; do
		[ -e "$res/lane-$l.done" ] || { failed=$((failed + 1)); echo "  lane $l: ended before it finished"; }
	done
fi
[ -s "$res/failed-tests" ] && cat "$res/failed-tests"
rm -rf "$res"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
