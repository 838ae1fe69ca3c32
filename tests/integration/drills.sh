#!/usr/bin/env bash
# The thirteen DR drills (docs/drills.md) at 1000 conferences each, against the
# sandbox that is up (tests/run.sh: CONFDR_RUN_DIR, sandbox env). ctest label
# "drill", not "integration": they load the real servers and restart the
# sandbox's daemons. Fails if any drill fails, or reports lost or duplicated
# conferences. Leaves the daemons and the drills' simulators stopped.
#   CONFDR_DRILLS="mcu-failure room-failure"  a subset;  CONFDR_DRILL_CONFS=N  another size
: "${CONFDR_SOURCE_DIR:?}" "${CONFDR_BINARY_DIR:?}" "${CONFDR_RUN_DIR:?run under the sandbox env}" "${CONFDR_ZK:?}"
set -uo pipefail

# The drills use the sandbox's daemons (chroot /dr), built in this build dir;
# the port base follows the sandbox's ZooKeeper port (base + 181).
export CONFDR_BUILD_DIR=$CONFDR_BINARY_DIR
export CONFDR_PORT_BASE=${CONFDR_PORT_BASE:-$((${CONFDR_ZK##*:} - 181))}
drill=$CONFDR_SOURCE_DIR/deploy/drill.sh
scenarios=${CONFDR_DRILLS:-mcu-failure mcu-reboot mcu-reboot-from-one mcu-reboot-no-boot room-failure room-switch room-switchback platform-failure platform-switchback platform-power-off platform-partition zk-partition main-room-failure}
confs=${CONFDR_DRILL_CONFS:-1000}
work=$(mktemp -d)
trap '"$drill" stop >/dev/null 2>&1; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

n=0 failed=0 summary=()
for s in $scenarios; do
	n=$((n + 1))
	echo "# drill $s, $confs conferences"
	"$drill" "$s" --confs "$confs" --json "$work/$s.json" 2>&1 | sed 's/^/#   /'
	rc=${PIPESTATUS[0]}
	line=$(jq -r '"lost \(.lost // "?") duplicates \(.duplicates // "?") restored \(.restored // "?") detect \(.detect_s // "-") s restore all \(.restore_all_s // "-") s settled \(.settled // "?")"' "$work/$s.json" 2>/dev/null || echo "no report")
	if [ "$rc" = 0 ] && jq -e '.pass == true and .lost == 0 and .duplicates == 0' "$work/$s.json" >/dev/null 2>&1; then
		echo "ok $n - drill $s: $line"
		summary+=("PASS $s: $line")
	else
		echo "not ok $n - drill $s (exit $rc): $line"
		# its failures, and those of its first phase (switch-backs, partitions)
		jq -r '((.failures // [])[] | "#   FAILED: " + .), ((.first_phase.failures // [])[] | "#   FAILED (first phase): " + .)' \
			"$work/$s.json" 2>/dev/null
		summary+=("FAIL $s: $line")
		failed=$((failed + 1))
	fi
done
echo "1..$n"
printf '# %s\n' "${summary[@]}"
[ "$failed" = 0 ]
