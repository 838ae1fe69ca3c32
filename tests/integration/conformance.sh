#!/usr/bin/env bash
# confdr-conform (docs/conformance.md) against mcusim on a vhost of its own
# (conform-PID, made here and deleted at exit) of the sandbox's RabbitMQ:
#   mcusim passes in every reading of the contract it has (default, --no-boot,
#   --seq-from-one, --exists-nack, and the three together): exit 0, no not ok;
#   mcusim broken on purpose (--break fencing, key, early-heartbeat) fails:
#   exit 1 with the not ok line of what it broke;
#   bad usage: exit 64; --help: exit 0.
# Needs only RabbitMQ of the sandbox env (CONFDR_SANDBOX, CONFDR_P1_AMQP_URL).
set -uo pipefail
. "${CONFDR_SOURCE_DIR:?}/tests/lib.sh"

vhost=conform-$$
url=${CONFDR_P1_AMQP_URL%/*}/$vhost
work=$(mktemp -d)
cleanup() {
	"$CONFDR_SANDBOX" rabbitmqctl delete_vhost "$vhost" >/dev/null 2>&1
	if [ -n "${CONFDR_TEST_KEEP:-}" ]; then echo "# kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap "exit 1" INT TERM
"$CONFDR_SANDBOX" rabbitmqctl add_vhost "$vhost" >/dev/null &&
	"$CONFDR_SANDBOX" rabbitmqctl set_permissions -p "$vhost" confdr '.*' '.*' '.*' >/dev/null ||
	{ echo "Bail out! cannot make the vhost $vhost"; exit 1; }

# suite NAME MCUSIM-OPTIONS...: runs the suite against mcusim; output in $work/NAME.tap, $rc its exit status
suite() {
	local name=$1 try
	shift
	# --timeout 30000: a bound for a loaded CI machine (it bounds waits for
	# what must come; waits for what must not come are fixed and short). A
	# run takes 15 to 25 s; one that has not ended after 150 s (seen once
	# on a loaded 2-core machine, the sanitizer build, the test's 600 s
	# gone) is stopped and run once more, and says so.
	for try in 1 2; do
		timeout 150 "$bin/confdr-conform" --timeout 30000 --amqp "$url" --platform p1 --room p1-r1 --mcu-log "$work/$name.mcu.log" \
			-- "$bin/mcusim" --platform p1 --room p1-r1 --amqp '{amqp}' --list-interval 1000 "$@" >"$work/$name.tap" 2>&1
		rc=$?
		[ "$rc" = 124 ] && [ $try = 1 ] || break
		echo "# suite $name: not ended after 150 s (its last lines below); run once more"
		tail -n 5 "$work/$name.tap" | sed 's/^/#   /'
	done
}
show() { sed 's/^/#   /' "$work/$1.tap" | grep -v '^#   ok ' | tail -n 30; }

passes() { # NAME MCUSIM-OPTIONS...
	local name=$1; shift
	suite "$name" "$@"
	if [ "$rc" = 0 ] && ! grep -q '^not ok' "$work/$name.tap" && grep -q '^# conformance: [0-9]* checks, 0 broken' "$work/$name.tap"; then
		ok "mcusim $* passes the suite ($(grep -c '^ok' "$work/$name.tap") checks)"
	else
		not_ok "mcusim $* passes the suite (exit $rc)"
		show "$name"
	fi
}

fails() { # NAME PATTERN MCUSIM-OPTIONS...: exit 1 and a not ok line matching PATTERN
	local name=$1 pattern=$2; shift 2
	suite "$name" "$@"
	if [ "$rc" = 1 ] && grep -q "^not ok [0-9]* - $pattern" "$work/$name.tap"; then
		ok "mcusim $* fails the suite: $(grep -m1 "^not ok [0-9]* - $pattern" "$work/$name.tap" | cut -c1-160)"
	else
		not_ok "mcusim $* fails the suite with 'not ok ... $pattern' (exit $rc)"
		show "$name"
	fi
}

passes default
passes no-boot --no-boot
passes seq-from-one --seq-from-one
passes exists-nack --exists-nack
passes combined --no-boot --seq-from-one --exists-nack

fails fencing 'an end of an older epoch of the same css: NACK stale_epoch' --break fencing
fails key 'everything on cmu.mau.ex has its registered key as routing key' --break key
fails early-heartbeat 'no heartbeat before the ACK of its registration' --break early-heartbeat

"$bin/confdr-conform" >/dev/null 2>&1
check "no arguments: exit 64" [ $? = 64 ]
"$bin/confdr-conform" --amqp "$url" --platform p1 --timeout 5 -- true >/dev/null 2>&1
check "--timeout out of range: exit 64" [ $? = 64 ]
"$bin/confdr-conform" --help | grep -q '^Usage: confdr-conform'
check "--help: exit 0 with the usage" [ "${PIPESTATUS[0]}" = 0 ]

t_done
