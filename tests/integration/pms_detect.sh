#!/usr/bin/env bash
# How fast and how surely p2's pms declares p1 down (docs/pms.md, "Platform
# health"), against the sandbox's real servers with pms's default beat
# settings (250 ms x 8 misses, peer_grace 5 s): p1's pms frozen for a second
# (SIGSTOP, SIGCONT) and a restart of the broker (p1's pms, rms and MCUs
# alive) declare nothing; a clean stop of p1's pms is declared after
# peer_grace, not before; kill -9 of p1's pms, rms and MCUs at once (a power
# cut, as far as one host can play it) is declared within a few seconds, not
# before (misses - 1) beats. How long each took is printed.
set -uo pipefail
. "${CONFDR_SOURCE_DIR:?}/tests/lib.sh"
t_init pmsdetect

servers_back() { "$CONFDR_SANDBOX" server start rabbitmq >/dev/null 2>&1; }
trap 't_cleanup; servers_back' EXIT

BEAT_MS=250 MISSES=8 GRACE_MS=5000
now_ms() { echo $(($(date +%s%N) / 1000000)); }
field_of() { # platform ID FIELD
	$ctl status --json 2>/dev/null | jq -r --arg id "$1" --arg f "$2" '.platforms[] | select(.platform == $id) | .[$f]'
}
is_state() { [ "$(field_of "$1" state)" = "$2" ]; }
link_is() { # INSTANCE LINK up|down
	[ "$($ctl status --json 2>/dev/null | jq -r --arg i "$1" --arg l "$2" '.daemons[] | select(.instance == $i) | .[$l]')" = "$3" ]
}
mcus_up() { # PLATFORM N: N of its MCUs are up
	[ "$($ctl status --json 2>/dev/null | jq --arg p "$1" '[.rooms[] | select(.platform == $p) | .mcus_up] | add')" = "$2" ]
}
reason_is() { # PLATFORM REASON DETAIL-PATTERN
	[ "$(field_of "$1" reason)" = "$2" ] && [[ "$(field_of "$1" detail)" == *"$3"* ]]
}

# The defaults under test: no beat settings here.
p1pms=$(conf p1 pms "[pms]
peer_grace = 5s")
p2pms=$(conf p2 pms "[pms]
peer_grace = 5s")
p1rms=$(conf p1 rms "[rms]
heartbeat_interval = 500ms
heartbeat_misses = 3")
start rms "$p1rms" "$work/p1-rms.log"
p1rms_pid=$started
start pms "$p1pms" "$work/p1-pms.log"
p1pms_pid=$started
start pms "$p2pms" "$work/p2-pms.log"
sims=()
for room in p1-r1 p1-r2; do
	CONFDR_P1_AMQP_URL=$CONFDR_P1_AMQP_URL "$bin/mcusim" --platform p1 --room $room --count 2 --prefix "t-$room" -q \
		>"$work/mcusim-$room.log" 2>&1 &
	sims+=($!)
	pids+=($!)
done

wait_for 30 "initial states written for every room and platform" bash -c \
	"[ \"\$($ctl status --json 2>/dev/null | jq '[.rooms[], .platforms[] | select(.epoch > 0)] | length')\" = 6 ]"
wait_for 30 "p2's pms reads p1's beats" grep -q "platform p1: its pms beats" "$work/p2-pms.log"
wait_for 30 "rms lists p1's four MCUs" mcus_up p1 4
check "p1 is up" is_state p1 up
epoch0=$(field_of p1 epoch)

# (b) p1's pms frozen for a second, less than 8 beats: not declared down.
kill -STOP "$p1pms_pid"
sleep 1
kill -CONT "$p1pms_pid"
sleep 3
check "a pms frozen for 1 s: p1 is still up" is_state p1 up
check "... with the same epoch (nothing was written)" [ "$(field_of p1 epoch)" = "$epoch0" ]
check "... and p2's pms never judged it gone" bash -c "! grep -q 'platform p1: its pms is judged gone' '$work/p2-pms.log'"

# (c) The broker restarts: pms, rms and the MCUs of p1 stay alive.
"$CONFDR_SANDBOX" server stop rabbitmq >/dev/null || not_ok "stop rabbitmq"
wait_for 30 "p1's pms sees amqp down" link_is t-p1-pms amqp down
"$CONFDR_SANDBOX" server start rabbitmq >/dev/null || not_ok "start rabbitmq"
wait_for 60 "p1's pms is back on amqp" link_is t-p1-pms amqp up
wait_for 60 "p1's rms is back on amqp" link_is t-p1-rms amqp up
wait_for 60 "p1's MCUs registered again" mcus_up p1 4
sleep 6 # beyond mcu_absent_grace: the MCU checks judge again
check "after a broker restart p1 is up" is_state p1 up
check "... and p2 is up" is_state p2 up
check "... no platform decision was written (epoch of p1 unchanged)" [ "$(field_of p1 epoch)" = "$epoch0" ]
check "... no platform_down alarm" bash -c "! grep -q 'platform_down' '$work/p1-pms.log' '$work/p2-pms.log'"

# (d) A clean stop of p1's pms (SIGTERM, as sandbox.sh stop does): its
# session closes, and p1 is declared down after peer_grace, not before.
t0=$(now_ms)
kill -TERM "$p1pms_pid"
wait "$p1pms_pid" 2>/dev/null
wait_for 30 "p1 is declared down after its pms stopped" is_state p1 down
stop_ms=$(($(field_of p1 since) - t0))
echo "# clean stop: p1 declared down $stop_ms ms after the SIGTERM (peer_grace $GRACE_MS ms)"
check "not before peer_grace less a beat ($stop_ms ms)" [ "$stop_ms" -ge $((GRACE_MS - BEAT_MS)) ]
check "its reason is pms_lost, the detail says none is live" reason_is p1 pms_lost 'no pms instance of the platform is live'
start pms "$p1pms" "$work/p1-pms.log"
p1pms_pid=$started
wait_for 30 "with its pms back, p1 is switched back" $ctl platform switch p1 --to normal
check "p1 up" is_state p1 up

# (a) kill -9 of p1's pms, rms and MCUs at once.
sleep 2 # beats of the new pms read for a while
t0=$(now_ms)
kill -KILL "$p1pms_pid" "$p1rms_pid" "${sims[@]}"
wait_for 10 "p1 is declared down after its processes were killed" is_state p1 down
kill_ms=$(($(field_of p1 since) - t0))
echo "# kill -9: p1 declared down $kill_ms ms after the kill (beat $BEAT_MS ms x $MISSES)"
check "not before (misses - 1) beats ($kill_ms ms)" [ "$kill_ms" -ge $(((MISSES - 1) * BEAT_MS)) ]
check "its reason is pms_lost, the detail says no beat" reason_is p1 pms_lost 'wrote no beat'

t_done
