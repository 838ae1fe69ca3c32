#!/usr/bin/env bash
# confdr sandbox: a two-platform world of real servers, no systemd. Multi-host
# (the default): each platform a host of its own (a network namespace with its
# own servers, daemons and simulators), a third host for the third ZooKeeper
# member, this namespace the operator's host; single-host: all on 127.0.0.1
# (docs/sandbox.md).
#
# Usage: deploy/sandbox.sh COMMAND [ARGS]
#   up                 start what is not running: multi-host, the hosts and links first,
#                      then on each platform host P RabbitMQ (vhost P, own epmd), Redis of
#                      P and the replica of the other platform, MariaDB (confdr_P), and a
#                      ZooKeeper ensemble over p1, p2 and zk; single-host, one RabbitMQ
#                      (vhosts p1, p2), one ZooKeeper, one MariaDB, the four Redis; write
#                      run/endpoints.json and load it and conf/sandbox-topology.json
#                      into ZooKeeper (confdrctl topology load; builds confdrctl if it
#                      is missing). Idempotent: what runs stays; every link is set up.
#                      AMQP and MariaDB over TCP are TLS only, with a CA and server
#                      certificates made in run/tls/ (docs/security.md, TLS).
#                      The stores' users get random passwords, made once, in
#                      run/secrets/ (docs/security.md, "Stores").
#   status [--json]    servers (host, address, pid, state), links, daemons
#   env                export lines for the tests: eval "$(deploy/sandbox.sh env)" (with
#                      CONFDR_SECRETS and REDISCLI_AUTH, the Redis admin's password)
#   amqp-definitions VHOST...
#                      the broker's users (one per role), their permissions on VHOSTs
#                      and the dead-letter bound, as RabbitMQ definitions JSON
#   server stop NAME   stop one server and wait until it is gone; start one and wait
#   server start NAME    until it answers. NAME (multi-host): rabbitmq-p1 rabbitmq-p2
#                        zookeeper-1 zookeeper-2 zookeeper-3 redis-p1 redis-p2
#                        redis-p1-replica redis-p2-replica mariadb-p1 mariadb-p2;
#                        (single-host): rabbitmq zookeeper mariadb and the four Redis
#   start              up, build (cmake --build), start css, rms and pms of both
#                      platforms, CONFDR_INSTANCES of each (default 2: one active, one
#                      standby; configs run/<p>/<d>.conf and <d>-2.conf, logs
#                      run/logs/<p>-<d>.log and <p>-<d>-2.log) and one mcusim per room (4 MCUs of 500, 1 VRS; log sim-<room>,
#                      state file run/sims/<room>.json), each on its platform's host
#   stop               stop the daemons and the simulators
#   demo               start, wait until all daemons are up and connected, create
#                      conferences on both platforms through cmsim, show confdrctl status;
#                      then the DR drills room-failure, room-switchback (a manual room switch
#                      and its switch-back) and platform-switchback (a platform failure and
#                      its fail-back), each with its report, and a summary (a few minutes;
#                      CONFDR_DEMO_CONFS conferences per drill, default 1000); exits 1 if
#                      something is not up, a request is not answered or a drill fails
#   down               stop the daemons, the servers and our epmd (by pid file), then
#                      any leftover process of the sandbox; remove the hosts (namespaces,
#                      links); checks that no process, namespace or link is left
#   fault F            (multi-host) inject or undo a fault, idempotent, says what it did:
#                        power-off HOST    every process of HOST (p1 p2 zk) SIGKILLed at once;
#                                          'up' and 'start' bring them back
#                        partition A B     the link of hosts A and B (ops p1 p2 zk) down
#                        partition-zk P    P cut from the ZooKeeper majority: its links to
#                                          the other platform and to zk down (ops kept)
#                        zk-cut P          P (p1 p2) cut from the other ZooKeeper members
#                                          only (nftables in P's namespace): its broker,
#                                          Redis and MariaDB still reached
#                        heal [A B]        that link (or every link, and any zk-cut) up again
#                        zk-stop N, zk-start N   ZooKeeper member N (1 p1, 2 p2, 3 zk)
#                        status            the links
#   logs [-f] [NAME]   list the logs, or tail one (rabbitmq-p1, redis-p1, p1-css, ...)
#   rabbitmqctl [--on P] ARGS
#                      rabbitmqctl of P's broker (default p1; single-host: the one broker),
#                      e.g. rabbitmqctl --on p2 purge_queue -p p2 mau.conf.q
#   drill SCENARIO [--confs N] [--json FILE] [--timeout S]
#                      a DR drill (deploy/drill.sh --help, docs/drills.md): mcu-failure,
#                      mcu-reboot, mcu-reboot-from-one, mcu-reboot-no-boot, room-failure,
#                      room-switch, room-switchback, platform-failure, platform-switchback,
#                      platform-power-off, platform-partition, zk-partition, main-room-failure;
#                      'drill stop' stops daemons and drill simulators
#
# Environment: CONFDR_SANDBOX_HOSTS (multi, default, or single; a sandbox that is up
# keeps its layout until 'down'), CONFDR_RUN_DIR (default <repo>/run), CONFDR_PORT_BASE
# (default 17000: AMQP over TLS base+672, Erlang dist +673, epmd +369, Redis +379..+382,
# ZooKeeper +181 (ensemble +188, +189), MariaDB +306; multi-host: namespaces
# cdr-<base>-{p1,p2,zk}, addresses 198.18.0.0/15, one /24 per base / 128),
# CONFDR_BUILD_DIR (default <repo>/build; with CONFDR_PREBUILT=1 used as it is, not
# built: say, links to installed programs, tests/deb-fresh.sh), CONFDR_INSTANCES
# (instances of each daemon per platform, 1..4, default 2; a sandbox that is up keeps
# its count until 'down').
# Every wait is bounded; on a server that does not come up the tail of its log is shown.
# Installs missing Debian packages first (deploy/install-deps.sh, root).
set -euo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$SELF_DIR/$(basename "${BASH_SOURCE[0]}")
PROG=sandbox
# shellcheck source=lib.sh
. "$SELF_DIR/lib.sh"

PLATFORMS=(p1 p2)
DAEMONS=(pms rms css)
ROOMS=(p1-r1 p1-r2 p2-r1 p2-r2) # one mcusim each
# shellcheck source=servers.sh
. "$SELF_DIR/servers.sh"
# shellcheck source=hosts.sh
. "$SELF_DIR/hosts.sh"

# ---------------------------------------------------------------- build, topology

# build [TARGET]: cmake configure (once) and build; output in run/logs/build.log.
build() {
	local target=${1:-} log
	if [ -n "${CONFDR_PREBUILT:-}" ]; then
		say "CONFDR_PREBUILT: using the programs in $BUILD as they are (not built)"
		return 0
	fi
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

# Each platform's servers at its host's address (all 127.0.0.1 in single-host).
endpoints_json() {
	local m1 m2 q1 q2
	m1=$(addr_of "$(srv mariadb p1)") m2=$(addr_of "$(srv mariadb p2)")
	q1=$(addr_of "$(srv rabbitmq p1)") q2=$(addr_of "$(srv rabbitmq p2)")
	cat <<JSON
{
  "p1": {"p1-r1": {"mq": {"host": "$q1", "port": $AMQP_PORT, "vhost": "p1"},
                   "redis": {"host": "$(addr_of redis-p1)", "port": $REDIS_P1},
                   "mysql": {"host": "$m1", "port": $MYSQL_PORT, "database": "confdr_p1"}}},
  "p2": {"p2-r1": {"mq": {"host": "$q2", "port": $AMQP_PORT, "vhost": "p2"},
                   "redis": {"host": "$(addr_of redis-p2)", "port": $REDIS_P2},
                   "mysql": {"host": "$m2", "port": $MYSQL_PORT, "database": "confdr_p2"}}},
  "replicas": {"p1": {"redis": {"host": "$(addr_of redis-p1-replica)", "port": $REDIS_P1_REPLICA, "on_platform": "p2"}},
               "p2": {"redis": {"host": "$(addr_of redis-p2-replica)", "port": $REDIS_P2_REPLICA, "on_platform": "p1"}}}
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
		say "topology and endpoints already in ZooKeeper $ZK_HOSTS$CHROOT (unchanged files: not loaded again)"
		return 0
	fi
	# A loaded machine makes a fresh ensemble slow to take its first writes:
	# 15 s per answer, three tries.
	local try
	for try in 1 2 3; do
		ctl --timeout 15 topology load "$TOP/conf/sandbox-topology.json" --endpoints "$RUN/endpoints.json" >/dev/null && break
		[ $try = 3 ] &&
			die "loading the topology into ZooKeeper failed: $BUILD/confdrctl --zk $ZK_HOSTS topology load conf/sandbox-topology.json --endpoints $RUN/endpoints.json"
		warn "loading the topology into ZooKeeper failed (try $try of 3); again in 2 s"
		sleep 2
	done
	echo "$sum" >"$RUN/topology.loaded"
	say "topology and endpoints loaded into ZooKeeper $ZK_HOSTS$CHROOT"
}

# ---------------------------------------------------------------- commands

cmd_up() {
	local s t0=$SECONDS fail=0
	if [ -n "${CONFDR_SANDBOX_HOSTS:-}" ] && [ "$CONFDR_SANDBOX_HOSTS" != "$LAYOUT" ]; then
		die "the sandbox in $RUN is $LAYOUT-host (CONFDR_SANDBOX_HOSTS=$CONFDR_SANDBOX_HOSTS): '$SELF down' first"
	fi
	"$TOP/deploy/install-deps.sh" 9>&- || die "dependencies missing (deploy/install-deps.sh)"
	mkdir -p "$RUN/pids" "$RUN/logs"
	make_secrets # before the servers: their users are made from them
	echo "$LAYOUT" >"$RUN/hosts-mode"
	echo "$INSTANCES" >"$RUN/instances"
	if [ "$LAYOUT" = multi ]; then
		hosts_up
		say "hosts: namespaces $NS_TAG-{p1,p2,zk}, ops $(host_addr ops), p1 $(host_addr p1), p2 $(host_addr p2), zk $(host_addr zk) (6 links)"
	fi
	for s in "${SERVERS[@]}"; do server_spawn "$s"; done
	for s in "${SERVERS[@]}"; do
		server_await "$s" || { echo "sandbox: $s did not come up (log: $(logfile "$s"))" >&2; fail=1; }
	done
	[ $fail = 0 ] || die "up failed; what runs stays (see '$SELF status'; '$SELF down' stops it)"
	for s in redis-p1-replica redis-p2-replica; do
		wait_until 20 "$s" replica_linked "$s" 2>/dev/null || warn "$s is up but not yet linked to its primary"
	done
	load_topology
	say "up in $((SECONDS - t0)) s; run dir $RUN; endpoints: eval \"\$($SELF env)\""
}

# state_of NAME [server]: up | not listening | stopped | up (no pid file) | port taken (pid P)
state_of() {
	local p
	if running "$1"; then
		if [ -z "${2:-}" ] || listening "$1"; then echo up; else echo "not listening"; fi
	elif [ -n "${2:-}" ] && listening "$1"; then
		p=$(listener_pid "$1")
		if [ -n "$p" ] && ours "$p"; then echo "up (no pid file)"; else echo "port taken (pid ${p:-?})"; fi
	else
		echo stopped
	fi
}

cmd_status() {
	local json=0 s p st port first=1 pl d
	case ${1:-} in --json) json=1 ;; '') ;; *) die "usage: sandbox.sh status [--json]" ;; esac
	if [ $json = 1 ]; then
		printf '{"run_dir": "%s", "port_base": %s, "layout": "%s", "servers": [' "$RUN" "$BASE" "$LAYOUT"
		for s in "${EPMDS[@]}" "${SERVERS[@]}"; do
			port=$(port_of "$s"); p=$(pid_of "$s" || true); st=$(state_of "$s" server)
			[ $first = 1 ] || printf ', '
			first=0
			printf '{"name": "%s", "host": "%s", "address": "%s", "port": %s, "pid": %s, "state": "%s", "log": "%s"}' \
				"$s" "$(server_host "$s")" "$(addr_of "$s")" "$port" "${p:-null}" "$st" "$(logfile "$s")"
		done
		printf '], "daemons": ['
		first=1
		for pl in "${PLATFORMS[@]}"; do
			for d in "${DAEMONS[@]}"; do
				for s in $(dnames "$pl" "$d"); do
					p=$(pid_of "$s" || true); st=$(state_of "$s")
					[ $first = 1 ] || printf ', '
					first=0
					printf '{"name": "%s", "platform": "%s", "daemon": "%s", "pid": %s, "state": "%s", "log": "%s"}' \
						"$s" "$pl" "$d" "${p:-null}" "$st" "$(logfile "$s")"
				done
			done
		done
		printf ']}\n'
		return 0
	fi
	echo "run dir $RUN, $LAYOUT-host"
	printf '%-18s %-5s %-21s %-8s %s\n' SERVER HOST ADDRESS PID STATE
	for s in "${EPMDS[@]}" "${SERVERS[@]}"; do
		port=$(addr_of "$s"):$(port_of "$s") p=$(pid_of "$s" || true)
		case $s in epmd*) port=$HOST:$(port_of "$s") ;; esac # on its host's loopback
		printf '%-18s %-5s %-21s %-8s %s\n' "$s" "$(server_host "$s")" "$port" "${p:--}" "$(state_of "$s" server)"
	done
	[ "$LAYOUT" = single ] || { echo; fault_status; }
	printf '\n%-18s %-5s %-21s %-8s %s\n' DAEMON HOST LOG PID STATE
	for pl in "${PLATFORMS[@]}"; do
		for d in "${DAEMONS[@]}"; do
			for s in $(dnames "$pl" "$d"); do
				p=$(pid_of "$s" || true)
				printf '%-18s %-5s %-21s %-8s %s\n' "$s" "$(server_host "$s")" "logs/$s.log" "${p:--}" "$(state_of "$s")"
			done
		done
	done
}

cmd_env() {

	q() { printf 'export %s=%q\n' "$1" "$2"; }
	q CONFDR_SANDBOX "$SELF"
	q CONFDR_RUN_DIR "$RUN"
	q CONFDR_PORT_BASE "$BASE"
	q CONFDR_SANDBOX_HOSTS "$LAYOUT"
	# TLS: the CA that signed the brokers' and MariaDB servers' certificates.
	q CONFDR_TLS_CA "$TLS_CA"
	# the administrator (inspection; the daemons take nothing it sends), then
	# one URL per role (docs/security.md), and where their passwords are
	q CONFDR_P1_AMQP_URL "$(amqp_url p1)"
	q CONFDR_P2_AMQP_URL "$(amqp_url p2)"
	for u in "${AMQP_ROLES[@]}"; do
		q "CONFDR_P1_AMQP_URL_${u^^}" "$(amqp_url p1 "$u")"
		q "CONFDR_P2_AMQP_URL_${u^^}" "$(amqp_url p2 "$u")"
	done
	q CONFDR_AMQP_SECRETS "$RUN/secrets"
	# confdrctl as the operators' broker user
	q CONFDR_AMQP_USER ops
	q CONFDR_AMQP_PASSWORD_FILE "$RUN/secrets/amqp-ops.password"
	# the web consoles of p1's and p2's first pms (docs/console.md; multi-host: on
	# the loopback of the platform's host)
	q CONFDR_P1_CONSOLE "http://127.0.0.1:$(console_port p1 1)/"
	q CONFDR_P2_CONSOLE "http://127.0.0.1:$(console_port p2 1)/"
	q CONFDR_P1_REDIS "$(redis_hp redis-p1)"
	q CONFDR_P2_REDIS "$(redis_hp redis-p2)"
	q CONFDR_P1_REDIS_REPLICA "$(redis_hp redis-p1-replica)"
	q CONFDR_P2_REDIS_REPLICA "$(redis_hp redis-p2-replica)"
	q CONFDR_ZK "$ZK_HOSTS"
	q CONFDR_ZK_CHROOT "$CHROOT"
	# CONFDR_MYSQL_HOST: p1's (the only one in single-host); CONFDR_P2_MYSQL_HOST p2's.
	q CONFDR_MYSQL_HOST "$(addr_of "$(srv mariadb p1)")"
	q CONFDR_P1_MYSQL_HOST "$(addr_of "$(srv mariadb p1)")"
	q CONFDR_P2_MYSQL_HOST "$(addr_of "$(srv mariadb p2)")"
	q CONFDR_MYSQL_PORT "$MYSQL_PORT"
	q CONFDR_P1_MYSQL_SOCKET "$(mysql_sock p1)"
	q CONFDR_P2_MYSQL_SOCKET "$(mysql_sock p2)"
	q CONFDR_MYSQL_USER confdr
	q CONFDR_MYSQL_PASSWORD confdr
	q CONFDR_P1_MYSQL_DB confdr_p1
	q CONFDR_P2_MYSQL_DB confdr_p2
	# The stores' users (docs/security.md, "Stores"): their password files,
	# and Redis's admin for redis-cli (the tests' and drills' checks).
	# Each daemon instance's /metrics, /healthz and /readyz (docs/metrics.md),
	# on the loopback of its platform's host (multi-host: ip netns exec
	# cdr-<base>-<platform> curl ...): CONFDR_METRICS_P1_CSS, ..._P1_CSS_2.
	local p d name
	for p in "${PLATFORMS[@]}"; do
		for d in "${DAEMONS[@]}"; do
			for name in $(dnames "$p" "$d"); do
				q "CONFDR_METRICS_$(tr a-z- A-Z_ <<<"$name")" "127.0.0.1:$(metrics_port "$name")"
			done
		done
	done
	q CONFDR_SECRETS "$SECRETS"
	q REDISCLI_AUTH "$(secret redis-admin 2>/dev/null)"
}

# console_port PLATFORM INSTANCE: the port of a pms's web console (docs/console.md):
# base + 440, five per platform (p1: 440..444, p2: 445..449), on the loopback of the
# pms's host.
console_port() {
	local k=0 q
	for q in "${PLATFORMS[@]}"; do [ "$q" = "$1" ] && break; k=$((k + 1)); done
	echo $((BASE + 440 + 5 * k + $2 - 1))
}

# daemon_conf PLATFORM DAEMON NAME: the configuration of instance NAME
# (p1-css: instance p1-css-1; p1-css-2: p1-css-2).
daemon_conf() {
	local p=$1 d=$2 i=${3##*-}
	case $i in [0-9]) ;; *) i=1 ;; esac
	cat <<CONF
# written by deploy/sandbox.sh start; conf/$d.conf lists every key
[daemon]
platform = $p
instance = $p-$d-$i
log_level = info
log_timestamps = true
# /metrics, /healthz, /readyz (docs/metrics.md), on its host's loopback
metrics_listen = 127.0.0.1:$(metrics_port "$3")

[zookeeper]
hosts = $ZK_HOSTS
chroot = $CHROOT
session_timeout = 6s
user = $d
password_file = $SECRETS/zk-$d.password

[amqp]
user = $d
password_file = $RUN/secrets/amqp-$d.password
# the CM simulator sets user_id: take no CM request without one
anonymous_cm = false
tls_ca = $TLS_CA

[mysql]
user = css
password_file = $SECRETS/mysql-css.password
tls_ca = $TLS_CA
CONF
	if [ "$d" = css ]; then
		cat <<CONF
migrations = $TOP/deploy/sql
migrations_user = migrate
migrations_password_file = $SECRETS/mysql-migrate.password

[redis]
user = css
password_file = $SECRETS/redis-css.password
CONF
	fi
	if [ "$d" = pms ]; then
		# The main room is also checked by a TCP connect to the platform's
		# Redis (it lives there); every room by its MCUs (the default).
		cat <<CONF

[pms]
beat_interval = 250ms
beat_misses = 8
peer_grace = 5s
# the web console of the active pms (docs/console.md), as the operators' user
console_listen = 127.0.0.1:$(console_port "$p" "$i")
console_password_file = $RUN/secrets/amqp-ops.password

[room $p-r1]
tcp = redis=$(redis_hp "redis-$p")
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
	for d in "${DAEMONS[@]}" supervise; do [ -x "$BUILD/confdr-$d" ] || missing+=("$BUILD/confdr-$d"); done
	[ ${#missing[@]} = 0 ] || die "daemon binaries missing: ${missing[*]}"
	# The daemons' passwords, in files only their owner reads (docs/configuration.md)
	mkdir -p "$RUN/secrets" && chmod 700 "$RUN/secrets"
	(umask 077 && printf 'confdr\n' >"$RUN/secrets/mysql.password")
	for d in "${AMQP_ROLES[@]}"; do amqp_secret "$d" >/dev/null; done
	for p in "${PLATFORMS[@]}"; do
		mkdir -p "$RUN/$p"
		for d in "${DAEMONS[@]}"; do
			for name in $(dnames "$p" "$d"); do
				if running "$name"; then say "$name already runs (pid $(pid_of "$name"))"; continue; fi
				daemon_conf "$p" "$d" "$name" >"$(dconf_of "$name")"
				spawn_daemon "$name" "$d" "$(dconf_of "$name")"
				started+=("$name")
				say "started $name (pid $(cat "$(pidfile "$name")"), log $(logfile "$name"))"
			done
		done
	done
	mkdir -p "$RUN/sims"
	for room in "${ROOMS[@]}"; do
		name=sim-$room p=${room%%-*}
		if running "$name"; then continue; fi
		spawn "$name" "$BUILD/mcusim" --platform "$p" --room "$room" --count 4 --capacity 500 --vrs 1 \
			--amqp "$(amqp_at "$p" mcu)" --state "$RUN/sims/$room.json" -q
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
	local p d n any=0
	# Every pms first: a pms that outlives a platform's own pms by more than
	# [pms] peer_grace declares that platform down (docs/pms.md). Standbys
	# (the second instances) first: an active one stopped first would hand
	# over to them for nothing.
	for d in pms css rms; do
		for p in "${PLATFORMS[@]}"; do
			for n in $(dnames "$p" "$d" | tac); do
				running "$n" || continue
				any=1
				say "stopping $n (pid $(pid_of "$n"))"
				stop_pid "$n" 20
			done
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
		if running "$s" || { p=$(listener_pid "$s") && [ -n "$p" ] && ours "$p"; }; then
			server_stop "$s"
		fi
	done
	for s in "${EPMDS[@]}"; do
		if running "$s"; then say "stopping $s (pid $(pid_of "$s"))"; stop_pid "$s" 10; fi
	done
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
	# Whatever still runs in our namespaces is ours: killed, then they go.
	if [ "$LAYOUT" = multi ]; then
		for s in "${NS_HOSTS[@]}"; do
			ns_exists "$s" || continue
			p=$(ipc netns pids "$(ns_name "$s")" | tr '\n' ' ')
			[ -z "${p// /}" ] || { warn "killing what still runs on $s: $p"; fault_power_off "$s" >/dev/null; }
		done
		hosts_down
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
	local nsmsg=
	if [ "$LAYOUT" = multi ]; then
		left=$(hosts_left)
		[ -z "$left" ] || die "namespaces or links of the sandbox still there: $(echo $left)"
		nsmsg="; no namespace $NS_TAG-*, no link c$BASE-* ('ip netns list', 'ip link')"
	fi
	rm -f "$RUN/hosts-mode" "$RUN/instances"
	say "down: no process of the sandbox is left (checked: pid files, 'pgrep -af $RUN/', the $MARK marker)$nsmsg"
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
		"$BUILD/cmsim" create --platform "$p" --amqp "$(amqp_at "$p" cm)" \
			--domain "ud-$p-r1-a" --domain "ud-$p-r1-b" --domain "ud-$p-r2-a" --domain "ud-$p-r2-b" \
			--count 200 --rate 200 --timeout 30 -q --json "$RUN/demo-$p.json" >&2 || bad=1
		n=$(jq -r .acked "$RUN/demo-$p.json" 2>/dev/null || echo 0)
		[ "$n" = 200 ] || { warn "only $n of 200 created on $p (NACK reasons above)"; bad=1; }
	done
	sleep 1.5 # css publishes its figures every second
	echo
	ctl status || bad=1
	[ $bad = 0 ] || { say "demo: some request was not answered, or a daemon is unreachable (see above)"; return 1; }
	say "demo: 400 conferences created on p1 and p2 (answers in $RUN/demo-p1.json, demo-p2.json); list them with 'eval \"\$($SELF env)\"; $BUILD/confdrctl --zk $ZK_HOSTS conf list' (the env holds the operators' credentials)"
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
	local all=$((6 * INSTANCES))
	say "waiting (up to 60 s) for the $all daemons of p1 and p2 ($INSTANCES of each) to be up and connected"
	rc=0
	out=$(ctl status --wait 60 --expect $all 2>&1) || rc=$?
	echo "$out"
	echo
	if [ $rc = 0 ]; then
		say "demo: all $all daemons (css, rms, pms of p1 and p2, $INSTANCES of each: one active, the others standby) are up and connected ($((SECONDS - t0)) s)"
		demo_confs || exit 1
		demo_drills || exit 1
		say "next: '$SELF status', 'eval \"\$($SELF env)\"; $BUILD/confdrctl --zk $ZK_HOSTS status', '$SELF drill --help', '$SELF down'"
		return 0
	fi
	say "demo: NOT all daemons are up and connected (confdrctl status exit $rc):"
	local p d n
	for p in "${PLATFORMS[@]}"; do
		for d in "${DAEMONS[@]}"; do
			for n in $(dnames "$p" "$d"); do
				running "$n" || { echo "  $n: process not running; last log lines:"; tail -n 5 "$(logfile "$n")" 2>/dev/null | sed 's/^/    /'; }
			done
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

usage() { sed -n '2,81p' "$SELF" | sed 's/^# \{0,1\}//'; }

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
amqp-definitions)
	# VHOST...: the broker users, their permissions on VHOSTs and the
	# dead-letter bound, as a RabbitMQ definitions file (tests/ns.sh)
	shift
	rmq_definitions "$@" ;;
rabbitmqctl)
	# --on P: P's broker (multi-host; single-host has one, --on accepted and ignored)
	shift
	on=p1
	[ "${1:-}" = --on ] && { on=${2:-}; shift 2; }
	case $on in p1 | p2) ;; *) die "rabbitmqctl --on wants p1 or p2" ;; esac
	# Without our epmd, the Erlang CLI would start a stray `epmd -daemon` on
	# our port that outlives everything (and blocks the next `up`).
	epmd_ok "$(epmd_of "$(srv rabbitmq "$on")")" ||
		die "the sandbox's broker is not running in $RUN (port base $BASE): deploy/sandbox.sh up first"
	rmqctl "$(srv rabbitmq "$on")" "$@" ;;
fault) shift; lock; mkdir -p "$RUN/pids" "$RUN/logs"; cmd_fault "$@" ;;
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
