#!/usr/bin/env bash
# confdr-supervise against small shell commands (no servers): a crash loop
# is started again after 1 s, then 2 s; exit 0 and exit 78 are not started
# again; SIGTERM is passed on and ends it with the command's status; SIGHUP
# is passed on and the command keeps running. TAP output.
set -uo pipefail
build=${1:?usage: check-supervise.sh BUILD_DIR}
sup=$build/confdr-supervise
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0 failed=0
check() { # WHAT COMMAND...
	local what=$1
	shift
	n=$((n + 1))
	if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failed=$((failed + 1)); fi
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# A command that fails twice, then runs until told to stop.
cat >"$work/flaky.sh" <<'SH'
#!/bin/sh
echo x >>"$1"
[ "$(wc -l <"$1")" -le 2 ] && exit 3
trap 'echo hup >>"$1.hup"' HUP
trap 'exit 0' TERM
while :; do sleep 0.1; done
SH
chmod +x "$work/flaky.sh"
t0=$(now_ms)
"$sup" --name flaky -- "$work/flaky.sh" "$work/runs" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do [ "$(wc -l <"$work/runs" 2>/dev/null)" = 3 ] && break; sleep 0.1; done
t=$(($(now_ms) - t0))
check "two crashes, started a third time" [ "$(wc -l <"$work/runs" 2>/dev/null)" = 3 ]
between() { [ "$1" -ge "$2" ] && [ "$1" -lt "$3" ]; }
check "after 1 s and 2 s of back-off ($t ms)" between "$t" 2900 8000
check "the log says so" grep -q 'died (exit 3 after .* 2 in a row): started again in 2000 ms' "$work/log"
sleep 0.3
kill -HUP $pid
for _ in $(seq 30); do [ -s "$work/runs.hup" ] && break; sleep 0.1; done
hup_ok() { [ -s "$work/runs.hup" ] && kill -0 $pid; }
check "SIGHUP passed on, the command still runs" hup_ok
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM passed on: ended with the command's status 0 ($rc)" [ "$rc" = 0 ]
check "not started again after it" [ "$(wc -l <"$work/runs")" = 3 ]

"$sup" --name cfg -- sh -c 'exit 78' 2>"$work/log78"
rc=$?
cfg_ok() { [ "$rc" = 78 ] && grep -q 'not started again' "$work/log78"; }
check "exit 78 (configuration error): not started again, status 78 ($rc)" cfg_ok
timeout 10 "$sup" -- sh -c 'exit 0' 2>/dev/null
check "exit 0: ended at once with 0" [ $? = 0 ]
"$sup" 2>/dev/null
check "no command: exit 64" [ $? = 64 ]
"$sup" --max-ms 10 --min-ms 100 -- true 2>/dev/null
check "--max-ms below --min-ms: exit 64" [ $? = 64 ]
echo "1..$n"
[ $failed = 0 ]
