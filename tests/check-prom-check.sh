#!/usr/bin/env bash
# tests/prom_check.c, the Prometheus text checker of tests/integration/metrics.sh,
# checked itself: every tests/fixtures/prom/good-*.prom passes, every bad-*.prom
# fails (exit 1) with each message its "# expect: ..." lines name.
set -uo pipefail
build=${1:?usage: check-prom-check.sh BUILD_DIR}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pass=0 fail=0
for f in "$top"/tests/fixtures/prom/good-*.prom; do
	if out=$("$build/prom_check" "$f" 2>&1); then
		pass=$((pass + 1))
	else
		echo "FAIL: $f refused:"; echo "$out" | sed 's/^/    /'; fail=$((fail + 1))
	fi
done
for f in "$top"/tests/fixtures/prom/bad-*.prom; do
	out=$("$build/prom_check" "$f" 2>&1); rc=$?
	ok=1
	[ "$rc" = 1 ] || { echo "FAIL: $f: exit $rc, want 1"; ok=0; }
	while IFS= read -r want; do
		grep -qF -- "$want" <<<"$out" || { echo "FAIL: $f: missing message: $want"; ok=0; }
	done < <(sed -n 's/^# expect: //p' "$f")
	if [ $ok = 1 ]; then pass=$((pass + 1)); else echo "$out" | sed 's/^/    /'; fail=$((fail + 1)); fi
done
echo "prom_check fixtures: $pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -ge 4 ]
