#!/usr/bin/env bash
# The attacks on the stores (issue 22; docs/security.md, "Stores"): each
# tried with every role's credentials where it means something, each must be
# refused by ZooKeeper, Redis or MariaDB; and beside each, the legitimate
# action of the role that owns it still works, so that no check passes
# because everything is broken. TAP-style lines; exit 1 if any failed.
#
# Run against a single-host sandbox, with its env (ctest runs it as
# attacks/stores, under tests/ns.sh: the namespace is not used), on the
# sandbox's own chroot, Redis and databases, which hold the ACLs and grants:
#   eval "$(deploy/sandbox.sh env)"; bash tests/attacks/stores.sh
# Nothing is changed for good while the stores refuse what they should: the
# nodes, keys and table it makes are its own (named attack-PID) and removed;
# writes of real nodes write back what was there. Where a store wrongly
# allows an attack, some are destructive (FLUSHALL, SHUTDOWN, an endpoint
# moved): a sandbox only, never a production system. The daemons may run or
# not (with them, the deletion of a running css's liveness node is tried).
set -uo pipefail -f # -f: the commands' words below hold '*'

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${CONFDR_BINARY_DIR:-${CONFDR_BUILD_DIR:-$top/build}}
: "${CONFDR_ZK:?run under the sandbox env: eval \"\$(deploy/sandbox.sh env)\"}" "${CONFDR_SECRETS:?no CONFDR_SECRETS: a sandbox with store users (deploy/sandbox.sh up)}"
: "${CONFDR_P1_REDIS:?}" "${CONFDR_P1_REDIS_REPLICA:?}" "${CONFDR_MYSQL_HOST:?}" "${CONFDR_MYSQL_PORT:?}"
[ -x "$bin/zk_try" ] || { echo "Bail out! $bin/zk_try missing (build it; CONFDR_BUILD_DIR)"; exit 1; }
# The sandbox's chroot (deploy/lib.sh CHROOT), not a test namespace's.
chroot=${CONFDR_STORES_CHROOT:-/dr}
tag=attack-$$
n=0 failures=0
work=$(mktemp -d -t confdr-attacks.XXXXXX)
trap 'cleanup; rm -rf "$work"' EXIT

ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failures=$((failures + 1)); echo "not ok $n - $*"; }
# expect WHAT WANT OUTPUT: ok if OUTPUT starts with (or holds) WANT
expect() {
	case $3 in "$2"* | *$'\n'"$2"*) ok "$1" ;; *) not_ok "$1 (want '$2', got '$(head -c 200 <<<"$3" | tr '\n' ' ')')" ;; esac
}

# ---------------------------------------------------------------- ZooKeeper

# zk USER|- OP PATH [DATA]: one request as USER (its password from the
# secrets), or unauthenticated; prints the outcome (ok, ZNOAUTH, ...).
zk() { "$bin/zk_try" "$CONFDR_ZK" "$1" "$CONFDR_SECRETS/zk-$1.password" "$2" "$chroot$3" "${@:4}" 2>&1; }
zk_data() { zk "$1" get "$2" | sed -n 2p; }

cleanup() {
	zk css delete "/live/p1/css/$tag" >/dev/null 2>&1
	zk pms delete "/state/$tag" >/dev/null 2>&1
	admin_redis DEL "answer:$tag" "other:$tag" >/dev/null 2>&1
	root_sql "DROP DATABASE IF EXISTS confdr_attack_other; DROP TABLE IF EXISTS confdr_p1.${tag//-/_};
		DROP TABLE IF EXISTS confdr_p2.${tag//-/_}" >/dev/null 2>&1
	:
}

echo "# ZooKeeper $CONFDR_ZK chroot $chroot"
mq=/endpoints/p1/p1-r1/mq redis_ep=/endpoints/p1/p1-r1/redis
mq_data=$(zk_data - "$mq")
[ -n "$mq_data" ] || { echo "Bail out! $chroot$mq unreadable: no sandbox topology?"; exit 1; }
expect "anyone reads $mq (endpoints are not secret)" ok "$(zk - get "$mq")"
# The attack of issue 22: p1's AMQP endpoint pointed elsewhere.
for who in - css rms pms; do
	expect "${who/-/unauthenticated}: writing $mq refused" ZNOAUTH "$(zk "$who" set "$mq" '{"host":"127.0.0.1","port":1,"vhost":"p1"}')"
	expect "${who/-/unauthenticated}: deleting $mq refused" ZNOAUTH "$(zk "$who" delete "$mq")"
	expect "${who/-/unauthenticated}: creating a platform in /topology refused" ZNOAUTH "$(zk "$who" create /topology/platforms/p9)"
	expect "${who/-/unauthenticated}: creating a node in the chroot refused" ZNOAUTH "$(zk "$who" create "/$tag")"
done
expect "deploy: writes $mq (the same data back)" ok "$(zk deploy set "$mq" "$mq_data")"
[ "$(zk_data - "$mq")" = "$mq_data" ] && ok "$mq unchanged by all of it" || not_ok "$mq changed: $(zk_data - "$mq")"

# The Redis endpoint: css publishes a promoted replica there; nobody else.
redis_data=$(zk_data - "$redis_ep")
for who in - rms pms; do
	expect "${who/-/unauthenticated}: writing $redis_ep refused" ZNOAUTH "$(zk "$who" set "$redis_ep" "$redis_data")"
done
expect "css: writes $redis_ep (a takeover; the same data back)" ok "$(zk css set "$redis_ep" "$redis_data")"
expect "css: deleting $redis_ep refused" ZNOAUTH "$(zk css delete "$redis_ep")"

# /state: pms only.
for who in - css rms; do
	expect "${who/-/unauthenticated}: creating under /state refused" ZNOAUTH "$(zk "$who" create "/state/$tag")"
	if st=$(zk_data - /state/p1/platform) && [ -n "$st" ]; then
		expect "${who/-/unauthenticated}: writing /state/p1/platform refused" ZNOAUTH "$(zk "$who" set /state/p1/platform "$st")"
	fi
done
expect "pms: creates and deletes a node under /state" ok "$(zk pms create "/state/$tag")"
expect "... deleted by pms" ok "$(zk pms delete "/state/$tag")"
for who in - css rms; do
	expect "${who/-/unauthenticated}: creating a beat under /heartbeat refused" ZNOAUTH "$(zk "$who" create "/heartbeat/$tag")"
done

# /live and /election: each daemon its own.
expect "css: creates a liveness node of its own in /live/p1/css" ok "$(zk css create "/live/p1/css/$tag")"
for who in - rms pms deploy; do
	[ "$who" = deploy ] && continue # deploy owns the directories: may clean up after a crash
	expect "${who/-/unauthenticated}: deleting css's liveness node refused" ZNOAUTH "$(zk "$who" delete "/live/p1/css/$tag")"
	expect "${who/-/unauthenticated}: creating a liveness node in /live/p1/css refused" ZNOAUTH "$(zk "$who" create "/live/p1/css/x-$tag")"
	expect "${who/-/unauthenticated}: joining css's election refused" ZNOAUTH "$(zk "$who" create "/election/p1/css/n_$tag")"
done
live=$(zk - children /live/p1/css | sed -n '2,$p' | grep -vx "$tag" | head -n 1)
if [ -n "$live" ]; then
	expect "rms: deleting the running css's liveness node /live/p1/css/$live refused" ZNOAUTH "$(zk rms delete "/live/p1/css/$live")"
else
	echo "# no css runs: the deletion of a running daemon's liveness node is not tried"
fi
expect "css: deletes its own liveness node" ok "$(zk css delete "/live/p1/css/$tag")"
expect "rms: creates (and the session's end removes) an ephemeral node in /live/p1/rms" ok "$(zk rms create-ephemeral "/live/p1/rms/$tag")"

# A wrong password: ZooKeeper's digest scheme takes any login (the session
# is then someone else, "css:<another hash>"), and that someone may write
# nothing of css's.
(umask 077 && echo not-the-password >"$work/wrong.password")
expect "css with a wrong password: writing $redis_ep refused" ZNOAUTH \
	"$("$bin/zk_try" "$CONFDR_ZK" css "$work/wrong.password" set "$chroot$redis_ep" "$redis_data" 2>&1)"
expect "css with a wrong password: joining css's election refused" ZNOAUTH \
	"$("$bin/zk_try" "$CONFDR_ZK" css "$work/wrong.password" create "$chroot/election/p1/css/n_$tag" 2>&1)"
[ "$(zk_data - "$redis_ep")" = "$redis_data" ] && ok "$redis_ep unchanged by all of it" || not_ok "$redis_ep changed"

# ---------------------------------------------------------------- Redis

# redis HOST:PORT USER|- ARGS: redis-cli as USER (password from the secrets;
# "admin" is the default user), or with no login at all.
redis() {
	local hp=$1 u=$2
	shift 2
	case $u in
	-) env -u REDISCLI_AUTH timeout 10 redis-cli -h "${hp%:*}" -p "${hp##*:}" "$@" 2>&1 ;;
	admin) REDISCLI_AUTH=$(cat "$CONFDR_SECRETS/redis-admin.password") timeout 10 redis-cli -h "${hp%:*}" -p "${hp##*:}" "$@" 2>&1 ;;
	*) REDISCLI_AUTH=$(cat "$CONFDR_SECRETS/redis-$u.password") timeout 10 redis-cli -h "${hp%:*}" -p "${hp##*:}" --user "$u" "$@" 2>&1 ;;
	esac
}
admin_redis() { redis "$CONFDR_P1_REDIS" admin "$@"; }
P=$CONFDR_P1_REDIS R=$CONFDR_P1_REDIS_REPLICA

echo "# Redis $P (p1's), $R (its replica)"
expect "no login: PING refused" NOAUTH "$(redis "$P" - PING)"
expect "no login: GET refused" NOAUTH "$(redis "$P" - GET "answer:$tag")"
expect "the default user with a wrong password: refused" "AUTH failed: WRONGPASS" \
	"$(REDISCLI_AUTH=not-the-password timeout 10 redis-cli -h "${P%:*}" -p "${P##*:}" PING 2>&1)"
expect "admin (the default user with its password): PING" PONG "$(admin_redis PING)"

expect "css: writes its keys" OK "$(redis "$P" css SET "answer:$tag" x EX 30)"
expect "css: reads them" x "$(redis "$P" css GET "answer:$tag")"
expect "css: INFO replication (its replication waits)" "# Replication" "$(redis "$P" css INFO replication)"
expect "css: a key outside its own refused" NOPERM "$(redis "$P" css SET "other:$tag" x)"
for cmd in "CONFIG GET maxmemory" "CONFIG SET maxmemory-samples 5" FLUSHALL FLUSHDB "ACL LIST" "ACL SETUSER evil on >x +@all ~*" \
	"SHUTDOWN NOSAVE" "REPLICAOF 127.0.0.1 1" "KEYS *" "MONITOR" "CLIENT KILL TYPE normal" "MODULE LIST" "BGSAVE"; do
	# shellcheck disable=SC2086 # the command's words
	expect "css: $cmd refused" NOPERM "$(redis "$P" css $cmd)"
done
# DEBUG is off in Redis 7 anyway (enable-debug-command): the ACL asked.
expect "css: DEBUG not allowed (dry run)" "This user has no permissions" "$(redis "$P" admin ACL DRYRUN css DEBUG SLEEP 0)"
expect "... Redis still answers, with css's key" x "$(admin_redis GET "answer:$tag")"
# On the replica css may promote it (REPLICAOF NO ONE, a takeover), on its
# primary not: asked without running it.
expect "css: REPLICAOF allowed on the replica (dry run)" OK "$(redis "$R" admin ACL DRYRUN css REPLICAOF NO ONE)"
expect "css: REPLICAOF not allowed on the primary (dry run)" "This user has no permissions" \
	"$(redis "$P" admin ACL DRYRUN css REPLICAOF NO ONE)"
expect "css: reads the replica (a takeover reads it)" x "$(redis "$R" css GET "answer:$tag")"

expect "ops: reads" x "$(redis "$P" ops GET "answer:$tag")"
expect "ops: INFO" "# Replication" "$(redis "$P" ops INFO replication)"
for cmd in "SET answer:$tag y" "DEL answer:$tag" "EXPIRE answer:$tag 1" FLUSHALL "CONFIG GET maxmemory" "ACL LIST" \
	"EVAL return 1 0" "REPLICAOF NO ONE"; do
	# shellcheck disable=SC2086
	expect "ops: $cmd refused" NOPERM "$(redis "$P" ops $cmd)"
done
expect "... the key unchanged" x "$(admin_redis GET "answer:$tag")"

expect "replica: PING (the replication link)" PONG "$(redis "$P" replica PING)"
for cmd in "GET answer:$tag" "SCARD confs:all" "SET answer:$tag y" "INFO replication" "CONFIG GET maxmemory" FLUSHALL; do
	# shellcheck disable=SC2086
	expect "replica: $cmd refused" NOPERM "$(redis "$P" replica $cmd)"
done
expect "the replica is linked (as user replica)" master_link_status:up "$(redis "$R" admin INFO replication | tr -d '\r')"
expect "css: deletes its key" 1 "$(redis "$P" css DEL "answer:$tag")"

# ---------------------------------------------------------------- MariaDB

H=$CONFDR_MYSQL_HOST PORT=$CONFDR_MYSQL_PORT
# tcp_db ARGS: the MariaDB client over TCP, with TLS when the sandbox has a
# CA (its MariaDB then refuses plain TCP: the refusals below are the users').
tcp_db() {
	local tls=()
	[ -n "${CONFDR_TLS_CA:-}" ] && tls=(--ssl --ssl-ca="$CONFDR_TLS_CA" --ssl-verify-server-cert)
	timeout 20 mariadb --no-defaults "${tls[@]}" -h "$H" -P "$PORT" --connect-timeout=5 "$@"
}
# sql USER|- STATEMENT: over TCP as USER (password from the secrets), or
# with none; prints rows or the error.
sql() {
	local pw=
	[ "$1" = - ] || pw=$(cat "$CONFDR_SECRETS/mysql-$1.password")
	MYSQL_PWD=$pw tcp_db -u"${1/-/root}" -N -B -e "$2" 2>&1
}
# root_sql STATEMENT: root by the server's socket (the only way root gets in).
root_sql() {
	MYSQL_PWD=$(cat "$CONFDR_SECRETS/mysql-root.password") timeout 20 mariadb --no-defaults \
		--socket="${CONFDR_P1_MYSQL_SOCKET:?}" -uroot -N -B -e "$1" 2>&1
}

echo "# MariaDB $H:$PORT"
expect "root over TCP without a password: refused" "ERROR 1045" "$(sql - 'SELECT 1')"
expect "root over TCP with root's password: refused (root: by the socket only)" "ERROR 1045" \
	"$(MYSQL_PWD=$(cat "$CONFDR_SECRETS/mysql-root.password") tcp_db -uroot -e 'SELECT 1' 2>&1)"
expect "root by the socket: in" 1 "$(root_sql 'SELECT 1')"
expect "a wrong password for css: refused" "ERROR 1045" \
	"$(MYSQL_PWD=not-the-password tcp_db -ucss -e 'SELECT 1' 2>&1)"
root_sql "CREATE DATABASE IF NOT EXISTS confdr_attack_other; CREATE TABLE IF NOT EXISTS confdr_attack_other.t (i INT)" >/dev/null

# A table of its own in each platform's database, made and dropped by
# migrate (its legitimate work): the checks do not depend on css's schema,
# and an attack wrongly allowed harms only that table.
probe=${tag//-/_}
for db in confdr_p1 confdr_p2; do
	t=$db.$probe
	expect "migrate: creates $t (a migration)" "" \
		"$(sql migrate "CREATE TABLE $t (i INT PRIMARY KEY, name VARCHAR(20)); INSERT INTO $t VALUES (1, 'a')")"
	expect "css: reads $t" 1 "$(sql css "SELECT COUNT(*) FROM $t")"
	expect "css: INSERT into $t" "" "$(sql css "INSERT INTO $t VALUES (2, 'b')")"
	expect "css: UPDATE of $t" "" "$(sql css "UPDATE $t SET name = 'c' WHERE i = 2")"
	expect "css: DELETE from $t refused" "ERROR 1142" "$(sql css "DELETE FROM $t WHERE i = 1")"
	expect "css: DROP TABLE $t refused" "ERROR 1142" "$(sql css "DROP TABLE $t")"
	expect "css: ALTER TABLE $t refused" "ERROR 1142" "$(sql css "ALTER TABLE $t ADD COLUMN evil INT")"
	expect "css: CREATE TABLE in $db refused" "ERROR 1142" "$(sql css "CREATE TABLE $db.evil (i INT)")"
	expect "css: TRUNCATE $t refused" "ERROR 1142" "$(sql css "TRUNCATE TABLE $t")"
	expect "css: GRANT on $db refused" "ERROR 1044" "$(sql css "GRANT ALL ON $db.* TO 'ops'@'%'")"
	expect "ops: reads $t" 2 "$(sql ops "SELECT COUNT(*) FROM $t")"
	expect "ops: INSERT into $t refused" "ERROR 1142" "$(sql ops "INSERT INTO $t VALUES (3, 'd')")"
	expect "ops: UPDATE of $t refused" "ERROR 1142" "$(sql ops "UPDATE $t SET name = 'e'")"
	expect "ops: DELETE from $t refused" "ERROR 1142" "$(sql ops "DELETE FROM $t")"
	expect "confdr (the tests' user, a well-known password): reading $db refused" "ERROR 1142" \
		"$(MYSQL_PWD=confdr tcp_db -uconfdr -N -B -e "SELECT COUNT(*) FROM $t" 2>&1)"
	expect "... $t as css and ops left it" "1	a
2	c" "$(root_sql "SELECT i, name FROM $t ORDER BY i")"
	expect "migrate: drops $t" "" "$(sql migrate "DROP TABLE $t")"
done
expect "css: CREATE USER refused" "ERROR 1227" "$(sql css "CREATE USER 'evil'@'%' IDENTIFIED BY 'x'")"
expect "css: DROP DATABASE confdr_p1 refused" "ERROR 1044" "$(sql css "DROP DATABASE confdr_p1")"
expect "css: reading mysql.user refused" "ERROR 1142" "$(sql css "SELECT user FROM mysql.user")"
expect "css: reading another database refused" "ERROR 1142" "$(sql css "SELECT * FROM confdr_attack_other.t")"
expect "ops: reading another database refused" "ERROR 1142" "$(sql ops "SELECT * FROM confdr_attack_other.t")"
expect "migrate: CREATE USER refused" "ERROR 1227" "$(sql migrate "CREATE USER 'evil'@'%' IDENTIFIED BY 'x'")"
expect "migrate: reading mysql.user refused" "ERROR 1142" "$(sql migrate "SELECT user FROM mysql.user")"
expect "migrate: another database refused" "ERROR 1142" "$(sql migrate "SELECT * FROM confdr_attack_other.t")"
expect "no user evil was made" 0 "$(root_sql "SELECT COUNT(*) FROM mysql.user WHERE user = 'evil'")"

echo "1..$n"
[ "$failures" = 0 ] || { echo "# $failures of $n failed"; exit 1; }
echo "# all $n refused or allowed as they should"
