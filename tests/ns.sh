#!/usr/bin/env bash
# A namespace of its own for one integration test on the sandbox's shared
# servers, so that tests run in parallel (ctest -j) and none flushes, empties
# or stops what another uses. Every integration test runs under it (ctest
# does it; by hand, the same line with the sandbox env).
#
# Usage: tests/ns.sh run NAME [--private SERVER]... -- COMMAND [ARG]...
#          creates namespace NAME, runs COMMAND in it, removes it (also when
#          COMMAND fails or is interrupted); exits with COMMAND's status
#        tests/ns.sh remove NAME
#          removes what is left of namespace NAME (a run removes it first too)
#
# Namespace NAME (letters, digits, '_'; up to 24) on the sandbox of
# CONFDR_RUN_DIR:
#   RabbitMQ   vhosts NAME-p1, NAME-p2, user confdr allowed everything there
#   Redis      a database index of its own (1..databases-1, claimed under
#              run/ns/), the same on p1's and p2's Redis (and their replicas)
#   MariaDB    databases confdr_NAME_p1, confdr_NAME_p2 (empty: daemons and
#              tests migrate them from deploy/sql, as on the sandbox's own)
#   ZooKeeper  chroot /ns-NAME with conf/sandbox-topology.json and endpoints
#              that name all of the above (run/ns/NAME/endpoints.json)
# --private SERVER (rabbitmq, redis-p1, redis-p1-replica, repeatable): a
# server of the test's own instead of the shared one, for tests that stop or
# restart it, started by deploy/sandbox.sh in run/ns/NAME/servers on ports
# from a slot of its own (sandbox port base + 300 + 20 x slot, 3 slots) and
# torn down with the namespace.
#
# COMMAND sees the sandbox env with the namespace's values: CONFDR_NS,
# CONFDR_P{1,2}_AMQP_URL, CONFDR_P{1,2}_VHOST, CONFDR_P{1,2}_REDIS{,_REPLICA},
# CONFDR_P{1,2}_REDIS_DB, CONFDR_P{1,2}_MYSQL_DB, CONFDR_ZK_CHROOT,
# CONFDR_NS_ENDPOINTS; with --private also CONFDR_RUN_DIR and CONFDR_PORT_BASE
# of its servers (so "$CONFDR_SANDBOX" server stop|start NAME stops its own).
# Needs the sandbox env (eval "$(deploy/sandbox.sh env)") and
# CONFDR_BINARY_DIR (confdrctl, ns_zk). Every wait is bounded.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'ns: %s\n' "$*" >&2; }
die() { printf 'ns: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '6,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

for v in CONFDR_SANDBOX CONFDR_RUN_DIR CONFDR_ZK CONFDR_P1_REDIS CONFDR_P2_REDIS CONFDR_P1_REDIS_REPLICA \
	CONFDR_P2_REDIS_REPLICA CONFDR_MYSQL_HOST CONFDR_MYSQL_PORT CONFDR_BINARY_DIR; do
	[ -n "${!v:-}" ] || die "$v is not set: run under the sandbox env (eval \"\$(deploy/sandbox.sh env)\") with CONFDR_BINARY_DIR"
done
[ "${CONFDR_SANDBOX_HOSTS:-single}" = single ] ||
	die "the sandbox is multi-host: the namespaces of tests/ns.sh need a single-host one (CONFDR_SANDBOX_HOSTS=single deploy/sandbox.sh up; docs/testing.md)"
run=$CONFDR_RUN_DIR
host=${CONFDR_ZK%:*}
# The sandbox's port base: its ZooKeeper listens on base + 181 (deploy/sandbox.sh).
base=$((${CONFDR_ZK##*:} - 181))
slots=3

rcli() { timeout 10 redis-cli -h "${1%:*}" -p "${1##*:}" "${@:2}"; }
# root by the socket: unix_socket, or its password (deploy/servers.sh setup_mariadb)
mysql_root() {
	MYSQL_PWD=$(cat "${CONFDR_SECRETS:-$run/secrets}/mysql-root.password" 2>/dev/null) \
		timeout 30 mariadb --no-defaults --socket="$run/mariadb/mysql.sock" -uroot --connect-timeout=5 "$@"
}
# sb_private DIR BASE ARGS: deploy/sandbox.sh on a namespace's private servers.
sb_private() { CONFDR_RUN_DIR=$1 CONFDR_PORT_BASE=$2 CONFDR_SANDBOX_HOSTS=single "$CONFDR_SANDBOX" "${@:3}"; }

# alive PID: a live process.
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# claim KIND N...: the first of N... not held by a live ns.sh (a directory
# run/ns/KIND.N holding the owner's pid and name), taken for NAME; waits up
# to 300 s for one. Prints N.
claim() {
	local kind=$1 n end=$((SECONDS + 300))
	shift
	while [ $SECONDS -lt $end ]; do
		for n in "$@"; do
			if mkdir "$run/ns/$kind.$n" 2>/dev/null; then
				echo "$$ $ns" >"$run/ns/$kind.$n/owner"
				echo "$n"
				return 0
			fi
			# held by an ns.sh that is gone (killed): free it
			local owner
			owner=$(cat "$run/ns/$kind.$n/owner" 2>/dev/null) || continue
			alive "${owner%% *}" || rm -rf "$run/ns/$kind.$n"
		done
		sleep 0.5
	done
	die "no free $kind for namespace $ns within 300 s (held: $(cat "$run"/ns/"$kind".*/owner 2>/dev/null | tr '\n' ' '))"
}
# release KIND: what namespace NAME holds of KIND.
release() {
	local d
	for d in "$run/ns/$1".*; do
		[ -d "$d" ] || continue
		[ "$(cut -d' ' -f2 "$d/owner" 2>/dev/null)" = "$ns" ] && rm -rf "$d"
	done
}
# held KIND: the N namespace NAME holds of KIND, if any.
held() {
	local d
	for d in "$run/ns/$1".*; do
		[ -d "$d" ] || continue
		[ "$(cut -d' ' -f2 "$d/owner" 2>/dev/null)" = "$ns" ] && { echo "${d##*.}"; return 0; }
	done
	return 1
}

# The namespace's broker: its private one if it has one, else the sandbox's.
rmq() {
	if [ -e "$dir/private-rabbitmq" ]; then
		sb_private "$dir/servers" "$pbase" rabbitmqctl -q "$@"
	else
		"$CONFDR_SANDBOX" rabbitmqctl -q "$@"
	fi
}

ns_remove() {
	local db slot
	[ -d "$dir" ] || [ -n "$(held redis-db)" ] || return 0
	if db=$(held redis-db); then
		rcli "$CONFDR_P1_REDIS" -n "$db" FLUSHDB >/dev/null
		rcli "$CONFDR_P2_REDIS" -n "$db" FLUSHDB >/dev/null
	fi
	if [ ! -e "$dir/private-rabbitmq" ]; then
		for v in p1 p2; do
			rmq list_vhosts 2>/dev/null | grep -qx "$ns-$v" && rmq delete_vhost "$ns-$v" >/dev/null
		done
	fi
	if slot=$(held slot); then
		pbase=$((base + 300 + 20 * slot))
		if [ -d "$dir/servers" ] && ! sb_private "$dir/servers" "$pbase" down >"$dir/down.log" 2>&1; then
			cat "$dir/down.log" >&2
			say "$ns: its private servers did not all stop (deploy/sandbox.sh down in $dir/servers)"
		fi
	fi
	mysql_root -e "DROP DATABASE IF EXISTS confdr_${ns}_p1; DROP DATABASE IF EXISTS confdr_${ns}_p2" ||
		say "$ns: dropping its MariaDB databases failed"
	timeout 30 "$CONFDR_BINARY_DIR/ns_zk" "$CONFDR_ZK" "/ns-$ns" || say "$ns: removing its ZooKeeper chroot failed"
	release redis-db
	release slot
	rm -rf "$dir"
}

# ns_create PRIVATE...: everything of namespace NAME; its env in $dir/env.
ns_create() {
	local s n db slot amqp r1 r2 r1r r2r p u v secrets
	mkdir -p "$run/ns" "$dir"
	amqp=$(sed -n 's|.*@[^:]*:\([0-9]*\)/.*|\1|p' <<<"${CONFDR_P1_AMQP_URL:-}")
	[ -n "$amqp" ] || die "CONFDR_P1_AMQP_URL ('${CONFDR_P1_AMQP_URL:-}') names no broker port"
	r1=$CONFDR_P1_REDIS r2=$CONFDR_P2_REDIS r1r=$CONFDR_P1_REDIS_REPLICA r2r=$CONFDR_P2_REDIS_REPLICA
	if [ $# -gt 0 ]; then
		slot=$(claim slot $(seq 0 $((slots - 1)))) || exit 1
		pbase=$((base + 300 + 20 * slot))
		# Private servers get the sandbox's CA (CONFDR_TLS_CA stays good for
		# them): their certificates are signed by it.
		if [ -s "$run/tls/ca.key" ]; then
			mkdir -p "$dir/servers/tls" && chmod 700 "$dir/servers/tls"
			cp -p "$run/tls/ca.pem" "$run/tls/ca.key" "$dir/servers/tls/"
		fi
		for s in "$@"; do
			sb_private "$dir/servers" "$pbase" server start "$s" >"$dir/servers.log" 2>&1 ||
				{ cat "$dir/servers.log" >&2; die "$ns: private $s did not start"; }
			p=$(sb_private "$dir/servers" "$pbase" status --json | jq -r --arg s "$s" '.servers[] | select(.name == $s) | .port')
			case $s in
			rabbitmq) amqp=$p && : >"$dir/private-rabbitmq" ;;
			redis-p1) r1=$host:$p ;; redis-p1-replica) r1r=$host:$p ;;
			esac
		done
	fi
	# RabbitMQ: the vhosts, the users of every role and their permissions
	# there, as the sandbox's own (docs/security.md), in one import.
	secrets=$run/secrets
	if [ -e "$dir/private-rabbitmq" ]; then
		secrets=$dir/servers/secrets
		sb_private "$dir/servers" "$pbase" amqp-definitions "$ns-p1" "$ns-p2" >"$dir/vhosts.json"
	else
		"$CONFDR_SANDBOX" amqp-definitions "$ns-p1" "$ns-p2" >"$dir/vhosts.json"
	fi || die "$ns: the broker's definitions for $ns-p1, $ns-p2 not made"
	rmq import_definitions "$dir/vhosts.json" >/dev/null || die "$ns: creating vhosts $ns-p1, $ns-p2 failed"
	# Redis: a database index of its own, emptied.
	n=$(rcli "$CONFDR_P1_REDIS" CONFIG GET databases | sed -n 2p)
	[ "${n:-0}" -ge 2 ] || die "Redis $CONFDR_P1_REDIS: cannot read its 'databases' setting"
	db=$(claim redis-db $(seq 1 $((n - 1)))) || exit 1
	for s in "$r1" "$r2"; do
		[ "$(rcli "$s" -n "$db" FLUSHDB)" = OK ] || die "$ns: FLUSHDB of database $db of Redis $s failed"
	done
	# MariaDB: databases of its own (dropped first: a killed run may have left them).
	mysql_root <<SQL || die "$ns: creating its MariaDB databases failed"
DROP DATABASE IF EXISTS confdr_${ns}_p1;
DROP DATABASE IF EXISTS confdr_${ns}_p2;
CREATE DATABASE confdr_${ns}_p1;
CREATE DATABASE confdr_${ns}_p2;
GRANT ALL PRIVILEGES ON confdr_${ns}_p1.* TO 'confdr'@'127.0.0.1', 'confdr'@'localhost';
GRANT ALL PRIVILEGES ON confdr_${ns}_p2.* TO 'confdr'@'127.0.0.1', 'confdr'@'localhost';
SQL
	# ZooKeeper: the sandbox topology with endpoints naming the above.
	cat >"$dir/endpoints.json" <<JSON
{
  "p1": {"p1-r1": {"mq": {"host": "$host", "port": $amqp, "vhost": "$ns-p1"},
                   "redis": {"host": "${r1%:*}", "port": ${r1##*:}, "db": $db},
                   "mysql": {"host": "$CONFDR_MYSQL_HOST", "port": $CONFDR_MYSQL_PORT, "database": "confdr_${ns}_p1"}}},
  "p2": {"p2-r1": {"mq": {"host": "$host", "port": $amqp, "vhost": "$ns-p2"},
                   "redis": {"host": "${r2%:*}", "port": ${r2##*:}, "db": $db},
                   "mysql": {"host": "$CONFDR_MYSQL_HOST", "port": $CONFDR_MYSQL_PORT, "database": "confdr_${ns}_p2"}}},
  "replicas": {"p1": {"redis": {"host": "${r1r%:*}", "port": ${r1r##*:}, "db": $db, "on_platform": "p2"}},
               "p2": {"redis": {"host": "${r2r%:*}", "port": ${r2r##*:}, "db": $db, "on_platform": "p1"}}}
}
JSON
	timeout 120 "$CONFDR_BINARY_DIR/confdrctl" --zk "$CONFDR_ZK" --chroot "/ns-$ns" topology load \
		"$top/conf/sandbox-topology.json" --endpoints "$dir/endpoints.json" >/dev/null ||
		die "$ns: loading the topology into ZooKeeper /ns-$ns failed"
	{
		q() { printf 'export %s=%q\n' "$1" "$2"; }
		q CONFDR_NS "$ns"
		q CONFDR_NS_ENDPOINTS "$dir/endpoints.json"
		q CONFDR_ZK_CHROOT "/ns-$ns"
		for p in p1 p2; do
			for u in confdr css rms pms mcu cm ops bmc; do
				v=CONFDR_${p^^}_AMQP_URL
				[ $u = confdr ] || v=${v}_${u^^}
				q "$v" "${CONFDR_P1_AMQP_URL%%://*}://$u:$(head -1 "$secrets/amqp-$u.password")@$host:$amqp/$ns-$p"
			done
			q "CONFDR_${p^^}_VHOST" "$ns-$p"
			q "CONFDR_${p^^}_REDIS_DB" "$db"
			q "CONFDR_${p^^}_MYSQL_DB" "confdr_${ns}_$p"
		done
		q CONFDR_AMQP_SECRETS "$secrets"
		q CONFDR_AMQP_PASSWORD_FILE "$secrets/amqp-ops.password"
		q CONFDR_P1_REDIS "$r1"
		q CONFDR_P1_REDIS_REPLICA "$r1r"
		if [ -d "$dir/servers" ]; then
			q CONFDR_RUN_DIR "$dir/servers"
			q CONFDR_PORT_BASE "$pbase"
		fi
	} >"$dir/env"
}

cmd=${1:-}
case $cmd in
run | remove) ;;
-h | --help | help) usage; exit 0 ;;
*) usage >&2; exit 64 ;;
esac
ns=${2:-}
[[ $ns =~ ^[A-Za-z0-9_]{1,24}$ ]] || { usage >&2; die "NAME must be 1..24 letters, digits or '_', not '$ns'"; }
dir=$run/ns/$ns
pbase=
shift 2

if [ "$cmd" = remove ]; then
	[ $# = 0 ] || { usage >&2; exit 64; }
	ns_remove
	exit 0
fi

private=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	case $1 in
	--private)
		case ${2:-} in rabbitmq | redis-p1 | redis-p1-replica) private+=("$2") ;;
		*) die "--private: one of rabbitmq, redis-p1, redis-p1-replica, not '${2:-}'" ;;
		esac
		shift 2 ;;
	*) usage >&2; exit 64 ;;
	esac
done
[ "${1:-}" = -- ] && [ $# -ge 2 ] || { usage >&2; exit 64; }
shift

t0=$SECONDS
ns_remove # what a killed run left
trap 'ns_remove; exit 1' INT TERM
# A namespace half made (a server or store that failed) is removed whole:
# its private servers and its claims would otherwise block the next test.
if ! (ns_create "${private[@]}"); then
	ns_remove
	exit 1
fi
say "$ns ready in $((SECONDS - t0)) s (${private[*]:+private ${private[*]}; }env $dir/env)"
(. "$dir/env" && exec "$@")
rc=$?
trap - INT TERM
ns_remove
exit $rc
