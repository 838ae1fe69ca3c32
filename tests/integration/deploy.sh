#!/usr/bin/env bash
# A rolling restart of p1's css, rms and pms (deploy/confdr.sh --manager
# sandbox rolling-restart) while the CM (cmsim) creates conferences on p1:
# every request answered once, none refused, every ACKed conference running
# on an MCU afterwards, a new active instance of each daemon, and every
# instance up and ready at the end. Before that, deploy/install.sh register
# into a ZooKeeper chroot of its own (read back, then removed); after it, a
# css as systemd would run it (NOTIFY_SOCKET, WATCHDOG_USEC): READY=1 as a
# standby, watchdog pings from its loop that stop while it stands still,
# STOPPING=1.
#
# Against the sandbox that is up (either layout, at least two instances of
# each daemon: CONFDR_INSTANCES=2, the default); its daemons are started
# (sandbox.sh start) if they are not; every platform must be up and every
# room normal. tests/run.sh runs it in lane b first on the multi-host
# sandbox, before the fault primitives and the drills (ctest label "drill":
# it restarts the sandbox's own daemons).
# TAP output. CONFDR_DEPLOY_CREATES (default 1600) at CONFDR_DEPLOY_RATE per
# second (default 40): the load must outlast the restart (about 10 s).
: "${CONFDR_SANDBOX:?run under the sandbox env}" "${CONFDR_RUN_DIR:?}" "${CONFDR_ZK:?}" "${CONFDR_P1_AMQP_URL:?}"
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
sb=$CONFDR_SANDBOX
bin=${CONFDR_BINARY_DIR:-$top/build}
export CONFDR_BUILD_DIR=${CONFDR_BUILD_DIR:-$bin}
run=$CONFDR_RUN_DIR
creates=${CONFDR_DEPLOY_CREATES:-1600} rate=${CONFDR_DEPLOY_RATE:-40}
work=$(mktemp -d)
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
bail() { echo "Bail out! $*"; exit 1; }
chroot_tmp=/deploy-test-$$
cleanup() {
	[ -n "${load:-}" ] && kill "$load" 2>/dev/null
	timeout 30 "$bin/ns_zk" "$CONFDR_ZK" "$chroot_tmp" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

instances=$(cat "$run/instances" 2>/dev/null || echo "${CONFDR_INSTANCES:-2}")
[ "$instances" -ge 2 ] || bail "the sandbox runs $instances instance of each daemon: a rolling restart needs two (CONFDR_INSTANCES=2)"
expect=$((6 * instances))
# confdrctl as the sandbox's operators and deploy user (deploy/lib.sh ctl)
PROG=deploy-test
# shellcheck source=../../deploy/lib.sh
. "$top/deploy/lib.sh"

# ---------------------------------------------------------------- register

jq -n --slurpfile t "$top/conf/sandbox-topology.json" --slurpfile e "$run/endpoints.json" \
	'{topology: $t[0], endpoints: $e[0]}' >"$work/platforms.json"
reg() { CONFDR_ZK_CHROOT=$chroot_tmp "$top/deploy/install.sh" register "$@" --build "$bin"; }
check "install.sh register FILE.json: exit 0" eval 'reg "$work/platforms.json" >"$work/register.out" 2>&1'
shown() {
	timeout 60 "$bin/confdrctl" --zk "$CONFDR_ZK" --chroot "$chroot_tmp" topology show --json 2>/dev/null |
		jq -e '(.platforms | length) == 2 and (.rooms | length) == 4 and (.user_domains | length) == 8' >/dev/null
}
check "the registered topology reads back from ZooKeeper $chroot_tmp (2 platforms, 4 rooms, 8 user domains)" shown
eps() { timeout 60 "$bin/confdrctl" --zk "$CONFDR_ZK" --chroot "$chroot_tmp" topology show --json 2>/dev/null | jq -e '.endpoints.p1 != null' >/dev/null; }
check "and its endpoints (p1's main room)" eps
jq '{topology: {platforms: .topology.platforms}}' "$work/platforms.json" >"$work/bad.json"
check "register of an invalid topology (rooms missing): exit 1" eval '! reg "$work/bad.json" >/dev/null 2>&1'
check "... and ZooKeeper keeps what was there" shown

# ---------------------------------------------------------------- the world

if compgen -G "$run/pids/drill-*.pid" >/dev/null; then
	"$sb" drill stop >"$work/drill-stop.log" 2>&1 || echo "# sandbox.sh drill stop failed"
fi
"$sb" start >"$work/start.log" 2>&1 || { tail -n 20 "$work/start.log"; bail "sandbox.sh start failed"; }
ctl status --wait 120 --expect "$expect" >/dev/null 2>&1 || bail "not all $expect daemons up and connected within 120 s"
all_ready() { [ "$(ctl status --json 2>/dev/null | jq '[.daemons[] | select(.ready)] | length')" = "$expect" ]; }
within() { local end=$((SECONDS + $1)); shift; until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.5; done; }
check "before: all $expect instances ready (\"ready\" in their liveness nodes)" within 60 all_ready
clean() {
	ctl status --json 2>/dev/null | jq -e '([.platforms[] | select(.state != "up")] | length) == 0 and
		([.rooms[] | select(.state != "normal")] | length) == 0' >/dev/null
}
# A platform down or a room switched (a drill before) refuses or moves what
# this test counts: said, not taken for the restart's fault.
within 60 clean || bail "a platform is down or a room abnormal before the restart: $(ctl status --json 2>/dev/null | jq -c '[.platforms[] | select(.state != "up") | .platform], [.rooms[] | select(.state != "normal") | .room]')"
actives() { ctl status --json 2>/dev/null | jq -r '[.daemons[] | select(.platform == "p1" and .role == "active") | "\(.daemon)=\(.instance)"] | sort | join(" ")'; }
before=$(actives)
echo "# p1's active instances before: $before"

# ---------------------------------------------------------------- the restart under load

"$bin/cmsim" create --platform p1 --domain ud-p1-r1-a --domain ud-p1-r1-b --domain ud-p1-r2-a --domain ud-p1-r2-b \
	--count "$creates" --rate "$rate" --timeout 60 --linger 3000 --retry 30 --json "$work/create.json" -q \
	>"$work/create.out" 2>&1 &
load=$!
sleep 3
t0=$SECONDS
"$top/deploy/confdr.sh" --manager sandbox --platform p1 --timeout 60 rolling-restart css rms pms >"$work/rolling.out" 2>&1
rc=$?
sed 's/^/# /' "$work/rolling.out"
check "confdr.sh rolling-restart css rms pms of p1: exit 0 ($((SECONDS - t0)) s)" [ $rc = 0 ]
check "it said each step: 3 daemons x 3 steps, and 3 'done'" \
	eval '[ "$(grep -cE "^confdr: [0-9]/3 " "$work/rolling.out")" = 9 ] && [ "$(grep -c " done in " "$work/rolling.out")" = 3 ]'
load_running() { kill -0 "$load" 2>/dev/null; }
check "the load was still running when the restart ended" load_running
wait "$load"
check "cmsim create ran through (exit 0)" [ $? = 0 ]
load=

h() { jq "[.history[] | $1] | length" "$work/create.json" 2>/dev/null || echo none; }
sent=$(h 'select(true)') acked=$(h 'select(.answer == "ack")') nacked=$(h 'select(.answer == "nack")')
unanswered=$(h 'select(.answer == null)') twice=$(h 'select(.answers > 1)') differs=$(h 'select(.differs)')
resent=$(h 'select((.resent // 0) > 0)')
echo "# cmsim: sent $sent, acked $acked, nacked $nacked, unanswered $unanswered, answered twice $twice, differently $differs, sent again $resent; latency $(jq -c .ack_latency_ms "$work/create.json" 2>/dev/null)"
check "all $creates creates sent" [ "$sent" = "$creates" ]
check "none unanswered" [ "$unanswered" = 0 ]
check "none refused (NACK: $(jq -c '[.history[] | select(.answer == "nack") | .reason] | group_by(.) | map({(.[0]): length}) | add // {}' "$work/create.json" 2>/dev/null))" [ "$nacked" = 0 ]
[ "$nacked" = 0 ] || echo "# the first refusals: $(jq -c '[.history[] | select(.answer == "nack")][:3]' "$work/create.json" 2>/dev/null)"
check "none sent again for want of an answer (cmsim --retry 30 was not needed)" [ "$resent" = 0 ]
check "none answered twice or differently" eval '[ "$twice" = 0 ] && [ "$differs" = 0 ]'

# lost: ACKed, yet running on no MCU (the simulators' state files)
running_e164s() {
	local f files=()
	for f in "$run"/sims/*.json; do [ -s "$f" ] && files+=("$f"); done
	[ ${#files[@]} -gt 0 ] && jq -r '.mcus[].confs[]."e164"' "${files[@]}" | sort -u
}
lost() {
	jq -r '.history[] | select(.answer == "ack") | ."e164"' "$work/create.json" | sort -u >"$work/acked"
	running_e164s >"$work/running"
	comm -23 "$work/acked" "$work/running" >"$work/lost"
	[ ! -s "$work/lost" ]
}
check "every ACKed conference runs on an MCU (lost: 0)" within 20 lost
[ -s "$work/lost" ] && echo "# lost: $(wc -l <"$work/lost"), e.g. $(head -n 3 "$work/lost" | tr '\n' ' ')"

after=$(actives)
echo "# p1's active instances after: $after"
changed() {
	local d b a
	for d in css rms pms; do
		b=$(tr ' ' '\n' <<<"$before" | grep "^$d=") a=$(tr ' ' '\n' <<<"$after" | grep "^$d=")
		[ -n "$a" ] && [ "$a" != "$b" ] || return 1
	done
}
check "each of css, rms, pms of p1 has another active instance than before" changed
check "after: all $expect instances up, connected and ready" within 60 all_ready
states_clean() {
	ctl status --json 2>/dev/null | jq -e '([.platforms[] | select(.state != "up")] | length) == 0 and
		([.rooms[] | select(.state != "normal")] | length) == 0' >/dev/null
}
check "after: every platform up, every room normal (the pms hand-over declared nothing)" states_clean
check "confdr.sh status lists p1's $((3 * instances)) instances, each ready" \
	eval '[ "$("$top/deploy/confdr.sh" --manager sandbox --platform p1 status | grep -c "ready true")" = $((3 * instances)) ]'

# ---------------------------------------------------------------- sd_notify

# A third css of p1, as systemd would run it: NOTIFY_SOCKET names a unix
# datagram socket of this test (nc -lkuU: the datagrams end up one after the
# other in its output), WATCHDOG_USEC 1 s (a ping every 500 ms).
notify_sock=$work/notify.sock
nc -lkuU "$notify_sock" >"$work/notify.out" 2>/dev/null &
nc_pid=$!
sed 's/^instance = .*/instance = p1-css-notify/' "$(dconf_of p1-css-2)" >"$work/css-notify.conf"
for _ in $(seq 50); do [ -S "$notify_sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$notify_sock WATCHDOG_USEC=1000000 "$bin/confdr-css" -c "$work/css-notify.conf" >"$work/css-notify.log" 2>&1 &
css_pid=$!
got() { grep -q -- "$1" "$work/notify.out"; }
pings() { grep -o 'WATCHDOG=1' "$work/notify.out" | wc -l; }
# the datagrams run together in nc's output: READY=1\nSTATUS=standby is one
ready_standby() { tr -d '\n' <"$work/notify.out" | grep -q 'READY=1STATUS=standby'; }
check "sd_notify: READY=1 with STATUS=standby from a css joining as a third instance (within 30 s)" within 30 ready_standby
sleep 2
a=$(pings)
check "sd_notify: WATCHDOG=1 every 500 ms from the loop (WATCHDOG_USEC 1 s): $a pings so far" [ "$a" -ge 4 ]
kill -STOP "$css_pid"
sleep 0.3
a=$(pings)
sleep 2
b=$(pings)
kill -CONT "$css_pid"
check "sd_notify: no ping while the loop stands still (SIGSTOP, 2 s): $a then $b" [ "$a" = "$b" ]
sleep 1.2
check "sd_notify: pings again after SIGCONT" [ "$(pings)" -gt "$b" ]
kill -TERM "$css_pid"
wait "$css_pid"
rc=$?
check "sd_notify: STOPPING=1 at SIGTERM, and the daemon exits 0 ($rc)" eval '[ $rc = 0 ] && got STOPPING=1'
kill "$nc_pid" 2>/dev/null
wait "$nc_pid" 2>/dev/null

# The conferences made here are ended (the sandbox is shared with what runs next).
jq '{confs: [.history[] | select(.answer == "ack") | {e164: ."e164"}]}' "$work/create.json" >"$work/acked.json" 2>/dev/null &&
	"$bin/cmsim" end --platform p1 --from-json "$work/acked.json" --rate 400 --timeout 60 -q >/dev/null 2>&1 ||
	echo "# ending the conferences made here failed"

echo "1..$n"
[ $failed = 0 ]
