#!/usr/bin/env bash
# css against the sandbox's real servers in a namespace of its own
# (tests/ns.sh: RabbitMQ vhosts, a Redis database, MariaDB databases and a
# ZooKeeper chroot no other test uses), with rms, pms, mcusim
# and cmsim speaking the real protocol:
#   1,000 creates all ACKed once, present in Redis, MySQL and on the MCUs alike,
#   spread over the MCUs; query and list through cmsim, confdrctl conf show;
#   an end closed in MySQL with its reason, the same end again;
#   an MCU killed (100 conferences in its room): those it ran restored on the
#   other MCUs of the room, each once, with a new generation;
#   MCUs restarted empty: the conferences missing from their lists restored
#   (or, when rms saw them down first, restored in the backup room);
#   css killed (-9) in the middle of 500 creates: each answered (a repeat is
#   the same answer, never a different one), none lost; a conference Redis
#   does not know is ended on its MCU (orphan);
#   public templates published into Redis and kept in sync;
#   a billing record (bmc.cdr.q) for every conference ended;
#   conferences end at their planned end, never before it (how late: reported).
# The request paths one by one (extend, rename, every NACK, unknown and
# unreadable requests, restart, MCU loss, room notices) are test_css.c's.
# The test owns its namespace's p1 Redis database and MariaDB database (both
# are emptied at start, as a failed earlier run may have left them).
set -uo pipefail
. "${CONFDR_SOURCE_DIR:?}/tests/lib.sh"
t_init csstest

redis() { redis-cli -h "${CONFDR_P1_REDIS%:*}" -p "${CONFDR_P1_REDIS#*:}" -n "$CONFDR_P1_REDIS_DB" "$@"; }
# MariaDB over TCP is TLS-only in the sandbox: the client checks the server's certificate.
mysql_tls=${CONFDR_TLS_CA:+--ssl-ca=$CONFDR_TLS_CA --ssl-verify-server-cert}
sql() {
	# shellcheck disable=SC2086 # $mysql_tls: words
	mysql $mysql_tls -h "$CONFDR_MYSQL_HOST" -P "$CONFDR_MYSQL_PORT" -u"$CONFDR_MYSQL_USER" -p"$CONFDR_MYSQL_PASSWORD" \
		"$CONFDR_P1_MYSQL_DB" -N -B -e "$1"
}
cm() { "$bin/cmsim" "$@" --platform p1 -q; }
sim() { # ROOM PREFIX EXTRA...: an mcusim in the background; $started is its pid
	local room=$1 prefix=$2; shift 2
	"$bin/mcusim" --platform p1 --room "$room" --prefix "$prefix" --list-interval 1000 \
		--state "$work/$prefix.json" -q "$@" >>"$work/mcusim-$prefix.log" 2>&1 &
	pids+=($!)
	started=$!
}
on_mcus() { # PREFIX: the E164s the simulator of PREFIX runs, one per line (fails if unreadable)
	local out
	out=$(jq -r '.mcus[].confs[]["e164"]' "$work/$1.json") || return 1
	[ -z "$out" ] || sort <<<"$out"
}
not_on_mcus() { # PREFIX PATTERN: no E164 the simulator runs matches the grep pattern
	local out
	out=$(on_mcus "$1") || return 1
	! grep -q "$2" <<<"$out"
}
export -f on_mcus not_on_mcus
export work
json_field() { jq -r "$2" "$1"; }
registered() { # PREFIX COUNT: rms knows COUNT MCUs of PREFIX up
	[ "$($ctl mcu list --json 2>/dev/null | jq --arg p "$1" '[.[] | select((.mcu | startswith($p)) and .state == "up")] | length')" = "$2" ]
}

# Requests and answers a failed earlier run may have left in p1's queues go.
for q in mau.conf.q mau.cmu.q bmc.cdr.q; do "$CONFDR_SANDBOX" rabbitmqctl purge_queue -p "$CONFDR_P1_VHOST" $q >/dev/null 2>&1; done
redis FLUSHDB >/dev/null
sql "DELETE FROM confinfo; DELETE FROM conf_template" 2>/dev/null || true

start rms "$(conf p1 rms "[rms]
heartbeat_interval = 200ms
heartbeat_misses = 10
broker_return_grace = 3s")" "$work/p1-rms.log"
# The MCUs come and go on purpose here: pms's room checks by MCUs are off
# (a room whose MCUs all fail would be abnormal, and css would place its
# conferences in the backup rooms: tests/integration/drills.sh covers that).
start pms "$(conf p1 pms "[pms]
peer_grace = 5s

[room p1-r1]
mcus = no

[room p1-r2]
mcus = no")" "$work/p1-pms.log"
start pms "$(conf p2 pms "[pms]
peer_grace = 5s")" "$work/p2-pms.log" # p2 up: its domains are its own css's
css_conf=$(conf p1 css "[css]
create_timeout = 10s
end_timeout = 2s
expiry_tick = 200ms
list_grace = 1s
template_refresh = 500ms
resume_window = 5s
[mysql]
user = $CONFDR_MYSQL_USER
password = $CONFDR_MYSQL_PASSWORD
tls_ca = ${CONFDR_TLS_CA:-}
migrations = $CONFDR_SOURCE_DIR/deploy/sql")
start css "$css_conf" "$work/p1-css.log"
css_pid=$started
# t-r1 answers a create it runs already with NACK exists (the contract's
# other reading than the ACK again): css takes it as the ACK, which the kill
# of css during 500 creates below relies on.
sim p1-r1 t-r1 --count 4 --capacity 500 --exists-nack
wait_for 30 "css consumes once pms answered and its view is rebuilt" grep -q "consuming mau.conf.q" "$work/p1-css.log"
wait_for 15 "rms has the 4 MCUs of p1-r1" registered t-r1 4

# Five conferences of one minute, checked at the end (expiry).
cm create --domain ud-p1-r1-b --count 5 --rate 50 --duration-min 1 --e164-start 7100000000 --json "$work/exp.json"
check "5 one-minute conferences ACKed" [ "$(json_field "$work/exp.json" .acked)" = 5 ]

# 1,000 creates.
cm create --domain ud-p1-r1-a --domain ud-p1-r1-b --count 1000 --rate 500 --e164-start 7200000000 \
	--json "$work/c1000.json"
rc=$?
check "1000 creates: every request answered exactly once (cmsim exit $rc)" [ $rc = 0 ]
check "... all 1000 ACKed ($(json_field "$work/c1000.json" .acked))" [ "$(json_field "$work/c1000.json" .acked)" = 1000 ]
echo "# create latency ms: $(jq -c .ack_latency_ms "$work/c1000.json")"
check "1005 records in Redis" [ "$(redis SCARD confs:all)" = 1005 ]
check "... all running" [ "$(redis --no-raw EVAL "local n=0 for _,e in ipairs(redis.call('SMEMBERS','confs:all')) do if redis.call('HGET','conf:'..e,'state')=='running' then n=n+1 end end return n" 0 | tr -dc 0-9)" = 1005 ]
wait_for 10 "1005 running rows in MySQL" bash -c "[ \"\$(mysql $mysql_tls -h $CONFDR_MYSQL_HOST -P $CONFDR_MYSQL_PORT -u$CONFDR_MYSQL_USER -p$CONFDR_MYSQL_PASSWORD $CONFDR_P1_MYSQL_DB -N -B -e \"SELECT COUNT(*) FROM confinfo WHERE state = 'running'\")\" = 1005 ]"
check "Redis and MySQL hold the same conferences" \
	diff <(redis SMEMBERS confs:all | sort) <(sql "SELECT e164 FROM confinfo WHERE state = 'running'" | sort)
wait_for 5 "the MCUs run exactly those conferences" bash -c "diff <(on_mcus t-r1) <(redis-cli -h ${CONFDR_P1_REDIS%:*} -p ${CONFDR_P1_REDIS#*:} -n $CONFDR_P1_REDIS_DB SMEMBERS confs:all | sort)"
# rms's policy (weighted least load) spreads them; its own test checks the exact
# split of a bulk allocation. Here, under load (and ASan), counts can lag a
# heartbeat behind: each MCU gets a fair share, not an exact one.
echo "# conferences per MCU: $(jq -c '[.mcus[].confs | length]' "$work/t-r1.json")"
check "the MCUs share the load (each 190..312 of 1005)" bash -c "jq -e '[.mcus[].confs | length] | all(. >= 190 and . <= 312)' $work/t-r1.json"

e1=$(jq -r '.confs[0]["e164"]' "$work/c1000.json")
e2=$(jq -r '.confs[1]["e164"]' "$work/c1000.json")
check "query: the record ($e1)" bash -c "$bin/cmsim query --platform p1 --e164 $e1 --json | jq -e '.conf.state == \"running\" and .conf.host_platform == \"p1\"'"
check "list: a domain's 500 conferences" bash -c "[ \"\$($bin/cmsim list --platform p1 --domain ud-p1-r1-a --json | jq '.confs | length')\" = 500 ]"
check "confdrctl conf show" bash -c "$ctl conf show $e1 | grep -q running"

msg() { # TYPE ID BODY -> file
	printf '{"type": "%s", "id": "%s", "ts": 0, "src": "cm", "body": %s}' "$1" "$2" "$3" >"$work/msg.json"
	echo "$work/msg.json"
}
"$bin/cmsim" send --platform p1 --file "$(msg cm_mau_endconf_req end-$$ "{\"e164\": \"$e2\"}")" >"$work/out" 2>&1
check "end: ACKed" grep -q mau_cm_endconf_ack "$work/out"
check "... gone from Redis" [ "$(redis EXISTS "conf:$e2")" = 0 ]
wait_for 5 "... closed in MySQL with its reason" bash -c "[ \"\$(mysql $mysql_tls -h $CONFDR_MYSQL_HOST -P $CONFDR_MYSQL_PORT -u$CONFDR_MYSQL_USER -p$CONFDR_MYSQL_PASSWORD $CONFDR_P1_MYSQL_DB -N -B -e \"SELECT state, end_reason FROM confinfo WHERE e164 = '$e2'\")\" = \"ended	cm_request\" ]"
check "... and ended on its MCU" not_on_mcus t-r1 "^$e2\$"
"$bin/cmsim" send --platform p1 --file "$work/msg.json" >"$work/out" 2>&1
check "the same end request again: the same answer, not a second end" grep -q mau_cm_endconf_ack "$work/out"
"$bin/cmsim" send --platform p1 --file "$(msg cm_mau_endconf_req end2-$$ "{\"e164\": \"$e2\"}")" >"$work/out" 2>&1
check "ending it again: unknown_conference" grep -q unknown_conference "$work/out"

# An orphan: a conference the MCU runs whose record is gone (taken out of
# Redis behind css's back; css learns it at its restart below).
e3=$(jq -r '.confs[2]["e164"]' "$work/c1000.json")
redis EVAL "redis.call('DEL', 'conf:' .. ARGV[1]) redis.call('SREM', 'confs:all', ARGV[1]) redis.call('SREM', 'confs:ud:ud-p1-r1-a', ARGV[1]) redis.call('SREM', 'confs:ud:ud-p1-r1-b', ARGV[1]) redis.call('ZREM', 'confs:expiry', ARGV[1]) return 1" 0 "$e3" >/dev/null

# css killed in the middle of 500 creates.
# Generous bounds: a fresh-root run with both lanes loading the 2 cores left
# 13 of 500 without an answer after 60 s.
cm create --domain ud-p1-r1-a --count 500 --rate 250 --e164-start 7300000000 --timeout 150 --json "$work/r500.json" &
cmpid=$!
sleep 1
kill -KILL $css_pid
start css "$css_conf" "$work/p1-css.log"
css_pid=$started
wait $cmpid
acked=$(json_field "$work/r500.json" .acked)
check "css killed during 500 creates: each answered ($acked ACKed, $(json_field "$work/r500.json" .nacked) NACKed), none unanswered" \
	[ "$(json_field "$work/r500.json" .unanswered)" = 0 -a "$(json_field "$work/r500.json" .sent)" = 500 ]
# An answer sent in the instant before the kill, whose request's ack did not
# reach the broker, is sent again after the restart: the same answer (from
# Redis), never a different one (docs/css.md, "at-least-once answers").
check "... never two different answers to one request ($(json_field "$work/r500.json" .answered_twice) repeated identically)" \
	[ "$(json_field "$work/r500.json" .answered_differently)" = 0 ]
check "... every ACKed one is in Redis" bash -c "[ -z \"\$(comm -23 <(jq -r '.confs[][\"e164\"]' $work/r500.json | sort) <(redis-cli -h ${CONFDR_P1_REDIS%:*} -p ${CONFDR_P1_REDIS#*:} -n $CONFDR_P1_REDIS_DB SMEMBERS confs:all | sort))\" ]"
wait_for 30 "... and the MCUs run exactly the ACKed ones of them" bash -c \
	"diff <(on_mcus t-r1 | grep '^73') <(jq -r '.confs[][\"e164\"]' $work/r500.json | sort)"
grep -h 'view rebuilt' "$work/p1-css.log" | tail -1 | sed 's/^/# /'
wait_for 10 "the orphan is ended on its MCU" not_on_mcus t-r1 "^$e3\$"
check "... as an orphan" grep -q "conference $e3 runs on .* ended there (orphan)" "$work/p1-css.log"

# Public templates.
sql "INSERT INTO conf_template (id, user_domain, name, details) VALUES ('tpl-1', 'ud-p1-r1-a', 'Weekly', '{\"duration_min\": 60, \"max_participants\": 8}')"
wait_for 5 "a new template is published into Redis" bash -c "redis-cli -h ${CONFDR_P1_REDIS%:*} -p ${CONFDR_P1_REDIS#*:} -n $CONFDR_P1_REDIS_DB HGET templates:ud:ud-p1-r1-a tpl-1 | grep -q Weekly"
sql "UPDATE conf_template SET name = 'Monthly' WHERE id = 'tpl-1'"
wait_for 5 "... a change follows" bash -c "redis-cli -h ${CONFDR_P1_REDIS%:*} -p ${CONFDR_P1_REDIS#*:} -n $CONFDR_P1_REDIS_DB HGET templates tpl-1 | grep -q Monthly"
sql "DELETE FROM conf_template WHERE id = 'tpl-1'"
wait_for 5 "... and a removal" bash -c "[ \"\$(redis-cli -h ${CONFDR_P1_REDIS%:*} -p ${CONFDR_P1_REDIS#*:} -n $CONFDR_P1_REDIS_DB HEXISTS templates tpl-1)\" = 0 ]"

# An MCU lost: its conferences are restored on the other MCUs of its room.
sim p1-r2 t-mf --count 2 --capacity 100
mf=$started
sim p1-r2 t-ok --count 2 --capacity 100
okpid=$started
wait_for 15 "2 MCUs to fail in p1-r2" registered t-mf 2
wait_for 15 "... and 2 to stay" registered t-ok 2
cm create --domain ud-p1-r2-a --count 100 --rate 200 --e164-start 7500000000 --json "$work/mf.json"
check "100 conferences in p1-r2" [ "$(json_field "$work/mf.json" .acked)" = 100 ]
wait_for 5 "... some of them on the MCUs about to fail" bash -c "[ \"\$(on_mcus t-mf | grep -c '^75')\" -gt 0 ]"
on_mcus t-mf | grep '^75' >"$work/lost"
lost=$(wc -l <"$work/lost")
kill -KILL $mf
wait_for 15 "the $lost conferences of the killed MCUs are restored: all 100 run on the others" bash -c \
	"[ \"\$(on_mcus t-ok | grep -c '^75')\" = 100 ]"
check "... each once (no E164 twice on the MCUs)" bash -c "[ -z \"\$(on_mcus t-ok | grep '^75' | uniq -d)\" ]"
check "... and Redis places each, running, on the MCU that runs it" bash -c "diff <(on_mcus t-ok | grep '^75') \
	<(for e in \$(jq -r '.confs[][\"e164\"]' $work/mf.json | sort); do echo \"\$e \$(redis-cli -h ${CONFDR_P1_REDIS%:*} -p ${CONFDR_P1_REDIS#*:} -n $CONFDR_P1_REDIS_DB HMGET conf:\$e state mcu | tr '\n' ' ')\"; done | awk '\$2 == \"running\" && \$3 ~ /^t-ok-/ { print \$1 }')"
# Each allocation raises the generation (a re-create that failed first, an
# MCU not yet consuming, counts two): what must hold is that each one lost
# runs again with a generation above 0, the one it was created with.
check "... restored with a new generation (each of the $lost)" bash -c \
	"[ \"\$(jq -r '.mcus[].confs[] | select(.generation >= 1) | .[\"e164\"]' $work/t-ok.json | sort | join - $work/lost | wc -l)\" = $lost ]"
grep -h 'restore: .* allocated' "$work/p1-css.log" | tail -1 | sed 's/^/# /'
grep -h ' restored on ' "$work/p1-css.log" | tail -1 | sed 's/^/# last: /'

# The remaining MCUs restarted (their conferences gone with the process),
# back before their heartbeats are missed (2 s here), numbering their lists
# from 1 again (--seq-from-one, a reading the contract allows). The restart is
# known at the first message of the new incarnation (its boot): rms's
# registration ("restarted") or the first list; css restores what they no
# longer run. A restart slower than the misses makes rms declare the MCUs
# down first, and css restores them in the room's backup room (p1-r1). Each
# allocation raises a conference's generation, so one whose first re-create
# failed (an MCU still starting) counts two: what must hold is that each runs
# once, with a generation above the copy lost with the restart.
jq -r '.mcus[].confs[] | "\(.["e164"]) \(.generation)"' "$work/t-ok.json" | grep '^75' | sort >"$work/gen-before"
kill -KILL $okpid
sim p1-r2 t-ok --count 2 --capacity 100 --seq-from-one
wait_for 60 "MCUs restarted empty: all 100 conferences run again, each once" bash -c \
	"[ \"\$( (on_mcus t-ok; on_mcus t-r1) | grep '^75' | sort -u | wc -l)\" = 100 ] && [ -z \"\$( (on_mcus t-ok; on_mcus t-r1) | grep '^75' | sort | uniq -d)\" ]"
jq -r '.mcus[].confs[] | "\(.["e164"]) \(.generation)"' "$work/t-ok.json" "$work/t-r1.json" | grep '^75' | sort >"$work/gen-after"
check "... each with a generation above the one it had before the restart" bash -c \
	"[ \"\$(join $work/gen-before $work/gen-after | awk '\$3 > \$2' | wc -l)\" = 100 ]"
echo "# restored from the lists: $(grep -c 'placed on t-ok-.*which does not run it' "$work/p1-css.log"), after rms's notice: $(grep -oE 'mcu t-ok-0[12] lost .*: [0-9]+ conferences to restore' "$work/p1-css.log" | awk '{ n += $(NF - 3) } END { print n + 0 }'), in p1-r1: $(on_mcus t-r1 | grep -c '^75')"
check "... the restart known by the new boot (rms's notice or a list), not by missed heartbeats" \
	grep -qE 'mcu t-ok-0[12] (lost \(restarted|restarted \(boot)' "$work/p1-css.log"

# Expiry: the five one-minute conferences end at their planned end.
planned=$(redis HGET conf:7100000000 planned_end)
now_ms=$(($(date +%s%N) / 1000000))
wait_s=$(((planned - now_ms) / 1000))
echo "# waiting up to $wait_s s + 60 s for the planned end"
wait_for $((wait_s > 0 ? wait_s + 60 : 60)) "the one-minute conferences end by themselves" bash -c \
	"[ \"\$(mysql $mysql_tls -h $CONFDR_MYSQL_HOST -P $CONFDR_MYSQL_PORT -u$CONFDR_MYSQL_USER -p$CONFDR_MYSQL_PASSWORD $CONFDR_P1_MYSQL_DB -N -B -e \"SELECT COUNT(*) FROM confinfo WHERE e164 LIKE '71%' AND state = 'ended' AND end_reason = 'expired'\")\" = 5 ]"
# How late they end (expiry_tick 200 ms, then the MCUs' answers) is a figure
# to report, not to assert: on a loaded machine it is seconds. Never early.
read -r early late <<<"$(sql "SELECT MIN(end_ms - planned_end_ms), MAX(end_ms - planned_end_ms) FROM confinfo WHERE e164 LIKE '71%'")"
check "... none before its planned end (earliest $early ms after)" [ "$early" -ge 0 ]
echo "# latest end $late ms after its planned end"
wait_for 15 "... and on the MCUs" not_on_mcus t-r1 '^71'

wait_for 10 "a billing record for each of the 6 conferences ended (1 by the CM, 5 expired)" bash -c \
	"[ \"\$($CONFDR_SANDBOX rabbitmqctl list_queues -p $CONFDR_P1_VHOST name messages 2>/dev/null | awk '\$1 == \"bmc.cdr.q\" { print \$2 }')\" = 6 ]"

t_done
