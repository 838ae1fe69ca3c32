#!/usr/bin/env bash
# Every example config in conf/ must pass the daemon's own check (-t), and
# every tests/fixtures/conf/bad-<daemon>-*.conf must be refused with exit 78
# and with each message its "# expect: ..." lines name.
set -uo pipefail
build=${1:?usage: check-configs.sh BUILD_DIR}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pass=0 fail=0
# bad-*-password-*.conf want this file readable by others whatever the
# umask of the checkout
chmod 644 "$top/tests/fixtures/conf/world-readable.password"

for d in css rms pms; do
	f=$top/conf/$d.conf
	if out=$("$build/confdr-$d" -t -c "$f" 2>&1); then
		pass=$((pass + 1))
	else
		echo "FAIL: $f refused by confdr-$d -t:"; echo "$out" | sed 's/^/    /'; fail=$((fail + 1))
	fi
done

for f in "$top"/tests/fixtures/conf/bad-*.conf; do
	[ -e "$f" ] || continue
	d=$(basename "$f" | cut -d- -f2)
	out=$("$build/confdr-$d" -t -c "$f" 2>&1); rc=$?
	ok=1
	[ "$rc" = 78 ] || { echo "FAIL: $f: exit $rc, want 78"; ok=0; }
	while IFS= read -r want; do
		want=${want//@FILE@/$f}
		grep -qF -- "$want" <<<"$out" || { echo "FAIL: $f: missing message: $want"; ok=0; }
	done < <(sed -n 's/^# expect: //p' "$f")
	[ -n "$(sed -n 's/^# expect: //p' "$f")" ] || { echo "FAIL: $f names no expected message"; ok=0; }
	if [ $ok = 1 ]; then pass=$((pass + 1)); else echo "$out" | sed 's/^/    /'; fail=$((fail + 1)); fi
done
echo "config files: $pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -gt 3 ]
