#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds twice (plain and with
# AddressSanitizer + UndefinedBehaviorSanitizer), brings up the sandbox of real
# servers, runs unit, valgrind and integration tests through ctest, tears the
# sandbox down (also on failure) and ends with one line "N passed, N failed".
#
#   ./tests/run.sh            everything
#   ./tests/run.sh --unit     unit tests only (no servers)
#   ./tests/run.sh --no-asan  skip the sanitizer build
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

unit_only=0 asan=1
for a in "$@"; do
	case $a in
	--unit) unit_only=1 ;;
	--no-asan) asan=0 ;;
	-h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

passed=0 failed=0 summary=()
# Runs ctest in build dir $1 for label regex $2; adds its counts.
run_ctest() {
	local dir=$1 label=$2 log total nfail
	log=$(mktemp)
	say "ctest $dir -L $label"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir "$dir" -L "$label" --output-on-failure --timeout 900 2>&1 | tee "$log"
	total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$log" | tail -1)
	nfail=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
	if [ -z "$total" ]; then
		# ctest found nothing or died: count it as one failure, never as a pass.
		failed=$((failed + 1)); summary+=("$dir $label: no result")
	else
		passed=$((passed + total - nfail)); failed=$((failed + nfail))
		summary+=("$dir $label: $((total - nfail))/$total")
	fi
	grep -E '^\s+[0-9]+ - ' "$log" | sed 's/^/  FAILED /' >>"$top/build/failed-tests.txt" || true
	rm -f "$log"
}

rm -f build/failed-tests.txt
run_ctest build '^unit$'
command -v valgrind >/dev/null && run_ctest build '^valgrind$'
[ "$asan" = 1 ] && run_ctest build-asan '^unit$'

if [ "$unit_only" = 0 ]; then
	say "sandbox"
	export CONFDR_RUN_DIR=${CONFDR_RUN_DIR:-$top/run/test}
	cleanup() { ./deploy/sandbox.sh down >/dev/null 2>&1 || true; }
	trap cleanup EXIT
	if ./deploy/sandbox.sh up && eval "$(./deploy/sandbox.sh env)"; then
		run_ctest build '^integration$'
		[ "$asan" = 1 ] && run_ctest build-asan '^integration$'
		# The DR drills: load on the real servers; the plain build only (ASan would only slow them).
		run_ctest build '^drill$'
	else
		failed=$((failed + 1)); summary+=("sandbox: did not come up")
	fi
	say "sandbox down"
	./deploy/sandbox.sh down || { failed=$((failed + 1)); summary+=("sandbox: down left processes"); }
	trap - EXIT
fi

say "summary"
printf '  %s\n' "${summary[@]}"
[ -s build/failed-tests.txt ] && cat build/failed-tests.txt
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
