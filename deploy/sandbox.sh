#!/usr/bin/env bash
# confdr sandbox: a two-platform world of real servers on 127.0.0.1, no systemd.
#
# Usage: deploy/sandbox.sh COMMAND [ARGS]
#   up                 start what is not running: RabbitMQ (vhosts p1, p2, own epmd),
#                      Redis of p1 and p2 and a replica of each hosted on the other
#                      platform, ZooKeeper, MariaDB (databases confdr_p1, confdr_p2);
#                      write run/endpoints.json and load it and conf/sandbox-topology.json
#                      into ZooKeeper (confdrctl topology load; builds confdrctl if it
#                      is missing). Idempotent: what runs stays.
#   status [--json]    servers and daemons: port, pid, state
#   env                export lines for the tests: eval "$(deploy/sandbox.sh env)"
#   server stop NAME   stop one server and wait until it is gone; start one and wait
#   server start NAME    until it answers. NAME: rabbitmq redis-p1 redis-p2
#                        redis-p1-replica redis-p2-replica zookeeper mariadb
#   start              up, build (cmake --build), start css, rms and pms of both
#                      platforms (configs run/<p>/<d>.conf, logs run/logs/<p>-<d>.log)
#                      and one mcusim per room (4 MCUs of 500, 1 VRS; log sim-<room>,
#                      state file run/sims/<room>.json)
#   stop               stop the daemons and the simulators
#   demo               start, wait until all six daemons are up and connected, create
#                      conferences on both platforms through cmsim, show confdrctl status;
#                      then the DR drills room-failure, room-switchback (a manual room switch
#                      and its switch-back) and platform-switchback (a platform failure and
#                      its fail-back), each with its report, and a summary (a few minutes;
#                      CONFDR_DEMO_CONFS conferences per drill, default 1000); exits 1 if
#                      something is not up, a request is not answered or a drill fails
#   down               stop the daemons, the servers and our epmd (by pid file), then
#                      any leftover process of the sandbox; checks that none is left
#   logs [-f] [NAME]   list the logs, or tail one (rabbitmq, redis-p1, p1-css, ...)
#   rabbitmqctl ARGS   rabbitmqctl of the sandbox's broker (e.g. purge_queue -p p1 mau.conf.q)
#   drill SCENARIO [--confs N] [--json FILE] [--timeout S]
#                      a DR drill (deploy/drill.sh --help, docs/drills.md): mcu-failure,
#                      mcu-reboot, mcu-reboot-from-one, mcu-reboot-no-boot, room-failure,
#                      room-switch, room-switchback, platform-failure, platform-switchback;
#                      'drill stop' stops daemons and drill simulators
#
# Environment: CONFDR_RUN_DIR (default <repo>/run), CONFDR_PORT_BASE (default 17000:
# AMQP base+672, Erlang dist +673, epmd +369, Redis +379..+382, ZooKeeper +181,
# MariaDB +306), CONFDR_BUILD_DIR (default <repo>/build).
# Every wait is bounded; on a server that does not come up the tail of its log is shown.
# Installs missing Debian packages first (deploy/install-deps.sh, root).
set -euo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$SELF_DIR/$(basename "${BASH_SOURCE[0]}")
PROG=sandbox
# shellcheck source=lib.sh
. "$SELF_DIR/lib.sh"

# Start order (slowest first: they boot in parallel); stopped in reverse.
SERVERS=(rabbitmq zookeeper redis-p1 redis-p2 redis-p1-replica redis-p2-replica mariadb)
PLATFORMS=(p1 p2)
DAEMONS=(pms rms css)
ROOMS=(p1-r1 p1-r2 p2-r1 p2-r2) # one mcusim each

# rabbit_bin: the directory of the broker's own scripts, looked up when used
# (after install-deps.sh ran), never when this script starts. Debian's
# /usr/sbin/rabbitmq-server is a wrapper that re-runs the broker as the
# rabbitmq user, who cannot write our run dir: it is never used.
rabbit_bin() {
	local d
	for d in /usr/lib/rabbitmq/bin /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin; do
		[ -x "$d/rabbitmq-server" ] && { echo "$d"; return 0; }
	done
	die "RabbitMQ's scripts are not in /usr/lib/rabbitmq/bin (package rabbitmq-server; deploy/install-deps.sh installs it)"
}

port_of() {
	case $1 in
	rabbitmq) echo $AMQP_PORT ;; redis-p1) echo $REDIS_P1 ;; redis-p2) echo $REDIS_P2 ;;
	redis-p1-replica) echo $REDIS_P1_REPLICA ;; redis-p2-replica) echo $REDIS_P2_REPLICA ;;
	zookeeper) echo $ZK_PORT ;; mariadb) echo $MYSQL_PORT ;; epmd) echo $EPMD_PORT ;;
	*) return 1 ;;
	esac
}
check_server_name() {
	case " ${SERVERS[*]} " in *" $1 "*) return 0 ;; esac
	die "unknown server '$1' (one of: ${SERVERS[*]})"
}

# ---------------------------------------------------------------- processes

listener_pid() { ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1; }
listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# claim_port NAME: if NAME's port is served by a process of ours that has no
# pid file (a half-finished earlier run), adopt it; if by someone else, fail.
claim_port() {
	local name=$1 port p pg
	port=$(port_of "$name")
	listening "$port" || return 0
	p=$(listener_pid "$port")
	if [ -n "$p" ] && ours "$p"; then
		pg=$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')
		ours "$pg" && p=$pg
		echo "$p" >"$(pidfile "$name")"
		say "adopting $name (pid $p) already listening on $HOST:$port"
		return 0
	fi
	die "port $port (for $name) is in use by ${p:-another process}${p:+ ($(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | cut -c1-80))}; stop it or choose another CONFDR_PORT_BASE"
}

# ---------------------------------------------------------------- epmd + RabbitMQ

# The Erlang environment of our node and of rabbitmqctl: nothing from /etc.
rmq_env() {
	export "$MARK=$RUN"
	export RABBITMQ_NODENAME=confdr@localhost RABBITMQ_NODE_IP_ADDRESS=$HOST RABBITMQ_NODE_PORT=$AMQP_PORT
	export RABBITMQ_DIST_PORT=$DIST_PORT ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=$HOST
	export RABBITMQ_MNESIA_BASE=$RUN/rabbitmq/mnesia RABBITMQ_LOG_BASE=$RUN/rabbitmq/log RABBITMQ_LOGS=-
	export RABBITMQ_CONFIG_FILE=$RUN/rabbitmq/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$RUN/rabbitmq/enabled_plugins
	export RABBITMQ_CONF_ENV_FILE=$RUN/rabbitmq/rabbitmq-env.conf RABBITMQ_ADVANCED_CONFIG_FILE=$RUN/rabbitmq/advanced.config
	export RABBITMQ_PID_FILE=$RUN/rabbitmq/beam.pid HOME=$RUN/rabbitmq/home ERL_CRASH_DUMP=$RUN/rabbitmq/erl_crash.dump
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}
rmqctl() { local b; b=$(rabbit_bin) || return 1; (rmq_env && exec timeout 60 "$b/rabbitmqctl" "$@" 9>&-); }

epmd_ok() { ERL_EPMD_PORT=$EPMD_PORT timeout 5 epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; }
# epmd exits at once when its port is not free yet (a server of the same
# port slot stopping an instant before): tried 3 times, 1 s apart.
start_epmd() {
	local try
	running epmd && return 0
	claim_port epmd
	running epmd && return 0
	for try in 1 2 3; do
		spawn epmd epmd -port "$EPMD_PORT" -address "$HOST"
		wait_until 10 epmd epmd_ok && return 0
		warn "epmd on $HOST:$EPMD_PORT did not start (try $try of 3); on that port: $(ss -Hltnp "sport = :$EPMD_PORT" 2>/dev/null | tr -s ' ' | head -c 200)"
		sleep 1
	done
	return 1
}

# confdr/confdr, password hashed as RabbitMQ's sha256 scheme: base64(salt || sha256(salt || password)).
CONFDR_RMQ_HASH=kI3GCtabAP6RLDkpw/PBZERREHA0OOrThFYD2BPn4PeoPFuG

spawn_rabbitmq() {
	local d=$RUN/rabbitmq bin
	mkdir -p "$d/home" "$d/mnesia" "$d/log"
	if [ ! -s "$d/home/.erlang.cookie" ]; then
		(umask 077 && head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F >"$d/home/.erlang.cookie")
	fi
	chmod 600 "$d/home/.erlang.cookie"
	cat >"$d/rabbitmq.conf" <<CONF
# written by deploy/sandbox.sh
loopback_users = none
listeners.tcp.default = $HOST:$AMQP_PORT
load_definitions = $d/definitions.json
disk_free_limit.absolute = 50MB
log.console = true
log.console.level = info
log.file = false
CONF
	cat >"$d/definitions.json" <<JSON
{"users": [{"name": "confdr", "password_hash": "$CONFDR_RMQ_HASH",
            "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}],
 "vhosts": [{"name": "p1"}, {"name": "p2"}],
 "permissions": [{"user": "confdr", "vhost": "p1", "configure": ".*", "write": ".*", "read": ".*"},
                 {"user": "confdr", "vhost": "p2", "configure": ".*", "write": ".*", "read": ".*"}]}
JSON
	echo '[].' >"$d/enabled_plugins"
	: >"$d/rabbitmq-env.conf"
	echo '[].' >"$d/advanced.config"
	bin=$(rabbit_bin) || exit 1
	start_epmd
	(rmq_env && spawn rabbitmq "$bin/rabbitmq-server")
}
rabbitmq_ok() { rmqctl await_startup --timeout 5; }
setup_rabbitmq() {
	# The definitions file made vhosts, user and permissions at boot; check, and
	# repair with rabbitmqctl if not.
	local perms v
	perms=$(rmqctl -q list_user_permissions confdr 2>/dev/null || true)
	for v in "${PLATFORMS[@]}"; do
		grep -q "^${v}[[:space:]]" <<<"$perms" && continue
		warn "RabbitMQ: permissions of confdr on vhost $v missing; creating them"
		rmqctl -q list_vhosts | grep -qx "$v" || rmqctl -q add_vhost "$v" >/dev/null
		rmqctl -q list_users | awk '{print $1}' | grep -qx confdr || rmqctl -q add_user confdr confdr >/dev/null
		rmqctl -q set_permissions -p "$v" confdr '.*' '.*' '.*' >/dev/null
	done
}
stop_rabbitmq() {
	local p
	p=$(pid_of rabbitmq) || return 0
	if alive "$(cat "$RUN/rabbitmq/beam.pid" 2>/dev/null || true)"; then
		rmqctl stop "$RUN/rabbitmq/beam.pid" >/dev/null 2>&1 || kill -TERM "$p" 2>/dev/null || true
	else
		kill -TERM "$p" 2>/dev/null || true
	fi
	wait_gone rabbitmq "$p" 30
	rm -f "$(pidfile rabbitmq)"
}

# ---------------------------------------------------------------- Redis

spawn_redis() {
	local name=$1 port args=()
	port=$(port_of "$name")
	mkdir -p "$RUN/$name"
	case $name in
	redis-p1-replica) args=(--replicaof "$HOST" "$REDIS_P1") ;;
	redis-p2-replica) args=(--replicaof "$HOST" "$REDIS_P2") ;;
	esac
	spawn "$name" redis-server --port "$port" --bind $HOST --dir "$RUN/$name" --daemonize no \
		--save '' --appendonly yes --protected-mode no --pidfile "$RUN/$name/redis.pid" "${args[@]}"
}
redis_ok() { [ "$(rcli "$1" ping 2>/dev/null)" = PONG ]; }

# ---------------------------------------------------------------- ZooKeeper

spawn_zookeeper() {
	local d=$RUN/zookeeper cp j
	mkdir -p "$d/data"
	cat >"$d/zoo.cfg" <<CFG
# written by deploy/sandbox.sh
tickTime=2000
initLimit=10
syncLimit=5
minSessionTimeout=4000
maxSessionTimeout=60000
dataDir=$d/data
clientPort=$ZK_PORT
clientPortAddress=$HOST
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
CFG
	cat >"$d/log4j.properties" <<'CFG'
# written by deploy/sandbox.sh: everything to stdout, which is the sandbox's log
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
CFG
	# zookeeper.jar's manifest names its dependencies; add an slf4j binding and log4j.
	cp=$d
	for j in zookeeper.jar zookeeper-jute.jar slf4j-api.jar slf4j-log4j12.jar log4j-1.2.jar; do
		[ -f "/usr/share/java/$j" ] || die "ZooKeeper: /usr/share/java/$j is missing (packages zookeeper, libslf4j-java, liblog4j1.2-java)"
		cp=$cp:/usr/share/java/$j
	done
	spawn zookeeper java -Xmx256m -Djava.net.preferIPv4Stack=true -Dzookeeper.log.dir="$d" \
		-Dlog4j.configuration="file:$d/log4j.properties" -Dzookeeper.admin.enableServer=false \
		-Dzookeeper.jmx.log4j.disable=true \
		-cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$d/zoo.cfg"
}
zk_ok() { echo srvr | timeout 5 nc -q 1 -w 2 $HOST "$ZK_PORT" 2>/dev/null | grep -q '^Mode: standalone'; }

# ---------------------------------------------------------------- MariaDB

spawn_mariadb() {
	local d=$RUN/mariadb
	# A tmpdir of its own: mariadbd removes every "#sql*" file of its tmpdir
	# when it starts, and with the shared /tmp one sandbox's server starting
	# broke another's mariadb-install-db ("Unknown table mysql.tmp_user_sys").
	mkdir -p "$d" "$d/tmp"
	if [ ! -d "$d/data/mysql" ]; then
		# Into a scratch dir first, so an interrupted install is redone, never half-used.
		rm -rf "$d/data" "$d/data.new"
		say "mariadb: creating the data dir (mariadb-install-db)"
		# One install at a time on this machine (two sandboxes coming up at once,
		# tests/run.sh's lanes), each in its own tmpdir.
		(flock -w 300 8 && exec timeout 120 mariadb-install-db --no-defaults --datadir="$d/data.new" \
			--user=root --auth-root-authentication-method=normal --skip-test-db --tmpdir="$d/tmp" 8>&-) \
			8>"${TMPDIR:-/tmp}/confdr-mariadb-install.lock" >>"$(logfile mariadb)" 2>&1 </dev/null 9>&- ||
			{ show_log mariadb 60; die "mariadb-install-db failed"; }
		mv "$d/data.new" "$d/data"
	fi
	spawn mariadb mariadbd --no-defaults --datadir="$d/data" --tmpdir="$d/tmp" --port="$MYSQL_PORT" --bind-address=$HOST \
		--socket="$d/mysql.sock" --user=root --pid-file="$d/mariadbd.pid" --skip-name-resolve \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
		--innodb-buffer-pool-size=128M --max-connections=500
}
mariadb_ok() { timeout 10 mariadb-admin --no-defaults --socket="$RUN/mariadb/mysql.sock" -uroot --connect-timeout=2 ping; }
setup_mariadb() {
	mysql_root <<'SQL'
CREATE DATABASE IF NOT EXISTS confdr_p1;
CREATE DATABASE IF NOT EXISTS confdr_p2;
CREATE USER IF NOT EXISTS 'confdr'@'127.0.0.1' IDENTIFIED BY 'confdr';
CREATE USER IF NOT EXISTS 'confdr'@'localhost' IDENTIFIED BY 'confdr';
ALTER USER 'confdr'@'127.0.0.1' IDENTIFIED BY 'confdr';
ALTER USER 'confdr'@'localhost' IDENTIFIED BY 'confdr';
GRANT ALL PRIVILEGES ON confdr_p1.* TO 'confdr'@'127.0.0.1', 'confdr'@'localhost';
GRANT ALL PRIVILEGES ON confdr_p2.* TO 'confdr'@'127.0.0.1', 'confdr'@'localhost';
SQL
}

# ---------------------------------------------------------------- one server

# server_spawn NAME: starts NAME if it is not running (does not wait).
server_spawn() {
	local name=$1
	running "$name" && return 0
	claim_port "$name"
	running "$name" && return 0
	say "starting $name on $HOST:$(port_of "$name")"
	case $name in
	rabbitmq) spawn_rabbitmq ;;
	redis-*) spawn_redis "$name" ;;
	zookeeper) spawn_zookeeper ;;
	mariadb) spawn_mariadb ;;
	esac
}

# server_await NAME: waits until NAME answers, then sets it up (idempotent).
server_await() {
	local name=$1 port
	port=$(port_of "$name")
	case $name in
	rabbitmq) wait_until 120 rabbitmq rabbitmq_ok && setup_rabbitmq ;;
	redis-*) wait_until 30 "$name" redis_ok "$port" ;;
	zookeeper) wait_until 60 zookeeper zk_ok ;;
	mariadb) wait_until 90 mariadb mariadb_ok && setup_mariadb ;;
	esac
}

server_start() {
	check_server_name "$1"
	server_spawn "$1"
	server_await "$1" || die "$1 did not come up (log: $(logfile "$1"))"
	say "$1 is up (pid $(pid_of "$1" || echo '?'), $HOST:$(port_of "$1"))"
}

server_stop() {
	local name=$1 p
	check_server_name "$name"
	if ! running "$name"; then
		# No pid file, but maybe one of ours still serves the port.
		p=$(listener_pid "$(port_of "$name")")
		if [ -n "$p" ] && ours "$p"; then echo "$p" >"$(pidfile "$name")"; else
			say "$name is not running"
			return 0
		fi
	fi
	say "stopping $name (pid $(pid_of "$name"))"
	case $name in
	rabbitmq) stop_rabbitmq ;;
	mariadb) stop_pid mariadb 60 ;;
	*) stop_pid "$name" 30 ;;
	esac
}

# ---------------------------------------------------------------- build, topology

# build [TARGET]: cmake configure (once) and build; output in run/logs/build.log.
build() {
	local target=${1:-} log
	log=$(logfile build)
	say "building${target:+ $target} in $BUILD (log $log)"
	{
		[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$TOP" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo
		cmake --build "$BUILD" -j"$(nproc)" ${target:+--target "$target"}
	} >"$log" 2>&1 </dev/null 9>&- || {
		tail -n 30 "$log" >&2
		die "build failed (full log: $log)"
	}
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

load_topology() {
	endpoints_json >"$RUN/endpoints.json"
	[ -x "$BUILD/confdrctl" ] || build confdrctl
	[ -x "$BUILD/confdrctl" ] || die "confdrctl is missing ($BUILD/confdrctl): cannot load the topology into ZooKeeper"
	# Loaded again only when the files changed: a takeover publishes the
	# promoted Redis replica in /endpoints, and a restart must not undo it
	# (confdrctl platform failback does, docs/dr.md).
	local sum
	sum=$(cat "$TOP/conf/sandbox-topology.json" "$RUN/endpoints.json" | sha256sum | cut -c1-64)
	if [ "$(cat "$RUN/topology.loaded" 2>/dev/null)" = "$sum" ] && ctl topology show >/dev/null 2>&1; then
		say "topology and endpoints already in ZooKeeper $HOST:$ZK_PORT$CHROOT (unchanged files: not loaded again)"
		return 0
	fi
	ctl topology load "$TOP/conf/sandbox-topology.json" --endpoints "$RUN/endpoints.json" >/dev/null ||
		die "loading the topology into ZooKeeper failed: $BUILD/confdrctl --zk $HOST:$ZK_PORT topology load conf/sandbox-topology.json --endpoints $RUN/endpoints.json"
	echo "$sum" >"$RUN/topology.loaded"
	say "topology and endpoints loaded into ZooKeeper $HOST:$ZK_PORT$CHROOT"
}

# ---------------------------------------------------------------- commands

cmd_up() {
	local s t0=$SECONDS fail=0 port
	"$TOP/deploy/install-deps.sh" 9>&- || die "dependencies missing (deploy/install-deps.sh)"
	mkdir -p "$RUN/pids" "$RUN/logs"
	for s in "${SERVERS[@]}"; do server_spawn "$s"; done
	for s in "${SERVERS[@]}"; do
		server_await "$s" || { echo "sandbox: $s did not come up (log: $(logfile "$s"))" >&2; fail=1; }
	done
	[ $fail = 0 ] || die "up failed; what runs stays (see '$SELF status'; '$SELF down' stops it)"
	for s in redis-p1-replica redis-p2-replica; do
		port=$(port_of "$s")
		wait_until 20 "$s" replica_linked "$port" 2>/dev/null || warn "$s is up but not yet linked to its primary"
	done
	load_topology
	say "up in $((SECONDS - t0)) s; run dir $RUN; endpoints: eval \"\$($SELF env)\""
}

# state_of NAME [PORT]: up | not listening | stopped | up (no pid file) | port taken (pid P)
state_of() {
	local p
	if running "$1"; then
		if [ -z "${2:-}" ] || listening "$2"; then echo up; else echo "not listening"; fi
	elif [ -n "${2:-}" ] && listening "$2"; then
		p=$(listener_pid "$2")
		if [ -n "$p" ] && ours "$p"; then echo "up (no pid file)"; else echo "port taken (pid ${p:-?})"; fi
	else
		echo stopped
	fi
}

cmd_status() {
	local json=0 s p st port first=1 pl d
	case ${1:-} in --json) json=1 ;; '') ;; *) die "usage: sandbox.sh status [--json]" ;; esac
	if [ $json = 1 ]; then
		printf '{"run_dir": "%s", "port_base": %s, "servers": [' "$RUN" "$BASE"
		for s in epmd "${SERVERS[@]}"; do
			port=$(port_of "$s"); p=$(pid_of "$s" || true); st=$(state_of "$s" "$port")
			[ $first = 1 ] || printf ', '
			first=0
			printf '{"name": "%s", "port": %s, "pid": %s, "state": "%s", "log": "%s"}' \
				"$s" "$port" "${p:-null}" "$st" "$(logfile "$s")"
		done
		printf '], "daemons": ['
		first=1
		for pl in "${PLATFORMS[@]}"; do
			for d in "${DAEMONS[@]}"; do
				s=$pl-$d; p=$(pid_of "$s" || true); st=$(state_of "$s")
				[ $first = 1 ] || printf ', '
				first=0
				printf '{"name": "%s", "platform": "%s", "daemon": "%s", "pid": %s, "state": "%s", "log": "%s"}' \
					"$s" "$pl" "$d" "${p:-null}" "$st" "$(logfile "$s")"
			done
		done
		printf ']}\n'
		return 0
	fi
	echo "run dir $RUN"
	printf '%-18s %-15s %-8s %s\n' SERVER PORT PID STATE
	for s in epmd "${SERVERS[@]}"; do
		port=$(port_of "$s"); p=$(pid_of "$s" || true)
		printf '%-18s %-15s %-8s %s\n' "$s" "$HOST:$port" "${p:--}" "$(state_of "$s" "$port")"
	done
	printf '\n%-18s %-15s %-8s %s\n' DAEMON LOG PID STATE
	for pl in "${PLATFORMS[@]}"; do
		for d in "${DAEMONS[@]}"; do
			s=$pl-$d; p=$(pid_of "$s" || true)
			printf '%-18s %-15s %-8s %s\n' "$s" "logs/$s.log" "${p:--}" "$(state_of "$s")"
		done
	done
}

cmd_env() {

	q() { printf 'export %s=%q\n' "$1" "$2"; }
	q CONFDR_SANDBOX "$SELF"
	q CONFDR_RUN_DIR "$RUN"
	q CONFDR_P1_AMQP_URL "amqp://confdr:confdr@$HOST:$AMQP_PORT/p1"
	q CONFDR_P2_AMQP_URL "amqp://confdr:confdr@$HOST:$AMQP_PORT/p2"
	q CONFDR_P1_REDIS "$HOST:$REDIS_P1"
	q CONFDR_P2_REDIS "$HOST:$REDIS_P2"
	q CONFDR_P1_REDIS_REPLICA "$HOST:$REDIS_P1_REPLICA"
	q CONFDR_P2_REDIS_REPLICA "$HOST:$REDIS_P2_REPLICA"
	q CONFDR_ZK "$HOST:$ZK_PORT"
	q CONFDR_ZK_CHROOT "$CHROOT"
	q CONFDR_MYSQL_HOST "$HOST"
	q CONFDR_MYSQL_PORT "$MYSQL_PORT"
	q CONFDR_MYSQL_USER confdr
	q CONFDR_MYSQL_PASSWORD confdr
	q CONFDR_P1_MYSQL_DB confdr_p1
	q CONFDR_P2_MYSQL_DB confdr_p2
}

daemon_conf() {
	local p=$1 d=$2
	cat <<CONF
# written by deploy/sandbox.sh start; conf/$d.conf lists every key
[daemon]
platform = $p
instance = $p-$d-1
log_level = info
log_timestamps = true

[zookeeper]
hosts = $HOST:$ZK_PORT
chroot = $CHROOT
session_timeout = 6s

[amqp]
user = confdr
password = confdr

[mysql]
user = confdr
password = confdr
CONF
	if [ "$d" = css ]; then echo "migrations = $TOP/deploy/sql"; fi
	if [ "$d" = pms ]; then
		# The main room is also checked by a TCP connect to the platform's
		# Redis (it lives there); every room by its MCUs (the default).
		local redis=$REDIS_P1
		[ "$p" = p2 ] && redis=$REDIS_P2
		cat <<CONF

[pms]
beat_interval = 250ms
beat_misses = 8
peer_grace = 5s

[room $p-r1]
tcp = redis=$HOST:$redis
connect_timeout = 500ms
interval = 500ms
fall = 10
rise = 2

[room $p-r2]
mcus = yes
CONF
	fi
}

cmd_start() {
	local p d name room missing=() started=() bad=0
	cmd_up
	build
	for d in "${DAEMONS[@]}"; do [ -x "$BUILD/confdr-$d" ] || missing+=("$BUILD/confdr-$d"); done
	[ ${#missing[@]} = 0 ] || die "daemon binaries missing: ${missing[*]}"
	for p in "${PLATFORMS[@]}"; do
		mkdir -p "$RUN/$p"
		for d in "${DAEMONS[@]}"; do
			name=$p-$d
			if running "$name"; then say "$name already runs (pid $(pid_of "$name"))"; continue; fi
			daemon_conf "$p" "$d" >"$RUN/$p/$d.conf"
			spawn "$name" "$BUILD/confdr-$d" -c "$RUN/$p/$d.conf"
			started+=("$name")
			say "started $name (pid $(cat "$(pidfile "$name")"), log $(logfile "$name"))"
		done
	done
	mkdir -p "$RUN/sims"
	for room in "${ROOMS[@]}"; do
		name=sim-$room p=${room%%-*}
		if running "$name"; then continue; fi
		spawn "$name" "$BUILD/mcusim" --platform "$p" --room "$room" --count 4 --capacity 500 --vrs 1 \
			--amqp "amqp://confdr:confdr@$HOST:$AMQP_PORT/$p" --state "$RUN/sims/$room.json" -q
		started+=("$name")
		say "started $name: 4 MCUs of room $room (pid $(cat "$(pidfile "$name")"), log $(logfile "$name"))"
	done
	[ ${#started[@]} = 0 ] && return 0
	sleep 1
	for name in "${started[@]}"; do
		running "$name" && continue
		echo "sandbox: $name exited at start" >&2
		show_log "$name"
		bad=1
	done
	[ $bad = 0 ] || die "a daemon did not start"
}

cmd_stop() {
	local p d any=0
	# Every pms first: a pms that outlives a platform's own pms by more than
	# [pms] peer_grace declares that platform down (docs/pms.md).
	for d in pms css rms; do
		for p in "${PLATFORMS[@]}"; do
			running "$p-$d" || continue
			any=1
			say "stopping $p-$d (pid $(pid_of "$p-$d"))"
			stop_pid "$p-$d" 20
		done
	done
	for p in "${ROOMS[@]}"; do
		running "sim-$p" || continue
		any=1
		say "stopping sim-$p (pid $(pid_of "sim-$p"))"
		stop_pid "sim-$p" 10
	done
	[ $any = 1 ] || say "no daemon runs"
}

# leftovers: "pid cmdline" of every live process of ours (marker / Redis cwd),
# this script and its ancestors excepted.
leftovers() {
	local d p skip=" " a=$$
	while [ -n "$a" ] && [ "$a" != 0 ] && [ "$a" != 1 ]; do
		skip="$skip$a "
		a=$(ps -o ppid= -p "$a" 2>/dev/null | tr -d ' ')
	done
	skip="$skip$BASHPID "
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		case $skip in *" $p "*) continue ;; esac
		ours "$p" || continue
		printf '%s %s\n' "$p" "$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null | cut -c1-150)"
	done
}

cmd_down() {
	local i s left p pat others
	mkdir -p "$RUN/pids"
	cmd_stop
	for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do
		s=${SERVERS[$i]}
		if running "$s" || { p=$(listener_pid "$(port_of "$s")") && [ -n "$p" ] && ours "$p"; }; then
			server_stop "$s"
		fi
	done
	if running epmd; then say "stopping epmd (pid $(pid_of epmd))"; stop_pid epmd 10; fi
	# Anything of ours still alive (lost pid file, an epmd a CLI started): stop it.
	left=$(leftovers)
	if [ -n "$left" ]; then
		warn "stopping leftover processes of the sandbox:"
		echo "$left" >&2
		for p in $(awk '{print $1}' <<<"$left"); do kill -TERM "$p" 2>/dev/null || true; done
		for _ in $(seq 100); do [ -z "$(leftovers)" ] && break; sleep 0.1; done
		for p in $(leftovers | awk '{print $1}'); do kill -KILL "$p" 2>/dev/null || true; done
		sleep 0.5
	fi
	left=$(leftovers)
	# And what pgrep finds by the run dir's path (not ours if not marked: reported only).
	pat=$(printf '%s' "$RUN/" | sed 's/[][\.*^$+?(){}|]/\\&/g')
	others=$(pgrep -af -- "$pat" | grep -v -E "^($$|$BASHPID) " || true)
	if [ -n "$left" ]; then
		echo "sandbox: processes of the sandbox still alive:" >&2
		echo "$left" >&2
		exit 1
	fi
	[ -z "$others" ] || warn "processes not started by the sandbox use $RUN (left alone):"$'\n'"$others"
	say "down: no process of the sandbox is left (checked: pid files, 'pgrep -af $RUN/', the $MARK marker)"
}

# demo_confs: conferences on both platforms through cmsim (the CM), then the status.
demo_confs() {
	local p n mcus bad=0
	for p in "${PLATFORMS[@]}"; do
		for _ in $(seq 150); do
			n=$(ctl mcu list --platform "$p" --json 2>/dev/null | jq '[.[] | select(.state == "up")] | length' 2>/dev/null || echo 0)
			[ "${n:-0}" -ge 8 ] && break
			sleep 0.2
		done
		say "demo: $p's rms has ${n:-0} MCUs up"
	done
	for p in "${PLATFORMS[@]}"; do
		say "demo: creating 200 conferences on $p through cmsim (the CM's requests to $p's css)"
		"$BUILD/cmsim" create --platform "$p" --amqp "amqp://confdr:confdr@$HOST:$AMQP_PORT/$p" \
			--domain "ud-$p-r1-a" --domain "ud-$p-r1-b" --domain "ud-$p-r2-a" --domain "ud-$p-r2-b" \
			--count 200 --rate 200 --timeout 30 -q --json "$RUN/demo-$p.json" >&2 || bad=1
		n=$(jq -r .acked "$RUN/demo-$p.json" 2>/dev/null || echo 0)
		[ "$n" = 200 ] || { warn "only $n of 200 created on $p (NACK reasons above)"; bad=1; }
	done
	sleep 1.5 # css publishes its figures every second
	echo
	ctl status || bad=1
	[ $bad = 0 ] || { say "demo: some request was not answered, or a daemon is unreachable (see above)"; return 1; }
	say "demo: 400 conferences created on p1 and p2 (answers in $RUN/demo-p1.json, demo-p2.json); list them with '$BUILD/confdrctl --zk $HOST:$ZK_PORT conf list'"
}

# demo_drills: the showcase: a room failure, a manual room switch and its
# switch-back, a platform failure and its fail-back, each a drill with its
# report (deploy/drill.sh), checked against what the simulated MCUs run.
demo_drills() {
	local s n=${CONFDR_DEMO_CONFS:-1000} bad=0 f
	exec 9>&- # the drills call sandbox.sh themselves: our lock goes
	for s in room-failure room-switchback platform-switchback; do
		echo
		say "demo: drill $s with $n conferences ($SELF drill $s --confs $n)"
		"$TOP/deploy/drill.sh" "$s" --confs "$n" --json "$RUN/demo-$s.json" || bad=1
	done
	echo
	say "demo: the drills (JSON reports in $RUN/demo-*.json)"
	printf '  %-20s %7s %7s %8s %5s %10s %9s %13s
' scenario before after restored lost duplicates detect_s restore_all_s
	for s in room-failure room-switchback platform-switchback; do
		f=$RUN/demo-$s.json
		[ -s "$f" ] || { printf '  %-20s (no report)\n' "$s"; bad=1; continue; }
		jq -r '[.scenario, .running_before, .running_after, .restored, .lost, .duplicates, .detect_s, .restore_all_s] |
			map(if . == null then "-" else tostring end) | @tsv' "$f" |
			awk -F'\t' '{printf "  %-20s %7s %7s %8s %5s %10s %9s %13s\n", $1, $2, $3, $4, $5, $6, $7, $8}'
	done
	[ $bad = 0 ] || { say "demo: a drill failed (its report above says why)"; return 1; }
	say "demo: every drill settled with nothing lost and nothing running twice"
}

cmd_demo() {
	local t0=$SECONDS out rc
	cmd_start
	say "waiting (up to 60 s) for the six daemons of p1 and p2 to be up and connected"
	rc=0
	out=$(ctl status --wait 60 --expect 6 2>&1) || rc=$?
	echo "$out"
	echo
	if [ $rc = 0 ]; then
		say "demo: all 6 daemons (css, rms, pms of p1 and p2) are up and connected ($((SECONDS - t0)) s)"
		demo_confs || exit 1
		demo_drills || exit 1
		say "next: '$SELF status', '$BUILD/confdrctl --zk $HOST:$ZK_PORT status', '$SELF drill --help', '$SELF down'"
		return 0
	fi
	say "demo: NOT all daemons are up and connected (confdrctl status exit $rc):"
	local p d
	for p in "${PLATFORMS[@]}"; do
		for d in "${DAEMONS[@]}"; do
			running "$p-$d" || { echo "  $p-$d: process not running; last log lines:"; tail -n 5 "$(logfile "$p-$d")" 2>/dev/null | sed 's/^/    /'; }
		done
	done
	say "logs in $RUN/logs/"
	exit 1
}

cmd_logs() {
	local follow=0 f
	[ "${1:-}" = -f ] && { follow=1; shift; }
	if [ -z "${1:-}" ]; then ls -1 "$RUN/logs" 2>/dev/null | sed 's/\.log$//'; return 0; fi
	f=$(logfile "$1")
	[ -f "$f" ] || die "no log $f (see '$SELF logs')"
	if [ $follow = 1 ]; then exec tail -n 50 -F "$f"; fi
	tail -n 50 "$f"
}

usage() { sed -n '2,42p' "$SELF" | sed 's/^# \{0,1\}//'; }

# Commands that change the sandbox take a lock on the run dir, so that two of
# them (say, two tests stopping servers) do not interleave.
lock() {
	mkdir -p "$RUN" || die "cannot create the run dir $RUN"
	exec 9>"$RUN/.lock"
	flock -w 300 9 || die "another deploy/sandbox.sh holds $RUN/.lock for more than 300 s"
}

case ${1:-} in
up) lock; cmd_up ;;
status) shift; cmd_status "$@" ;;
env) cmd_env ;;
rabbitmqctl)
	shift
	# Without our epmd, the Erlang CLI would start a stray `epmd -daemon` on
	# our port that outlives everything (and blocks the next `up`).
	epmd_ok || die "the sandbox's broker is not running in $RUN (port base $BASE): deploy/sandbox.sh up first"
	rmqctl "$@"
	;;
server)
	[ $# = 3 ] || die "usage: sandbox.sh server stop|start NAME (NAME: ${SERVERS[*]})"
	check_server_name "$3"
	lock
	mkdir -p "$RUN/pids" "$RUN/logs"
	case $2 in
	start) server_start "$3" ;;
	stop) server_stop "$3" ;;
	*) die "usage: sandbox.sh server stop|start NAME" ;;
	esac ;;
start) lock; cmd_start ;;
stop) lock; cmd_stop ;;
down) lock; cmd_down ;;
demo) lock; cmd_demo ;;
logs) shift; cmd_logs "$@" ;;
drill) shift; exec "$TOP/deploy/drill.sh" "$@" ;;
-h | --help | help) usage ;;
*) usage >&2; exit 64 ;;
esac
