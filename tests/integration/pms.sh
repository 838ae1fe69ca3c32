#!/usr/bin/env bash
# pms against the sandbox's real servers, in a ZooKeeper chroot of its own:
# initial states written and broadcast; a room whose mcusim processes are
# killed is declared abnormal within the configured time and the broadcast
# arrives; manual room and platform switches and switch-backs through
# confdrctl (a refused one too); a pms restart continues with the same state
# and a larger epoch; a platform whose pms is gone is declared down by its
# backup platform's pms. (The receivers' epoch rule for stale broadcasts is
# unit-tested in test_pms_health; css applies it in the css issue.)
set -uo pipefail
. "${CONFDR_SOURCE_DIR:?}/tests/lib.sh"
t_init pmstest

state_of() { # room|platform ID -> state
	$ctl status --json 2>/dev/null | jq -r --arg k "$1" --arg id "$2" '.[$k + "s"][] | select(.[$k] == $id) | .state'
}
field_of() { # room|platform ID FIELD
	$ctl status --json 2>/dev/null | jq -r --arg k "$1" --arg id "$2" --arg f "$3" '.[$k + "s"][] | select(.[$k] == $id) | .[$f]'
}
is_state() { [ "$(state_of "$1" "$2")" = "$3" ]; }

pms_extra="[pms]
peer_grace = 2s
peer_poll = 200ms
mcu_poll = 300ms
[room p1-r2]
mcus = yes
[room p1-r1]
mcus = yes"
p1pms=$(conf p1 pms "$pms_extra")
p2pms=$(conf p2 pms "[pms]
peer_grace = 2s
peer_poll = 200ms")
p1rms=$(conf p1 rms "[rms]
heartbeat_interval = 200ms
heartbeat_misses = 3")
start rms "$p1rms" "$work/p1-rms.log"
start pms "$p1pms" "$work/p1-pms.log"
p1pms_pid=$started
start pms "$p2pms" "$work/p2-pms.log"

wait_for 20 "initial states written for every room and platform" bash -c \
	"[ \"\$($ctl status --json 2>/dev/null | jq '[.rooms[], .platforms[] | select(.epoch > 0)] | length')\" = 6 ]"
check "rooms start normal" is_state room p1-r2 normal
check "platforms start up" is_state platform p1 up

# Two MCUs in p1-r2, then killed: the room goes abnormal.
CONFDR_P1_AMQP_URL=$CONFDR_P1_AMQP_URL "$bin/mcusim" --platform p1 --room p1-r2 --count 2 --prefix t-mcu -q \
	>"$work/mcusim.log" 2>&1 &
sim=$!
pids+=($sim)
wait_for 15 "rms and pms see the room's MCUs" bash -c \
	"[ \"\$($ctl status --json 2>/dev/null | jq '[.rooms[] | select(.room == \"p1-r2\")][0].mcus_up')\" = 2 ]"
epoch_before=$(field_of room p1-r2 epoch)
t0=$(($(date +%s%N) / 1000000))
kill -KILL $sim
wait_for 30 "killing the room's mcusim makes p1-r2 abnormal" is_state room p1-r2 abnormal
# From the kill to the decision written (its "since", stamped by pms):
# heartbeat 200 ms x 3 misses (+1 interval), an rms notice, one evaluation and
# a ZooKeeper write; about a second on a quiet machine. How long it took is a
# figure to report (the wait above is the bound); that it is this kill's
# decision, not an older one, is checked.
detect_ms=$(($(field_of room p1-r2 since) - t0))
echo "# room abnormal $detect_ms ms after the kill"
check "the decision was taken after the kill (since - kill: $detect_ms ms)" [ "$detect_ms" -ge 0 ]
check "the reason names the MCU check" bash -c "$ctl status --json | jq -r '.rooms[] | select(.room == \"p1-r2\") | .detail' | grep -q 'MCUs of the room are silent'"
check "the decision has a larger epoch" [ "$(field_of room p1-r2 epoch)" -gt "$epoch_before" ]
check "the broadcast went out (pms log)" grep -q "ALARM major room_abnormal p1-r2" "$work/p1-pms.log"
check "the mirror on p2 saw it and re-broadcast it" bash -c "grep -q 'room p1-r2 is abnormal (health_check)' '$work/p2-pms.log'"
check "confdrctl status shows it with the time of detection" bash -c "$ctl status | grep -E '^p1-r2 +p1 +abnormal +no +[0-9T:-]+Z'"

# Switching back a failing room is refused; forced, it goes.
$ctl room switch p1-r2 --to normal >"$work/out" 2>&1
rc=$?
check "switching back a room whose checks fail is refused (exit 1)" [ $rc = 1 ]
check "... with the reason" grep -q room_unhealthy "$work/out"
check "forced switch-back" $ctl room switch p1-r2 --to normal --force --reason "test"
check "p1-r2 is normal again" is_state room p1-r2 normal

# Manual DR on and off for p1-r1.
check "room switch p1-r1 --to backup" $ctl room switch p1-r1 --to backup --reason "maintenance" --operator tester
check "p1-r1 abnormal and manual" bash -c "[ \"\$($ctl status --json | jq -r '.rooms[] | select(.room == \"p1-r1\") | \"\(.state) \(.manual) \(.by)\"')\" = 'abnormal true tester' ]"
check "twice is accepted, unchanged" bash -c "$ctl room switch p1-r1 --to backup | grep -q 'it already was'"
check "alarm logged with who switched" grep -q "room p1-r1 is abnormal (manual_switch by tester: maintenance)" "$work/p1-pms.log"
e1=$(field_of room p1-r1 epoch)

# pms restart: the state stays, epochs continue.
kill -TERM "$p1pms_pid"
wait "$p1pms_pid" 2>/dev/null
start pms "$p1pms" "$work/p1-pms.log"
p1pms_pid=$started
sleep 1
check "after a pms restart p1-r1 is still abnormal and manual" bash -c "[ \"\$($ctl status --json | jq -r '.rooms[] | select(.room == \"p1-r1\") | \"\(.state) \(.manual) \(.epoch)\"')\" = 'abnormal true $e1' ]"
wait_for 10 "the restarted pms switches back" $ctl room switch p1-r1 --to normal
check "the epoch sequence continues" [ "$(field_of room p1-r1 epoch)" -gt "$e1" ]
check "p1 stayed up across the short pms restart" is_state platform p1 up

# Wrong owner and unknown names.
check "an unknown room is refused (exit 1)" bash -c "$ctl room switch p9-r9 --to backup; [ \$? = 1 ]"
check "bad --to is a usage error (exit 64)" bash -c "$ctl room switch p1-r1 --to sideways; [ \$? = 64 ]"

# Platform switch through the backup platform's pms (p2 for p1), and back.
check "platform switch p1 --to backup" $ctl platform switch p1 --to backup --operator tester
check "p1 is down (manual)" bash -c "[ \"\$($ctl status --json | jq -r '.platforms[] | select(.platform == \"p1\") | \"\(.state) \(.manual)\"')\" = 'down true' ]"
check "platform switch p1 --to normal" $ctl platform switch p1 --to normal
check "p1 is up" is_state platform p1 up

# p1's pms killed: its beats stop, p2's pms declares p1 down after 8 beats
# of 250 ms (tests/integration/pms_detect.sh measures it).
kill -KILL "$p1pms_pid"
wait_for 15 "p1 is declared down when its pms is gone" is_state platform p1 down
check "its reason is pms_lost" [ "$(field_of platform p1 reason)" = pms_lost ]
check "switching p1 back without a live pms is refused" bash -c "$ctl platform switch p1 --to normal; [ \$? = 1 ]"
start pms "$p1pms" "$work/p1-pms.log"
wait_for 10 "with its pms back, p1 is switched back" $ctl platform switch p1 --to normal
check "p1 up" is_state platform p1 up

echo "1..$checks"
[ "$failures" = 0 ]
