#!/usr/bin/env bash
# The multi-host sandbox's faults (docs/sandbox.md, "Faults"), each checked
# for what it does, against the multi-host sandbox that is up (tests/run.sh:
# lane b, before its drills; ctest label "drill", not "integration": it cuts
# the sandbox's own links and kills its servers). TAP output. At the end every
# link is healed and what was killed started again (sandbox.sh up).
: "${CONFDR_SANDBOX:?run under the sandbox env}" "${CONFDR_PORT_BASE:?}" "${CONFDR_ZK:?}" "${CONFDR_P1_AMQP_URL:?}"
set -uo pipefail
if [ "${CONFDR_SANDBOX_HOSTS:-}" != multi ]; then
	echo "Bail out! needs a multi-host sandbox (CONFDR_SANDBOX_HOSTS=multi deploy/sandbox.sh up)"
	exit 1
fi
sb=$CONFDR_SANDBOX
tag=cdr-$CONFDR_PORT_BASE
bin=${CONFDR_BINARY_DIR:-$(dirname "$sb")/../build}
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
# within S CMD...: CMD succeeds within S seconds (polled every 0.5 s).
within() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.5; done
}
trap '"$sb" fault heal >/dev/null 2>&1; "$sb" up >/dev/null 2>&1' EXIT
trap 'exit 1' INT TERM

# reach FROM HOST:PORT: a TCP connect from host FROM (ops: here) succeeds.
reach() {
	local pre=()
	[ "$1" = ops ] || pre=(ip netns exec "$tag-$1")
	"${pre[@]}" timeout 5 nc -z -w 2 "${2%:*}" "${2##*:}" 2>/dev/null
}
no_reach() { ! reach "$@"; }
p1_broker=${CONFDR_P1_AMQP_URL#*@}
p1_broker=${p1_broker%%/*}
IFS=, read -r zk1 zk2 zk3 <<<"$CONFDR_ZK"
# serving ADDR:PORT: the ZooKeeper member answers srvr as leader or follower.
serving() { grep -qE '^Mode: (leader|follower)' <<<"$(echo srvr | timeout 5 nc -q 1 -w 2 "${1%:*}" "${1##*:}" 2>/dev/null)"; }
not_serving() { ! serving "$1"; }
ctl_ok() { timeout 30 "$bin/confdrctl" --zk "$CONFDR_ZK" --timeout 10 topology show >/dev/null 2>&1; }
ns_empty() { [ -z "$(ip netns pids "$tag-$1")" ]; }

check "before: p2 reaches p1's broker ($p1_broker)" reach p2 "$p1_broker"
check "before: all three ZooKeeper members serve" within 30 eval 'serving $zk1 && serving $zk2 && serving $zk3'

"$sb" fault partition p1 p2 >/dev/null
check "partition p1 p2: p2 no longer reaches p1's broker" no_reach p2 "$p1_broker"
check "partition p1 p2: ops still reaches it" reach ops "$p1_broker"
check "partition p1 p2: zk still reaches it" reach zk "$p1_broker"
quiet() { "$@" >/dev/null; }
check "partition p1 p2 again: exit 0 (idempotent)" quiet "$sb" fault partition p1 p2
link_is() { [ "$("$sb" fault status | awk -v l="$1" '$1 == l { print $2 }')" = "$2" ]; }
all_links_up() { [ -z "$("$sb" fault status | awk 'NR > 1 && $2 != "up"')" ]; }
check "fault status: p1-p2 down" link_is p1-p2 down
"$sb" fault heal p1 p2 >/dev/null
check "heal p1 p2: p2 reaches p1's broker again" reach p2 "$p1_broker"

"$sb" fault partition-zk p1 >/dev/null
check "partition-zk p1: p1's member stops serving (within 30 s)" within 30 not_serving "$zk1"
check "partition-zk p1: p2's and zk's members serve (within 30 s)" within 30 eval 'serving $zk2 && serving $zk3'
check "partition-zk p1: ops still reaches p1's broker" reach ops "$p1_broker"
check "partition-zk p1: the ensemble takes requests (2 of 3)" within 30 ctl_ok
"$sb" fault heal >/dev/null
check "heal: p1's member serves again (within 30 s)" within 30 serving "$zk1"

"$sb" fault zk-stop 3 >/dev/null
check "zk-stop 3: member 3 does not answer" not_serving "$zk3"
check "zk-stop 3: the ensemble takes requests (2 of 3)" within 30 ctl_ok
"$sb" fault zk-start 3 >/dev/null
check "zk-start 3: member 3 serves" within 30 serving "$zk3"

"$sb" fault power-off zk >/dev/null
check "power-off zk: no process left in $tag-zk" ns_empty zk
check "power-off zk: member 3 does not answer" not_serving "$zk3"
check "power-off zk: members 1 and 2 serve" within 30 eval 'serving $zk1 && serving $zk2'
check "power-off zk again: exit 0 (idempotent)" quiet "$sb" fault power-off zk
"$sb" up >/dev/null 2>&1
check "up after the power cut: member 3 serves again" within 30 serving "$zk3"
check "up: every link up" all_links_up

echo "1..$n"
[ "$failed" = 0 ]
