#!/usr/bin/env bash
# The attack suite, broker part (issue 22; docs/security.md): the forgeries
# an attacker with a platform's broker credentials tried, each with the
# credentials of each role that is not the sender, against p1's real css,
# rms and pms in a namespace of their own (tests/ns.sh). Each must be refused
# by the broker (403: the role may not write there; 406: a user_id that is
# not the connection's) or by the receiving daemon (a request answered
# forbidden, anything else dead-lettered, the refusal counted and logged),
# with nothing changed: the room stays normal and its creates stay in it, the
# conference runs, the MCU stays up and keeps its key. Each check also does
# the legitimate thing once, so a check cannot pass because everything fails.
set -uo pipefail
. "${CONFDR_SOURCE_DIR:?}/tests/lib.sh"
t_init attacksbroker

: "${CONFDR_P1_AMQP_URL_MCU:?}" "${CONFDR_P1_AMQP_URL_CM:?}" "${CONFDR_P1_AMQP_URL_OPS:?}"
url() { local v=CONFDR_P1_AMQP_URL${1:+_${1^^}}; echo "${!v}"; } # ROLE ("": the administrator)
# forge ROLE ARGS... FILE: the forger as ROLE's broker user; its one line in $work/forge.out
# and its exit status in $frc (tests/forge.c)
forge() {
	local role=$1
	shift
	"$bin/forge" --amqp "$(url "$role")" "$@" >"$work/forge.out" 2>&1
	frc=$?
}
msg() { # TYPE ID BODY -> file
	printf '{"type": "%s", "id": "%s", "ts": 0, "src": "%s", "body": %s}' "$1" "$2" "${4:-forged}" "$3" >"$work/$2.json"
	echo "$work/$2.json"
}
refused_by_broker() { [ "$frc" = 3 ] && grep -q "refused by the broker: $1" "$work/forge.out"; }
forbidden() { grep -q '"reason": *"forbidden"' "$work/forge.out" || { sed 's/^/# forge: /' "$work/forge.out"; false; }; }
logged() { grep -q "$2" "$work/$1.log"; } # LOG PATTERN
count_in() { grep -c "$2" "$work/$1.log"; }
redis() { redis-cli -h "${CONFDR_P1_REDIS%:*}" -p "${CONFDR_P1_REDIS#*:}" -n "$CONFDR_P1_REDIS_DB" "$@"; }
dead() { "$CONFDR_SANDBOX" rabbitmqctl -q list_queues -p "$CONFDR_P1_VHOST" name messages | awk '$1 == "confdr.dead.q" {print $2}'; }
mcu_field() { $ctl mcu list --json 2>/dev/null | jq -r --arg m "$1" --arg f "$2" '.[] | select(.mcu == $m) | .[$f]'; }
refusals() { $ctl status --json 2>/dev/null | jq --arg d "$1" '[.daemons[] | select(.daemon == $d and .platform == "p1") | .senders_refused] | add'; }
room_state() { $ctl status --json 2>/dev/null | jq -r --arg r "$1" '.rooms[] | select(.room == $r) | .state'; }

for q in mau.conf.q mau.cmu.q rms.req.q rms.res.q pms.req.q confdr.dead.q; do
	"$CONFDR_SANDBOX" rabbitmqctl purge_queue -p "$CONFDR_P1_VHOST" $q >/dev/null 2>&1
done
redis FLUSHDB >/dev/null

start rms "$(conf p1 rms "[rms]
heartbeat_interval = 200ms
heartbeat_misses = 10")" "$work/p1-rms.log"
start pms "$(conf p1 pms "[pms]
[room p1-r1]
mcus = no
[room p1-r2]
mcus = no")" "$work/p1-pms.log"
start pms "$(conf p2 pms "")" "$work/p2-pms.log"
start css "$(conf p1 css "[css]
create_timeout = 2s
[mysql]
user = $CONFDR_MYSQL_USER
password = $CONFDR_MYSQL_PASSWORD
tls_ca = ${CONFDR_TLS_CA:-}
migrations = $CONFDR_SOURCE_DIR/deploy/sql")" "$work/p1-css.log"
"$bin/mcusim" --platform p1 --room p1-r1 --prefix a-r1 --count 2 --list-interval 1000 --state "$work/a-r1.json" -q \
	>>"$work/mcusim.log" 2>&1 &
pids+=($!)
wait_for 30 "css consumes" grep -q "consuming mau.conf.q" "$work/p1-css.log"
wait_for 15 "rms has the 2 MCUs, as the mcu user registered them" bash -c \
	"[ \"\$($ctl mcu list --json 2>/dev/null | jq '[.[] | select(.state == \"up\")] | length')\" = 2 ]"
key0=$(mcu_field a-r1-01 key)

# The legitimate paths, once: a create from the CM's user.
"$bin/cmsim" create --platform p1 --domain ud-p1-r1-a --count 3 --e164-start 7300000000 --json "$work/c3.json" -q
check "the cm user's creates are ACKed, in p1-r1" \
	jq -e '.acked == 3 and ([.confs[].room] | unique) == ["p1-r1"]' "$work/c3.json"
e1=$(jq -r '.confs[0]["e164"]' "$work/c3.json")

# 1. A forged room state (issue 22: epoch 2^31-1 moved a room's conferences
#    and pinned css). Only pms may write pms.ntf.ex; the administrator may,
#    and css refuses it by its user_id.
room_ntf=$(msg pms_all_room_ntf fake-room '{"room": "p1-r1", "platform": "p1", "state": "abnormal", "manual": true, "reason": "forged", "since": 1, "epoch": 2147483647}' pms-p1)
for role in mcu cm ops css rms; do
	forge "$role" --exchange pms.ntf.ex "$room_ntf"
	check "room state from $role: refused by the broker (403)" refused_by_broker 403
done
forge "" --exchange pms.ntf.ex "$room_ntf"
check "room state from the administrator: the broker takes it" [ "$frc" = 0 ]
wait_for 10 "... css refuses it for its sender" logged p1-css "refused pms_all_room_ntf .*broker user confdr"
"$bin/cmsim" create --platform p1 --domain ud-p1-r1-a --count 1 --e164-start 7300000010 --json "$work/c1.json" -q
check "... and p1-r1's creates still go to p1-r1" jq -e '.acked == 1 and .confs[0].room == "p1-r1"' "$work/c1.json"
check "... p1-r1 is still normal" [ "$(room_state p1-r1)" = normal ]
# a user_id that is not the connection's: the broker refuses it for anyone
forge mcu --key rms.res.q --user-id pms "$room_ntf"
check "a user_id of another user (mcu as pms): refused by the broker (406)" refused_by_broker 406

# 2. A forged MCU notice ending someone's conference (issue 22: a made-up
#    sender ended it). Only MCUs write cmu.mau.ex.
ended=$(msg cmu_mau_confended_ntf fake-end "{\"e164\": \"$e1\", \"mcu\": \"a-r1-01\", \"reason\": \"forged\", \"epoch\": 1}")
for role in cm ops pms; do
	forge "$role" --exchange cmu.mau.ex --key a-r1-01 "$ended"
	check "conference ended from $role: refused by the broker (403)" refused_by_broker 403
done
forge "" --exchange cmu.mau.ex --key a-r1-01 "$ended"
wait_for 10 "conference ended from the administrator: css refuses it" logged p1-css "refused cmu_mau_confended_ntf .*broker user confdr"
check "... $e1 still runs" [ "$(redis HGET "conf:$e1" state)" = running ]

# 3. A forged MCU down notice (rms.ntf.ex: rms only) and a forged heartbeat
#    (rms.res.q takes anyone's writes: rms checks the user).
down=$(msg rms_all_mcu_ntf fake-down '{"mcu": "a-r1-01", "key": "a-r1-01", "room": "p1-r1", "platform": "p1", "state": "down", "reason": "forged", "epoch": 2147483647}' rms-p1)
for role in mcu cm ops css; do
	forge "$role" --exchange rms.ntf.ex "$down"
	check "MCU down notice from $role: refused by the broker (403)" refused_by_broker 403
done
beat=$(msg cmu_rms_heartbeat_ntf fake-beat '{"mcu": "a-r1-01", "seq": 9223372036854775807, "running_confs": 0, "used_ports": 0, "epoch": 0}')
for role in cm ops css; do
	forge "$role" --key rms.res.q "$beat"
done
wait_for 10 "heartbeats from cm, ops and css: rms refuses them for their sender" bash -c \
	"[ \$(grep -c 'refused cmu_rms_heartbeat_ntf' $work/p1-rms.log) -ge 2 ]"
sleep 3 # 15 heartbeat intervals
check "... a-r1-01 stays up" [ "$(mcu_field a-r1-01 state)" = up ]

# 4. A re-registration of a live MCU's id with another key (issue 22:
#    commands redirected). From other roles: forbidden; from another MCU
#    user: forbidden while it is up.
reg=$(msg cmu_rms_register_req fake-reg '{"mcu": "a-r1-01", "key": "evil", "room": "p1-r1", "platform": "p1", "capacity_confs": 10, "capacity_ports": 160, "h265": false, "res_1080p": true, "xmpu": false, "weight": 100, "priority": 10, "backup": false, "running_confs": 0, "used_ports": 0}')
for role in cm ops css; do
	forge "$role" --key rms.res.q --reply 10 "$reg"
	check "registration from $role: answered forbidden" forbidden
done
"$CONFDR_SANDBOX" rabbitmqctl -q add_user mcu-x "$(head -c 12 /dev/urandom | base64 | tr -d '/+=')" >/dev/null 2>&1
"$CONFDR_SANDBOX" rabbitmqctl -q set_permissions -p "$CONFDR_P1_VHOST" mcu-x '^(amq\.gen-.*)$' '^(amq\.default|cmu\.mau\.ex|amq\.gen-.*)$' \
	'^(mau\.cmcmu\.ex|rms\.ntf\.ex|amq\.gen-.*)$' >/dev/null
pw_x=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
"$CONFDR_SANDBOX" rabbitmqctl -q change_password mcu-x "$pw_x" >/dev/null
url_x=$(sed "s|://mcu:[^@]*@|://mcu-x:$pw_x@|" <<<"$CONFDR_P1_AMQP_URL_MCU")
"$bin/forge" --amqp "$url_x" --key rms.res.q --reply 10 "$reg" >"$work/forge.out" 2>&1
check "registration of the live a-r1-01 by another MCU user: answered forbidden" forbidden
check "... its key stays" [ "$(mcu_field a-r1-01 key)" = "$key0" ]
n0=$(refusals rms)
"$bin/forge" --amqp "$url_x" --key rms.res.q "$beat" >"$work/forge.out" 2>&1
wait_for 10 "... that user's heartbeat for it is refused (counted)" bash -c "[ \$($ctl status --json | jq '[.daemons[] | select(.daemon == \"rms\" and .platform == \"p1\") | .senders_refused] | add') -gt $n0 ]"
"$CONFDR_SANDBOX" rabbitmqctl -q delete_user mcu-x >/dev/null 2>&1

# 5. Operators' requests from other roles (issue 22: anyone could switch).
switch=$(msg ctl_pms_switch_req fake-switch '{"target": "room", "moid": "p1-r1", "on": true, "operator": "mallory"}')
for role in cm mcu css rms; do
	forge "$role" --key pms.req.q --reply 10 "$switch"
	check "room switch from $role: answered forbidden" forbidden
done
drain=$(msg ctl_rms_drain_req fake-drain '{"mcu": "a-r1-01", "drain": true, "operator": "mallory"}')
for role in cm mcu; do
	forge "$role" --key rms.req.q --reply 10 "$drain"
	check "MCU drain from $role: answered forbidden" forbidden
done
check "... p1-r1 still normal, a-r1-01 still up" bash -c \
	"[ \"\$($ctl status --json | jq -r '.rooms[] | select(.room == \"p1-r1\") | .state')\" = normal ] && [ \"\$($ctl mcu list --json | jq -r '.[] | select(.mcu == \"a-r1-01\") | .state')\" = up ]"
$ctl room switch p1-r2 --to backup >/dev/null 2>&1
check "... an operator's switch (ops) is taken" [ "$(room_state p1-r2)" = abnormal ]
$ctl room switch p1-r2 --to normal >/dev/null 2>&1

# 6. A create that is not the CM's: from an MCU's user (with its user_id,
#    and without one: this css takes no anonymous CM request), and from ops.
create=$(msg cm_mau_createconf_req fake-create '{"e164": "7399999999", "name": "x", "user_domain": "ud-p1-r1-a", "duration_min": 60}' cm)
forge mcu --key mau.conf.q --reply 10 "$create"
check "create from mcu: answered forbidden" forbidden
forge mcu --key mau.conf.q --no-user-id --reply 10 "$create"
check "create from mcu without user_id: answered forbidden" forbidden
forge ops --key mau.conf.q --reply 10 "$create"
check "create from ops: answered forbidden" forbidden
check "... no such conference" [ "$(redis EXISTS conf:7399999999)" = 0 ]
forge cm --key mau.conf.q --reply 10 "$create"
check "... the same create from cm: ACKed" grep -q mau_cm_createconf_ack "$work/forge.out"

# What was refused is counted and raised (powers of two), and what was not
# a request is kept in the dead-letter queue for an operator.
for d in css rms pms; do
	wait_for 5 "$d counted its refusals in its liveness node" bash -c \
		"$ctl status --json | jq -e '[.daemons[] | select(.daemon == \"$d\" and .platform == \"p1\") | .senders_refused] | add > 0'"
done
check "the notices refused are dead-lettered ($(dead) in confdr.dead.q)" [ "$(dead)" -ge 3 ]

echo "1..$checks"
[ "$failures" = 0 ]
