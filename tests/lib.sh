# Shared by the shell integration tests (tests/integration/*.sh), sourced:
#   . "$CONFDR_SOURCE_DIR/tests/lib.sh"; t_init NAME
# Each runs in a namespace of its own (tests/ns.sh run NAME -- bash TEST, as
# ctest does): its ZooKeeper chroot (the sandbox topology with endpoints of
# its own vhosts, Redis database and MariaDB databases), used here. t_init
# gives a work dir, TAP-style checks (ok, not_ok, check, wait_for) and
# daemons started from generated configs, all stopped (and their logs shown
# on failure) when the test exits. CONFDR_TEST_KEEP=1 keeps the work dir
# (configs, logs, simulator state files).
: "${CONFDR_BINARY_DIR:?}" "${CONFDR_SOURCE_DIR:?}" "${CONFDR_SANDBOX:?run under the sandbox env}" "${CONFDR_ZK:?}"
: "${CONFDR_NS:?run in a namespace of its own: tests/ns.sh run NAME -- bash TEST (ctest does)}"
: "${CONFDR_ZK_CHROOT:?}" "${CONFDR_P1_AMQP_URL:?}" "${CONFDR_P1_REDIS_DB:?}" "${CONFDR_P1_VHOST:?}"
bin=$CONFDR_BINARY_DIR
pids=()
failures=0 checks=0

t_cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	if [ "$failures" != 0 ]; then for f in "$work"/*.log; do echo "--- $f"; tail -n 40 "$f"; done; fi
	if [ -n "${CONFDR_TEST_KEEP:-}" ]; then echo "# kept $work"; else rm -rf "$work"; fi
}

# t_init NAME: the namespace's chroot (its topology checked), confdrctl, a work dir.
t_init() {
	chroot=$CONFDR_ZK_CHROOT
	ctl="$bin/confdrctl --zk $CONFDR_ZK --chroot $chroot --timeout 2"
	work=$(mktemp -d -t "confdr-$1.XXXXXX")
	trap t_cleanup EXIT
	trap "exit 1" INT TERM
	$ctl topology show >/dev/null || { echo "Bail out! no topology in $chroot (tests/ns.sh loads it)"; exit 1; }
}

ok() { checks=$((checks + 1)); echo "ok $checks - $*"; }
not_ok() { checks=$((checks + 1)); failures=$((failures + 1)); echo "not ok $checks - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }

# wait_for SECONDS WHAT CMD...: polls every 0.1 s
wait_for() {
	local s=$1 what=$2; shift 2
	local end=$((SECONDS + s))
	while [ $SECONDS -lt "$end" ]; do
		if "$@" >/dev/null 2>&1; then ok "$what"; return 0; fi
		sleep 0.1
	done
	not_ok "$what (not within $s s)"
	return 1
}

# t_redis_user DAEMON: css's [redis] login as the sandbox's css user (its
# ACL: docs/security.md, Stores), when the sandbox has users.
t_redis_user() {
	case $1 in css*) ;; *) return 0 ;; esac
	[ -n "${CONFDR_SECRETS:-}" ] || return 0
	printf '[redis]\nuser = css\npassword_file = %s\n' "$CONFDR_SECRETS/redis-css.password"
}

# conf PLATFORM DAEMON EXTRA: writes a config, prints its path
conf() {
	cat >"$work/$1-$2.conf" <<CONF
[daemon]
platform = $1
instance = t-$1-$2
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
$(t_redis_user "$2")
[reconnect]
min = 100ms
max = 1s
$3
CONF
	chmod 600 "$work/$1-$2.conf" # it holds a password: others must not read it
	echo "$work/$1-$2.conf"
}

# start DAEMON CONF LOG: runs confdr-DAEMON in the background; $started is its pid
start() {
	"$bin/confdr-$1" -c "$2" >>"$3" 2>&1 &
	pids+=($!)
	started=$!
}

# t_done: the plan line and the exit status
t_done() {
	echo "1..$checks"
	[ "$failures" = 0 ]
}
