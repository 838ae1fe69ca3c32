#!/usr/bin/env bash
# confdr sandbox: a two-platform world of real servers on loopback.
#
# Usage: deploy/sandbox.sh COMMAND
#   up                 start RabbitMQ (vhosts p1, p2), a Redis per platform and a
#                      replica of each on the other platform, ZooKeeper, MariaDB
#                      (databases confdr_p1, confdr_p2); load the topology and the
#                      endpoints into ZooKeeper. Idempotent.
#   status [--json]    what runs, on which port, with which pid
#   env                shell export lines with every endpoint (eval "$(... env)")
#   server stop NAME   stop one server (for fault tests); NAME is one of
#   server start NAME    rabbitmq redis-p1 redis-p2 redis-p1-replica
#                        redis-p2-replica zookeeper mariadb
#   start              up, build, and start css, rms and pms of both platforms
#   stop               stop the daemons
#   demo               start, then report every daemon up and connected
#   down               stop the daemons and the servers; leaves no process behind
#   logs [NAME]        list the logs, or tail one (e.g. p1-css, rabbitmq)
#
# Environment: CONFDR_RUN_DIR (default <repo>/run), CONFDR_PORT_BASE (17000).
# Runs as root on Debian 12; installs missing packages with apt-get. No systemd.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self=$top/deploy/sandbox.sh
RUN=${CONFDR_RUN_DIR:-$top/run}
BASE=${CONFDR_PORT_BASE:-17000}
BUILD=${CONFDR_BUILD_DIR:-$top/build}
AMQP_PORT=$((BASE + 672)) DIST_PORT=$((BASE + 673)) EPMD_PORT=$((BASE + 369))
REDIS_P1=$((BASE + 379)) REDIS_P2=$((BASE + 380)) REDIS_P1_REPLICA=$((BASE + 381)) REDIS_P2_REPLICA=$((BASE + 382))
ZK_PORT=$((BASE + 181)) MYSQL_PORT=$((BASE + 306))
HOST=127.0.0.1
SERVERS=(zookeeper rabbitmq redis-p1 redis-p2 redis-p1-replica redis-p2-replica mariadb)
PLATFORMS=(p1 p2)
DAEMONS=(pms rms css)

say() { printf 'sandbox: %s\n' "$*"; }
die() { printf 'sandbox: %s\n' "$*" >&2; exit 1; }

port_of() {
	case $1 in
	rabbitmq) echo $AMQP_PORT ;; redis-p1) echo $REDIS_P1 ;; redis-p2) echo $REDIS_P2 ;;
	redis-p1-replica) echo $REDIS_P1_REPLICA ;; redis-p2-replica) echo $REDIS_P2_REPLICA ;;
	zookeeper) echo $ZK_PORT ;; mariadb) echo $MYSQL_PORT ;; *) return 1 ;;
	esac
}

pidfile() { echo "$RUN/pids/$1.pid"; }
pid_of() { local f; f=$(pidfile "$1"); [ -s "$f" ] && cat "$f"; }
running() { local p; p=$(pid_of "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# wait_until SECONDS WHAT COMMAND...: polls, or fails showing the server's log.
wait_until() {
	local t=$1 what=$2 end
	shift 2
	end=$((SECONDS + t))
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $end ]; then
			echo "sandbox: $what did not come up within ${t}s; last lines of its log:" >&2
			tail -n 20 "$RUN/logs/$what.log" >&2 2>/dev/null || true
			return 1
		fi
		sleep 0.2
	done
}

# ---- RabbitMQ ----
rmq_env() {
	export RABBITMQ_NODENAME=confdr@localhost RABBITMQ_NODE_IP_ADDRESS=$HOST RABBITMQ_NODE_PORT=$AMQP_PORT
	export RABBITMQ_DIST_PORT=$DIST_PORT ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=$HOST
	export RABBITMQ_MNESIA_BASE=$RUN/rabbitmq/mnesia RABBITMQ_LOG_BASE=$RUN/rabbitmq/log
	export RABBITMQ_CONFIG_FILE=$RUN/rabbitmq/rabbitmq RABBITMQ_ENABLED_PLUGINS_FILE=$RUN/rabbitmq/enabled_plugins
	export RABBITMQ_CONF_ENV_FILE=$RUN/rabbitmq/rabbitmq-env.conf RABBITMQ_ADVANCED_CONFIG_FILE=$RUN/rabbitmq/advanced.config
	export RABBITMQ_PID_FILE=$(pidfile rabbitmq) HOME=$RUN/rabbitmq/home
}
rmqctl() { (rmq_env && /usr/lib/rabbitmq/bin/rabbitmqctl "$@"); }

start_rabbitmq() {
	mkdir -p "$RUN/rabbitmq/home" "$RUN/rabbitmq/mnesia" "$RUN/rabbitmq/log"
	[ -f "$RUN/rabbitmq/home/.erlang.cookie" ] || {
		head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN/rabbitmq/home/.erlang.cookie"
		chmod 600 "$RUN/rabbitmq/home/.erlang.cookie"
	}
	printf 'loopback_users = none\nlisteners.tcp.default = %s:%s\n' $HOST $AMQP_PORT >"$RUN/rabbitmq/rabbitmq.conf"
	echo '[].' >"$RUN/rabbitmq/enabled_plugins"
	: >"$RUN/rabbitmq/rabbitmq-env.conf"
	echo '[].' >"$RUN/rabbitmq/advanced.config"
	(rmq_env && exec setsid /usr/lib/rabbitmq/bin/rabbitmq-server) >>"$RUN/logs/rabbitmq.log" 2>&1 </dev/null &
	wait_until 90 rabbitmq rmqctl await_startup --timeout 5 || return 1
	local v
	for v in "${PLATFORMS[@]}"; do
		rmqctl list_vhosts -q | grep -qx "$v" || rmqctl add_vhost "$v" >/dev/null
	done
	rmqctl list_users -q | grep -q '^confdr' || rmqctl add_user confdr confdr >/dev/null
	for v in "${PLATFORMS[@]}"; do rmqctl set_permissions -p "$v" confdr '.*' '.*' '.*' >/dev/null; done
}
stop_rabbitmq() {
	local p
	p=$(pid_of rabbitmq) || true
	rmqctl stop "$(pidfile rabbitmq)" >/dev/null 2>&1 || true
	[ -n "$p" ] && for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
	[ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
	rm -f "$(pidfile rabbitmq)"
}

# ---- Redis ----
start_redis() {
	local name=$1 port args=()
	port=$(port_of "$name")
	mkdir -p "$RUN/$name"
	case $name in
	redis-p1-replica) args=(--replicaof $HOST $REDIS_P1) ;;
	redis-p2-replica) args=(--replicaof $HOST $REDIS_P2) ;;
	esac
	setsid redis-server --port "$port" --bind $HOST --dir "$RUN/$name" --daemonize no --save '' \
		--appendonly yes --protected-mode no --pidfile "$RUN/$name/redis.pid" "${args[@]}" \
		>>"$RUN/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$(pidfile "$name")"
	wait_until 20 "$name" redis-cli -h $HOST -p "$port" ping
}

# ---- ZooKeeper ----
start_zookeeper() {
	local cp
	mkdir -p "$RUN/zookeeper/data"
	cat >"$RUN/zookeeper/zoo.cfg" <<CFG
tickTime=1000
minSessionTimeout=2000
maxSessionTimeout=60000
dataDir=$RUN/zookeeper/data
clientPort=$ZK_PORT
clientPortAddress=$HOST
admin.enableServer=false
4lw.commands.whitelist=srvr
CFG
	cat >"$RUN/zookeeper/log4j.properties" <<'CFG'
log4j.rootLogger=INFO, F
log4j.appender.F=org.apache.log4j.ConsoleAppender
log4j.appender.F.layout=org.apache.log4j.PatternLayout
log4j.appender.F.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
CFG
	cp=$RUN/zookeeper:$(ls /usr/share/java/zookeeper*.jar /usr/share/java/*.jar 2>/dev/null | tr '\n' ':')
	setsid java -Xmx256m -Dzookeeper.log.dir="$RUN/zookeeper" -Dlog4j.configuration="file:$RUN/zookeeper/log4j.properties" \
		-cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$RUN/zookeeper/zoo.cfg" \
		>>"$RUN/logs/zookeeper.log" 2>&1 </dev/null &
	echo $! >"$(pidfile zookeeper)"
	wait_until 60 zookeeper zk_ok
}
zk_ok() { echo srvr | nc -q 1 -w 2 $HOST $ZK_PORT 2>/dev/null | grep -q '^Mode'; }

# ---- MariaDB ----
start_mariadb() {
	local dir=$RUN/mariadb
	mkdir -p "$dir"
	if [ ! -d "$dir/data/mysql" ]; then
		mariadb-install-db --no-defaults --datadir="$dir/data" --user=root --auth-root-authentication-method=normal \
			--skip-test-db >>"$RUN/logs/mariadb.log" 2>&1 || die "mariadb-install-db failed (see $RUN/logs/mariadb.log)"
	fi
	setsid mariadbd --no-defaults --datadir="$dir/data" --port=$MYSQL_PORT --bind-address=$HOST \
		--socket="$dir/mysql.sock" --user=root --pid-file="$dir/mariadbd.pid" --skip-name-resolve \
		--innodb-buffer-pool-size=128M --max-connections=500 \
		>>"$RUN/logs/mariadb.log" 2>&1 </dev/null &
	echo $! >"$(pidfile mariadb)"
	wait_until 60 mariadb mariadb-admin --no-defaults --socket="$dir/mysql.sock" -uroot ping
	mariadb --no-defaults --socket="$dir/mysql.sock" -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS confdr_p1;
CREATE DATABASE IF NOT EXISTS confdr_p2;
CREATE USER IF NOT EXISTS 'confdr'@'127.0.0.1' IDENTIFIED BY 'confdr';
CREATE USER IF NOT EXISTS 'confdr'@'localhost' IDENTIFIED BY 'confdr';
GRANT ALL PRIVILEGES ON confdr_p1.* TO 'confdr'@'127.0.0.1', 'confdr'@'localhost';
GRANT ALL PRIVILEGES ON confdr_p2.* TO 'confdr'@'127.0.0.1', 'confdr'@'localhost';
SQL
}

# Stops a server by its pid file: TERM, wait, KILL after 20 s.
stop_pid() {
	local name=$1 p
	p=$(pid_of "$name") || true
	if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
		kill -TERM "$p" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$p" 2>/dev/null && { say "$name did not stop in 20 s; killing it"; kill -KILL "$p" 2>/dev/null || true; sleep 0.2; }
	fi
	rm -f "$(pidfile "$name")"
}

server_start() {
	local name=$1
	port_of "$name" >/dev/null || die "unknown server '$name' (one of: ${SERVERS[*]})"
	if running "$name"; then return 0; fi
	mkdir -p "$RUN/pids" "$RUN/logs"
	case $name in
	rabbitmq) start_rabbitmq ;;
	redis-*) start_redis "$name" ;;
	zookeeper) start_zookeeper ;;
	mariadb) start_mariadb ;;
	esac
}
server_stop() {
	local name=$1
	port_of "$name" >/dev/null || die "unknown server '$name' (one of: ${SERVERS[*]})"
	case $name in
	rabbitmq) stop_rabbitmq ;;
	*) stop_pid "$name" ;;
	esac
}

build() {
	if [ ! -x "$BUILD/confdrctl" ] || [ ! -x "$BUILD/confdr-css" ] || [ "${1:-}" = force ]; then
		say "building into $BUILD"
		cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
		cmake --build "$BUILD" -j"$(nproc)" >/dev/null || die "build failed: cmake --build $BUILD"
	fi
}

endpoints_json() {
	cat <<JSON
{
  "p1": {"p1-r1": {"mq": {"host": "$HOST", "port": $AMQP_PORT, "vhost": "p1"},
                   "redis": {"host": "$HOST", "port": $REDIS_P1},
                   "mysql": {"host": "$HOST", "port": $MYSQL_PORT, "database": "confdr_p1"}}},
  "p2": {"p2-r1": {"mq": {"host": "$HOST", "port": $AMQP_PORT, "vhost": "p2"},
                   "redis": {"host": "$HOST", "port": $REDIS_P2},
                   "mysql": {"host": "$HOST", "port": $MYSQL_PORT, "database": "confdr_p2"}}},
  "replicas": {"p1": {"redis": {"host": "$HOST", "port": $REDIS_P1_REPLICA, "on_platform": "p2"}},
               "p2": {"redis": {"host": "$HOST", "port": $REDIS_P2_REPLICA, "on_platform": "p1"}}}
}
JSON
}

cmd_up() {
	"$top/deploy/install-deps.sh"
	mkdir -p "$RUN/pids" "$RUN/logs"
	local s t0=$SECONDS
	for s in "${SERVERS[@]}"; do
		if running "$s"; then continue; fi
		say "starting $s on $HOST:$(port_of "$s")"
		server_start "$s" || die "$s failed to start"
	done
	build
	endpoints_json >"$RUN/endpoints.json"
	"$BUILD/confdrctl" --zk "$HOST:$ZK_PORT" --chroot /dr topology load "$top/conf/sandbox-topology.json" \
		--endpoints "$RUN/endpoints.json" >/dev/null || die "loading the topology into ZooKeeper failed"
	say "up in $((SECONDS - t0)) s (run dir $RUN)"
}

cmd_status() {
	local json=0 s p st first=1
	[ "${1:-}" = --json ] && json=1
	[ $json = 1 ] && printf '{"run_dir": "%s", "servers": [' "$RUN"
	[ $json = 0 ] && printf '%-18s %-6s %-8s %s\n' SERVER PORT PID STATE
	for s in "${SERVERS[@]}"; do
		p=$(pid_of "$s" || true)
		if running "$s"; then st=running; else st=stopped; p=; fi
		if [ $json = 1 ]; then
			[ $first = 1 ] || printf ', '
			first=0
			printf '{"name": "%s", "port": %s, "pid": %s, "state": "%s"}' "$s" "$(port_of "$s")" "${p:-null}" "$st"
		else
			printf '%-18s %-6s %-8s %s\n' "$s" "$(port_of "$s")" "${p:--}" "$st"
		fi
	done
	first=1
	[ $json = 1 ] && printf '], "daemons": ['
	[ $json = 0 ] && printf '\n%-18s %-8s %s\n' DAEMON PID STATE
	for pl in "${PLATFORMS[@]}"; do
		for d in "${DAEMONS[@]}"; do
			s=$pl-$d
			p=$(pid_of "$s" || true)
			if running "$s"; then st=running; else st=stopped; p=; fi
			if [ $json = 1 ]; then
				[ $first = 1 ] || printf ', '
				first=0
				printf '{"name": "%s", "pid": %s, "state": "%s"}' "$s" "${p:-null}" "$st"
			else
				printf '%-18s %-8s %s\n' "$s" "${p:--}" "$st"
			fi
		done
	done
	[ $json = 1 ] && printf ']}\n'
	return 0
}

cmd_env() {
	cat <<ENV
export CONFDR_SANDBOX=$self
export CONFDR_RUN_DIR=$RUN
export CONFDR_P1_AMQP_URL=amqp://confdr:confdr@$HOST:$AMQP_PORT/p1
export CONFDR_P2_AMQP_URL=amqp://confdr:confdr@$HOST:$AMQP_PORT/p2
export CONFDR_P1_REDIS=$HOST:$REDIS_P1
export CONFDR_P2_REDIS=$HOST:$REDIS_P2
export CONFDR_P1_REDIS_REPLICA=$HOST:$REDIS_P1_REPLICA
export CONFDR_P2_REDIS_REPLICA=$HOST:$REDIS_P2_REPLICA
export CONFDR_ZK=$HOST:$ZK_PORT
export CONFDR_ZK_CHROOT=/dr
export CONFDR_MYSQL_HOST=$HOST
export CONFDR_MYSQL_PORT=$MYSQL_PORT
export CONFDR_MYSQL_USER=confdr
export CONFDR_MYSQL_PASSWORD=confdr
export CONFDR_P1_MYSQL_DB=confdr_p1
export CONFDR_P2_MYSQL_DB=confdr_p2
ENV
}

daemon_conf() {
	local p=$1 d=$2
	cat <<CONF
# Written by deploy/sandbox.sh start; see conf/$d.conf for every key.
[daemon]
platform = $p
instance = $p-$d-1
log_level = info
log_timestamps = true
[zookeeper]
hosts = $HOST:$ZK_PORT
chroot = /dr
session_timeout = 6s
[amqp]
user = confdr
password = confdr
[mysql]
user = confdr
password = confdr
CONF
	[ "$d" = css ] && echo "migrations = $top/deploy/sql"
	return 0
}

cmd_start() {
	cmd_up
	local p d name
	for p in "${PLATFORMS[@]}"; do
		mkdir -p "$RUN/$p"
		for d in "${DAEMONS[@]}"; do
			name=$p-$d
			if running "$name"; then continue; fi
			daemon_conf "$p" "$d" >"$RUN/$p/$d.conf"
			setsid "$BUILD/confdr-$d" -c "$RUN/$p/$d.conf" >>"$RUN/logs/$name.log" 2>&1 </dev/null &
			echo $! >"$(pidfile "$name")"
			say "started $name (pid $!, log $RUN/logs/$name.log)"
		done
	done
}

cmd_stop() {
	local p d
	for p in "${PLATFORMS[@]}"; do
		for d in css rms pms; do stop_pid "$p-$d"; done
	done
}

cmd_down() {
	local s i left
	cmd_stop
	for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do
		s=${SERVERS[$i]}
		if [ -f "$(pidfile "$s")" ]; then say "stopping $s"; server_stop "$s"; fi
	done
	# Our own epmd (RabbitMQ's port mapper on its own port).
	(rmq_env && epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1) || true
	for _ in $(seq 25); do pgrep -f "epmd.*$EPMD_PORT|$RUN" >/dev/null || break; sleep 0.2; done
	left=$(pgrep -af -- "$RUN|epmd.*-port $EPMD_PORT" || true)
	if [ -n "$left" ]; then
		echo "sandbox: processes of the sandbox still running:" >&2
		echo "$left" >&2
		return 1
	fi
	say "down: no process of the sandbox is left"
}

cmd_demo() {
	local t0=$SECONDS
	cmd_start
	say "waiting for every daemon of both platforms to report up and connected"
	echo
	if "$BUILD/confdrctl" --zk "$HOST:$ZK_PORT" --chroot /dr status --wait 60 --expect 6; then
		echo
		say "demo: 6 of 6 daemons up and connected on p1 and p2 ($((SECONDS - t0)) s)."
		say "next: '$self status', '$BUILD/confdrctl --zk $HOST:$ZK_PORT status', '$self down'"
	else
		echo
		"$BUILD/confdrctl" --zk "$HOST:$ZK_PORT" --chroot /dr status || true
		say "demo: not every daemon is up and connected; logs in $RUN/logs/"
		return 1
	fi
}

cmd_logs() {
	if [ -z "${1:-}" ]; then ls -1 "$RUN/logs" 2>/dev/null; return 0; fi
	tail -n 50 "$RUN/logs/$1.log"
}

case ${1:-} in
up) cmd_up ;;
status) shift; cmd_status "$@" ;;
env) cmd_env ;;
server)
	[ $# = 3 ] || die "usage: sandbox.sh server stop|start NAME"
	case $2 in start) server_start "$3" ;; stop) server_stop "$3" ;; *) die "usage: sandbox.sh server stop|start NAME" ;; esac ;;
start) cmd_start ;;
stop) cmd_stop ;;
down) cmd_down ;;
demo) cmd_demo ;;
logs) shift; cmd_logs "$@" ;;
-h | --help | help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' ;;
*) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64 ;;
esac
