#!/usr/bin/env bash
# The daemons against the sandbox's real servers: all six start and connect;
# RabbitMQ and Redis restarts are survived without a restart of the daemons;
# SIGHUP reloads a valid file and refuses a broken one; the standby takes over
# when the active one stops; SIGTERM stops cleanly and removes the liveness node.
# It stops and starts RabbitMQ and p1's Redis: ctest runs it with private ones
# (tests/ns.sh --private; "$CONFDR_SANDBOX" server stop|start reaches them).
set -uo pipefail
. "${CONFDR_SOURCE_DIR:?}/tests/lib.sh"
t_init daemons # the namespace's ZooKeeper chroot, ok/not_ok/wait_for, start, the work dir

# Whatever happened, the servers are left running for the next test.
servers_back() {
	"$CONFDR_SANDBOX" server start rabbitmq >/dev/null 2>&1
	"$CONFDR_SANDBOX" server start redis-p1 >/dev/null 2>&1
}
trap 't_cleanup; servers_back' EXIT

# dconf PLATFORM DAEMON INSTANCE [EXTRA [LOG_LEVEL]]: a config of this instance name
dconf() {
	cat >"$work/$2-$3.conf" <<CONF
[daemon]
platform = $1
instance = $3
log_level = ${5:-info}
[zookeeper]
hosts = $CONFDR_ZK
chroot = $chroot
session_timeout = 4s
[amqp]
user = $2
password_file = $CONFDR_AMQP_SECRETS/amqp-$2.password
anonymous_cm = false
heartbeat = 2s
tls_ca = ${CONFDR_TLS_CA:-}
[reconnect]
min = 100ms
max = 1s
$(t_redis_user "$2")
[mysql]
user = ${CONFDR_MYSQL_USER:-confdr}
password = ${CONFDR_MYSQL_PASSWORD:-confdr}
tls_ca = ${CONFDR_TLS_CA:-}
$4
CONF
	chmod 600 "$work/$2-$3.conf" # it holds passwords: others must not read it
	echo "$work/$2-$3.conf"
}

# live INSTANCE FIELD: the field of the instance's liveness node ("" if absent)
live() {
	$ctl status --json 2>/dev/null | jq -r --arg i "$1" --arg f "$2" \
		'[.. | objects | select(.instance? == $i)][0][$f] // empty | tostring'
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls until the command succeeds
wait_for() {
	local t=$1 what=$2 end
	shift 2
	end=$((SECONDS + t))
	while [ $SECONDS -lt $end ]; do
		if "$@"; then ok "$what"; return 0; fi
		sleep 0.2
	done
	not_ok "$what (not within ${t}s)"
	return 1
}

links_are() { # INSTANCE amqp redis mysql (each up|down|unused|any)
	local i=$1
	[ "$2" = any ] || [ "$(live "$i" amqp)" = "$2" ] || return 1
	[ "$3" = any ] || [ "$(live "$i" redis)" = "$3" ] || return 1
	[ "$4" = any ] || [ "$(live "$i" mysql)" = "$4" ] || return 1
}

migrations="migrations = $CONFDR_SOURCE_DIR/deploy/sql"
declare -A pid
for p in p1 p2; do
	for d in css rms pms; do
		extra=""
		[ "$d" = css ] && extra=$migrations
		c=$(dconf "$p" "$d" "t-$p-$d" "$extra")
		start "$d" "$c" "$c.log"
		pid[$p-$d]=$started
	done
done

for p in p1 p2; do
	wait_for 60 "$p css up: amqp, redis and mysql connected (schema migrated)" links_are "t-$p-css" up up up
	wait_for 30 "$p rms up: amqp connected" links_are "t-$p-rms" up unused unused
	wait_for 30 "$p pms up: amqp connected" links_are "t-$p-pms" up unused unused
done
[ "$(live t-p1-css role)" = active ] && ok "p1 css is active" || not_ok "p1 css is active (role $(live t-p1-css role))"
epoch1=$(live t-p1-css epoch)

# RabbitMQ goes away for a few seconds and comes back.
"$CONFDR_SANDBOX" server stop rabbitmq >/dev/null || not_ok "stop rabbitmq"
wait_for 30 "p1 css sees amqp down" links_are t-p1-css down any any
"$CONFDR_SANDBOX" server start rabbitmq >/dev/null || not_ok "start rabbitmq"
for p in p1 p2; do
	for d in css rms pms; do
		wait_for 60 "$p $d re-connected to amqp" links_are "t-$p-$d" up any any
	done
done

# Redis of p1 goes away and comes back.
"$CONFDR_SANDBOX" server stop redis-p1 >/dev/null || not_ok "stop redis-p1"
wait_for 30 "p1 css sees redis down" links_are t-p1-css any down any
"$CONFDR_SANDBOX" server start redis-p1 >/dev/null || not_ok "start redis-p1"
wait_for 30 "p1 css re-connected to redis" links_are t-p1-css up up up
[ "$(live t-p2-css redis)" = up ] && ok "p2 css (other Redis) untouched" || not_ok "p2 css redis $(live t-p2-css redis)"

alive=0
for k in "${!pid[@]}"; do kill -0 "${pid[$k]}" 2>/dev/null && alive=$((alive + 1)); done
[ "$alive" = 6 ] && ok "no daemon restarted or died ($alive alive, same pids)" || not_ok "daemons alive: $alive of 6"

# SIGHUP: a broken file is refused and the daemon keeps running; a valid one applies.
c=$work/css-t-p1-css.conf
cp "$c" "$c.good"
echo "bogus = 1" >>"$c"
kill -HUP "${pid[p1-css]}"
wait_for 10 "SIGHUP with a broken file is refused" grep -q "reload refused" "$c.log"
kill -0 "${pid[p1-css]}" && ok "still running after a refused reload" || not_ok "died on a refused reload"
sed 's/^log_level = info/log_level = debug/' "$c.good" >"$c"
kill -HUP "${pid[p1-css]}"
wait_for 10 "SIGHUP with a valid file applies it" grep -q "reload done: log_level=debug" "$c.log"

# A second css of p1 waits as standby and takes over when the active one stops.
c2=$(dconf p1 css t-p1-css-b "$migrations")
start css "$c2" "$c2.log"
wait_for 30 "second p1 css is standby" bash -c "[ \"\$($ctl status --json | jq -r '[.. | objects | select(.instance? == \"t-p1-css-b\")][0].role')\" = standby ]"
kill -TERM "${pid[p1-css]}"
stopped=0
for _ in $(seq 150); do kill -0 "${pid[p1-css]}" 2>/dev/null || { stopped=1; break; }; sleep 0.1; done
[ $stopped = 1 ] && ok "SIGTERM stops css within 15 s" || not_ok "css did not stop on SIGTERM"
wait "${pid[p1-css]}"; rc=$?
[ "$rc" = 0 ] && ok "css exit code 0 after SIGTERM" || not_ok "css exit code $rc after SIGTERM"
wait_for 10 "the stopped instance's liveness node is gone" bash -c "[ -z \"\$($ctl status --json | jq -r '[.. | objects | select(.instance? == \"t-p1-css\")][0].instance // empty')\" ]"
wait_for 15 "the standby became active" bash -c "[ \"\$($ctl status --json | jq -r '[.. | objects | select(.instance? == \"t-p1-css-b\")][0].role')\" = active ]"
epoch2=$(live t-p1-css-b epoch)
role2=$(live t-p1-css-b role)
if [ "$role2" = active ] && [ -n "$epoch1" ] && [ -n "$epoch2" ] && [ "$epoch2" -gt "$epoch1" ]; then
	ok "new active css has a larger epoch ($epoch1 -> $epoch2)"
else
	not_ok "new active css: role=$role2 epoch $epoch1 -> $epoch2"
fi

echo "# daemons: $((checks - failures)) passed, $failures failed"
t_done
