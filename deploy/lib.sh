# What deploy/sandbox.sh and deploy/drill.sh share, sourced by both (not run):
# the sandbox's paths and ports, its processes (pid and log files, alive,
# ours, pid_of, spawn, stop_pid), bounded waits, redis-cli and confdrctl on the
# sandbox's servers, and the messages. Set PROG (the messages' prefix) before
# sourcing; SAY_T0 (a $SECONDS value) adds the seconds since then to say's lines.
# Environment: CONFDR_RUN_DIR (default <repo>/run), CONFDR_BUILD_DIR (default
# <repo>/build), CONFDR_PORT_BASE (default 17000; the ports below),
# CONFDR_SANDBOX_HOSTS (multi, the default, or single: the layout below).

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=$(realpath -m "${CONFDR_RUN_DIR:-$TOP/run}")
BUILD=$(realpath -m "${CONFDR_BUILD_DIR:-$TOP/build}")
BASE=${CONFDR_PORT_BASE:-17000}
HOST=127.0.0.1
CHROOT=/dr
# Every process the sandbox starts carries this in its environment; `down`
# finds leftovers by it (Redis overwrites its environment: found by its cwd).
MARK=CONFDR_SANDBOX_RUN

say() {
	if [ -n "${SAY_T0:-}" ]; then
		printf '%s: %4ds %s\n' "$PROG" $((SECONDS - SAY_T0)) "$*"
	else
		printf '%s: %s\n' "$PROG" "$*"
	fi
}
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }

case $BASE in '' | *[!0-9]*) die "CONFDR_PORT_BASE must be a number, not '$BASE'" ;; esac
[ "$BASE" -ge 1024 ] && [ "$BASE" -le 64000 ] || die "CONFDR_PORT_BASE must be within 1024..64000, not $BASE"

AMQP_PORT=$((BASE + 672)) DIST_PORT=$((BASE + 673)) EPMD_PORT=$((BASE + 369))
REDIS_P1=$((BASE + 379)) REDIS_P2=$((BASE + 380))
REDIS_P1_REPLICA=$((BASE + 381)) REDIS_P2_REPLICA=$((BASE + 382))
ZK_PORT=$((BASE + 181)) MYSQL_PORT=$((BASE + 306))
ZK_PEER_PORT=$((BASE + 188)) ZK_ELECTION_PORT=$((BASE + 189))
# The daemons' /metrics, /healthz and /readyz ([daemon] metrics_listen,
# docs/metrics.md): BASE+900 on, 12 per platform, 4 per daemon (css, rms,
# pms), one per instance: metrics_port p1-css-2 is BASE+901.
METRICS_PORT=$((BASE + 900))

# ---------------------------------------------------------------- layout

# The layout (docs/sandbox.md): "multi", each platform a host of its own (a
# network namespace, deploy/hosts.sh), or "single", everything on 127.0.0.1.
# A sandbox that is up keeps the layout it came up with (run/hosts-mode);
# otherwise CONFDR_SANDBOX_HOSTS, default multi.
if [ -s "$RUN/hosts-mode" ]; then
	LAYOUT=$(cat "$RUN/hosts-mode")
else
	LAYOUT=${CONFDR_SANDBOX_HOSTS:-multi}
fi
case $LAYOUT in multi | single) ;; *) die "CONFDR_SANDBOX_HOSTS must be multi or single, not '$LAYOUT'" ;; esac
# Multi-host: namespaces cdr-<base>-{p1,p2,zk}, one /24 of 198.18.0.0/15 per
# port base (base / 128: 17000 -> 198.18.132.0/24), ops (this namespace) .1,
# p1 .11, p2 .12, zk .13.
NS_TAG=cdr-$BASE
NET_IDX=$((BASE / 128))
NET=198.$((18 + NET_IDX / 256)).$((NET_IDX % 256))

# host_addr HOST: the address of HOST (ops p1 p2 zk).
host_addr() {
	[ "$LAYOUT" = single ] && { echo $HOST; return 0; }
	case $1 in ops) echo "$NET.1" ;; p1) echo "$NET.11" ;; p2) echo "$NET.12" ;; zk) echo "$NET.13" ;; *) return 1 ;; esac
}
# server_host NAME: the host a server (or daemon, simulator: by its platform) runs on.
server_host() {
	[ "$LAYOUT" = single ] && { echo ops; return 0; }
	case $1 in
	*-p1-replica) echo p2 ;; *-p2-replica) echo p1 ;;
	zookeeper-1) echo p1 ;; zookeeper-2) echo p2 ;; zookeeper-3) echo zk ;;
	drill-watch-*) echo ops ;;
	*-p1 | p1-* | *-p1-*) echo p1 ;; *-p2 | p2-* | *-p2-*) echo p2 ;;
	*) echo ops ;;
	esac
}
addr_of() { host_addr "$(server_host "$1")"; }
# srv KIND PLATFORM: the name of PLATFORM's rabbitmq, mariadb or epmd (one shared in single-host).
srv() { if [ "$LAYOUT" = single ]; then echo "$1"; else echo "$1-$2"; fi; }
# The brokers and MariaDB servers are TLS-only (docs/security.md, TLS), their
# certificates signed by the sandbox's CA (servers.sh, tls_ca_make), which
# every tool started from here is told of: CONFDR_TLS_CA.
TLS_CA=$RUN/tls/ca.pem
export CONFDR_TLS_CA=$TLS_CA
# The broker users of the roles (docs/security.md); confdr is the administrator.
AMQP_ROLES=(css rms pms mcu cm ops bmc)
# amqp_url PLATFORM [USER]: PLATFORM's broker as USER (default confdr), with
# the password of run/secrets/amqp-USER.password (for the tests' environment).
amqp_url() {
	local u=${2:-confdr}
	echo "amqps://$u:$(head -1 "$RUN/secrets/amqp-$u.password" 2>/dev/null)@$(addr_of "$(srv rabbitmq "$1")"):$AMQP_PORT/$1"
}
# amqp_at PLATFORM USER: the same without the password, for a tool's command
# line: the tool reads it from $CONFDR_AMQP_SECRETS/amqp-USER.password.
amqp_at() { echo "amqps://$2@$(addr_of "$(srv rabbitmq "$1")"):$AMQP_PORT/$1"; }
export CONFDR_AMQP_SECRETS=$RUN/secrets
mysql_sock() { echo "$RUN/$(srv mariadb "$1")/mysql.sock"; }
if [ "$LAYOUT" = single ]; then
	ZK_HOSTS=$HOST:$ZK_PORT
else
	ZK_HOSTS=$NET.11:$ZK_PORT,$NET.12:$ZK_PORT,$NET.13:$ZK_PORT
fi
# in_host HOST COMMAND...: COMMAND in HOST's namespace (here for ops and single-host).
in_host() {
	if [ "$1" = ops ] || [ "$LAYOUT" = single ]; then "${@:2}"; else ip netns exec "$NS_TAG-$1" "${@:2}"; fi
}
# ns_prefix HOST: the words that run a command in HOST's namespace (none for ops).
ns_prefix() { if [ "$1" = ops ] || [ "$LAYOUT" = single ]; then :; else echo "ip netns exec $NS_TAG-$1"; fi; }

# ---------------------------------------------------------------- processes

pidfile() { echo "$RUN/pids/$1.pid"; }
logfile() { echo "$RUN/logs/$1.log"; }

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	[ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	case ${st%% *} in Z | X | x | '') return 1 ;; esac
}

# ours PID: alive and started by this sandbox (this run dir), under the same
# root: a sandbox in another chroot (a fresh-machine run) may have the same
# run dir path and so the same mark.
ours() {
	local pid=$1 cwd
	alive "$pid" || return 1
	[ "/proc/$pid/root" -ef /proc/self/root ] || return 1
	grep -qzxF "$MARK=$RUN" "/proc/$pid/environ" 2>/dev/null && return 0
	if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redis-server ]; then
		cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
		case $cwd in "$RUN"/*) return 0 ;; esac
		# Started by 'ip netns exec' (a mount namespace of its own) under a
		# chroot, its cwd reads as a path from the machine's root: the same
		# directory is ours.
		[ -n "$cwd" ] && [ -d "$RUN/${cwd##*/}" ] && [ "$RUN/${cwd##*/}" -ef "/proc/$pid/cwd" ] && return 0
	fi
	return 1
}

# pid_of NAME: the pid in NAME's pid file when that process is ours; a stale
# pid file is removed.
pid_of() {
	local f p
	f=$(pidfile "$1")
	[ -s "$f" ] || return 1
	p=$(cat "$f" 2>/dev/null || true)
	if ours "$p"; then echo "$p"; return 0; fi
	rm -f "$f"
	return 1
}
running() { pid_of "$1" >/dev/null; }

# spawn NAME COMMAND...: runs COMMAND in its own session (so its whole process
# group can be stopped), marked, output appended to NAME's log, pid to NAME's
# pid file; working dir the run dir (crash dumps stay there). fd 9 (the sandbox
# lock) is not inherited.
# In multi-host, in the namespace of the host NAME runs on (server_host).
spawn() {
	local name=$1 h p
	shift
	h=$(ns_prefix "$(server_host "$name")")
	# The mark exported before the first exec (ip netns exec, which takes a
	# while on a loaded machine, or env), so the process has it from then on.
	# shellcheck disable=SC2086 # $h: words, no globs
	(cd "$RUN" && export "$MARK=$RUN" && exec $h env setsid "$@") >>"$(logfile "$name")" 2>&1 </dev/null 9>&- &
	p=$!
	echo $p >"$(pidfile "$name")"
	disown $p # a server or daemon killed on purpose (a drill) is not reported as a job of this shell
	# Until that exec, the forked shell is not recognisably ours (a check
	# then would call it gone and drop its pid file): wait for it, at most 5 s.
	for _ in $(seq 100); do ours $p && break; alive $p || break; sleep 0.05; done
}

# spawn_daemon NAME DAEMON CONF: the daemon (css, rms, pms) under
# confdr-supervise, which starts it again when it dies (1 s doubling to 60 s
# in a crash loop; not after a clean exit or exit 78, a configuration
# error). The pid file is the supervisor's: it leads the process group, so
# stop_pid (SIGTERM, passed on) and a drill's kill -9 of the group take
# both (docs/sandbox.md, "Supervision").
spawn_daemon() {
	spawn "$1" "$BUILD/confdr-supervise" --name "$1" -- "$BUILD/confdr-$2" -c "$3"
}
# daemon_of NAME: the daemon (css, rms, pms) of an instance's name
# (p1-css, p1-css-2).
daemon_of() {
	local n=${1%-[0-9]}
	echo "${n##*-}"
}
# daemon_pid NAME: the pid of the daemon itself (the supervisor's child).
daemon_pid() {
	local p
	p=$(pid_of "$1") || return 1
	pgrep -P "$p" -x "confdr-$(daemon_of "$1")" 2>/dev/null | head -n 1 | grep . || return 1
}

# Instances of each daemon per platform (docs/sandbox.md, "Active and
# standby"): the first is named P-D (p1-css), the others P-D-N (p1-css-2),
# with their configuration in run/P/D.conf and run/P/D-N.conf. A sandbox that
# is up keeps the count it started with (run/instances); otherwise
# CONFDR_INSTANCES, default 2.
if [ -s "$RUN/instances" ]; then
	INSTANCES=$(cat "$RUN/instances")
else
	INSTANCES=${CONFDR_INSTANCES:-2}
fi
case $INSTANCES in [1-4]) ;; *) die "CONFDR_INSTANCES must be 1..4, not '$INSTANCES'" ;; esac
# dnames PLATFORM DAEMON: the names of PLATFORM's instances of DAEMON.
dnames() {
	local i
	echo "$1-$2"
	for ((i = 2; i <= INSTANCES; i++)); do echo "$1-$2-$i"; done
}
# metrics_port NAME: the port of an instance's metrics_listen (p1-css, p2-pms-2).
metrics_port() {
	local p=${1%%-*} n=${1#*-} d i=1 pi di
	d=${n%%-*}
	[ "$d" != "$n" ] && i=${n##*-}
	case $p in p1) pi=0 ;; p2) pi=1 ;; *) return 1 ;; esac
	case $d in css) di=0 ;; rms) di=1 ;; pms) di=2 ;; *) return 1 ;; esac
	echo $((METRICS_PORT + 12 * pi + 4 * di + i - 1))
}
# dconf_of NAME: the configuration file of an instance.
dconf_of() {
	local p=${1%%-*} n=${1#*-}
	echo "$RUN/$p/$n.conf"
}

# group_alive PID: a live process is left in the process group PID leads.
group_alive() {
	local p
	for p in $(pgrep -g "$1" 2>/dev/null); do alive "$p" && return 0; done
	alive "$1"
}

# stop_pid NAME SECONDS: SIGTERM to NAME's process, wait up to SECONDS for it
# and its process group to be gone, then SIGKILL the group. No-op if not running.
stop_pid() {
	local name=$1 t=$2 p
	p=$(pid_of "$name") || { rm -f "$(pidfile "$name")"; return 0; }
	kill -TERM "$p" 2>/dev/null || true
	wait_gone "$name" "$p" "$t"
	rm -f "$(pidfile "$name")"
}

# wait_gone NAME PID SECONDS: waits for PID's group to end; SIGKILL after SECONDS.
wait_gone() {
	local name=$1 p=$2 t=$3 end pg
	pg=$p
	[ "$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')" = "$p" ] || pg=
	end=$((SECONDS + t))
	while if [ -n "$pg" ]; then group_alive "$pg"; else alive "$p"; fi; do
		if [ $SECONDS -ge $end ]; then
			warn "$name (pid $p) did not stop within ${t}s; killing it"
			if [ -n "$pg" ]; then kill -KILL -- "-$pg" 2>/dev/null || true; fi
			kill -KILL "$p" 2>/dev/null || true
			end=$((SECONDS + 10))
			while alive "$p"; do
				[ $SECONDS -ge $end ] && die "$name (pid $p) survives SIGKILL"
				sleep 0.1
			done
			return 0
		fi
		sleep 0.1
	done
}

# show_log NAME [LINES]: the tail of NAME's log, on stderr.
show_log() {
	echo "---- last lines of $(logfile "$1") ----" >&2
	tail -n "${2:-25}" "$(logfile "$1")" >&2 2>/dev/null || echo "(no log)" >&2
	echo "----" >&2
}

# ---------------------------------------------------------------- waits

# wait_until SECONDS NAME COMMAND...: polls COMMAND until it succeeds; fails
# with the tail of NAME's log after SECONDS, or at once when NAME's process died.
wait_until() {
	local t=$1 name=$2 end
	shift 2
	end=$((SECONDS + t))
	until "$@" >/dev/null 2>&1; do
		if ! running "$name"; then
			echo "$PROG: $name exited while starting" >&2
			show_log "$name"
			return 1
		fi
		if [ $SECONDS -ge $end ]; then
			echo "$PROG: $name did not answer within ${t}s" >&2
			show_log "$name"
			return 1
		fi
		sleep 0.2
	done
}

# wait_for SECONDS WHAT CMD...: polls CMD every 0.5 s; a progress line every 10 s.
wait_for() {
	local s=$1 what=$2 start=$SECONDS next=$((SECONDS + 10))
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ $((SECONDS - start)) -ge "$s" ] && { warn "$what: not within $s s"; return 1; }
		[ $SECONDS -ge $next ] && { say "  still waiting ($((SECONDS - start)) s of $s): $what"; next=$((SECONDS + 10)); }
		sleep 0.5
	done
}

# ---------------------------------------------------------------- servers

# redis_port NAME: the port of a Redis of the sandbox (redis-p1, redis-p1-replica, ...).
redis_port() {
	case $1 in
	redis-p1) echo $REDIS_P1 ;; redis-p2) echo $REDIS_P2 ;;
	redis-p1-replica) echo $REDIS_P1_REPLICA ;; redis-p2-replica) echo $REDIS_P2_REPLICA ;; *) return 1 ;;
	esac
}
redis_hp() { echo "$(addr_of "$1"):$(redis_port "$1")"; }
# rcli NAME ARGS: redis-cli on NAME as Redis's default user, the sandbox's
# admin (its password from run/secrets, through the environment: never argv).
rcli() {
	REDISCLI_AUTH=$(cat "$SECRETS/redis-admin.password" 2>/dev/null) \
		timeout 10 redis-cli -h "$(addr_of "$1")" -p "$(redis_port "$1")" "${@:2}"
}
replica_linked() { rcli "$1" info replication 2>/dev/null | grep -q '^master_link_status:up'; }
# mysql_root PLATFORM ARGS: root on PLATFORM's MariaDB (the one in single-host), by its
# socket (root is unix_socket or its password: servers.sh setup_mariadb).
# MYSQL_ROOT_FRESH=1: without it (a server just installed, before setup_mariadb).
mysql_root() {
	local pw
	[ -n "${MYSQL_ROOT_FRESH:-}" ] || pw=$(cat "$SECRETS/mysql-root.password" 2>/dev/null)
	MYSQL_PWD=${pw:-} timeout 60 mariadb --no-defaults --socket="$(mysql_sock "$1")" -uroot --connect-timeout=5 "${@:2}"
}
# confdrctl on the sandbox's ZooKeeper and chroot, as the deploy user (the
# sandbox is the deploy tool; docs/security.md, Stores), Redis's admin and
# the broker's ops user: passwords from their files, never on the command line.
ctl() {
	CONFDR_ZK_USER=deploy CONFDR_ZK_PASSWORD_FILE=$SECRETS/zk-deploy.password CONFDR_ZK_IDS=$SECRETS/zk.ids \
		CONFDR_REDIS_PASSWORD_FILE=$SECRETS/redis-admin.password \
		CONFDR_AMQP_USER=ops CONFDR_AMQP_PASSWORD_FILE=$RUN/secrets/amqp-ops.password \
		timeout 120 "$BUILD/confdrctl" --zk "$ZK_HOSTS" --chroot "$CHROOT" "$@" 9>&-
}

# ---------------------------------------------------------------- secrets

# The stores' users (docs/security.md, "Stores"): one random password per
# user and sandbox, each in run/secrets/NAME.password (mode 0600), made once
# and kept (the servers' data dirs keep the users across up/down).
# CONFDR_SECRETS (sandbox.sh env exports it): another sandbox's, for the
# private servers tests/ns.sh starts in a run dir of their own.
SECRETS=${CONFDR_SECRETS:-$RUN/secrets}
SECRET_NAMES=(zk-deploy zk-css zk-rms zk-pms redis-admin redis-css redis-ops redis-replica
	mysql-root mysql-css mysql-migrate mysql-ops)
make_secrets() {
	local n
	mkdir -p "$SECRETS" && chmod 700 "$SECRETS"
	for n in "${SECRET_NAMES[@]}"; do
		[ -s "$SECRETS/$n.password" ] && continue
		(umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$SECRETS/$n.password.new" &&
			echo >>"$SECRETS/$n.password.new" && mv "$SECRETS/$n.password.new" "$SECRETS/$n.password")
	done
	# The daemons' ZooKeeper ids, for confdrctl topology load --zk-ids (not
	# secret, but a hash of a password: kept with them).
	(umask 077 && for n in css rms pms; do
		printf '%s %s:%s\n' $n $n "$(printf '%s:%s' $n "$(head -n 1 "$SECRETS/zk-$n.password")" |
			openssl dgst -sha1 -binary | base64)"
	done >"$SECRETS/zk.ids")
}
secret() { head -n 1 "$SECRETS/$1.password"; }
