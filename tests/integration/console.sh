#!/usr/bin/env bash
# pms's web console (docs/console.md) against the sandbox's real servers, in
# a namespace of its own: rms, css and pms of p1 (the console on), pms of p2,
# MCU simulators in p1-r1 and p1-r2, conferences created through cmsim.
# First the API's auth with curl: 401 without or with wrong credentials, 200
# with the operators' user; a POST refused (403) without the CSRF token or
# from another origin; no file outside the console's directory. Then the
# end-to-end test in headless Chromium (Debian's chromium, driven through
# Debian's chromedriver over WebDriver by a Node.js script with no npm
# package: tests/console/console.webdriver.mjs): it switches p1-r1 to its
# backup through the confirmation step, sees the conferences move, switches
# it back, and keeps its screenshots under the run dir (the path is printed).
# The browser part is skipped, with the reason, only when chromium,
# chromium-driver or nodejs is not installed and cannot be installed
# (deploy/install-deps.sh, as root).
set -uo pipefail
. "${CONFDR_SOURCE_DIR:?}/tests/lib.sh"
t_init console

# One console per lane: base + 450 (the sandbox's own pms use 440..449).
port=$((${CONFDR_PORT_BASE:?} + 450))
url=http://127.0.0.1:$port
pwfile=${CONFDR_AMQP_SECRETS:?}/amqp-ops.password
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }

start rms "$(conf p1 rms "[rms]
heartbeat_interval = 200ms
heartbeat_misses = 5")" "$work/p1-rms.log"
start pms "$(conf p1 pms "[pms]
peer_grace = 5s
mcu_poll = 300ms
console_listen = 127.0.0.1:$port
console_user = ops
console_password_file = $pwfile")" "$work/p1-pms.log"
start pms "$(conf p2 pms "[pms]
peer_grace = 5s")" "$work/p2-pms.log"
start css "$(conf p1 css "[css]
create_timeout = 1500ms
[mysql]
user = $CONFDR_MYSQL_USER
password = $CONFDR_MYSQL_PASSWORD
tls_ca = ${CONFDR_TLS_CA:-}
migrations = $CONFDR_SOURCE_DIR/deploy/sql")" "$work/p1-css.log"
for room in p1-r1 p1-r2; do
	"$bin/mcusim" --platform p1 --room "$room" --prefix "t-$room" --count 2 --capacity 200 --list-interval 500 \
		--state "$work/sim-$room.json" -q >>"$work/mcusim-$room.log" 2>&1 &
	pids+=($!)
done

wait_for 30 "the console listens ($url)" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 $url/)\" = 401 ]"
wait_for 90 "css consumes" grep -q "consuming mau.conf.q" "$work/p1-css.log"

# ---- the API's auth ----
pw=$(head -n1 "$pwfile")
check "no credentials: 401" [ "$(code "$url/api/status")" = 401 ]
check "... with a Basic challenge" bash -c "curl -s -D - -o /dev/null '$url/api/status' | grep -qi '^WWW-Authenticate: Basic realm='"
check "a wrong password: 401" [ "$(code -u "ops:x$pw" "$url/api/status")" = 401 ]
check "another user with the right password: 401" [ "$(code -u "css:$pw" "$url/api/status")" = 401 ]
check "a static file without credentials: 401" [ "$(code "$url/console.js")" = 401 ]
check "the operators' user: 200" [ "$(code -u "ops:$pw" "$url/api/status")" = 200 ]
curl -s -u "ops:$pw" "$url/api/status" >"$work/status.json"
check "/api/status: 2 platforms, 4 rooms, a CSRF token" \
	jq -e '(.status.platforms | length) == 2 and (.status.rooms | length) == 4 and (.csrf | length) == 32' "$work/status.json"
# the daemons are read from ZooKeeper every 2 s
wait_for 10 "/api/status: the active pms of p1 among the daemons" bash -c "curl -s -u 'ops:$pw' $url/api/status |
	jq -e '[.status.daemons[] | select(.platform == \"p1\" and .daemon == \"pms\" and .role == \"active\")] | length == 1'"
csrf=$(jq -r .csrf "$work/status.json")
check "/api/restores: a series of buckets" bash -c "curl -s -u 'ops:$pw' $url/api/restores | jq -e '.bucket_ms > 0 and (.buckets | length) > 0'"
check "/api/preview of p1-r1: its room and user domains" bash -c \
	"curl -s -u 'ops:$pw' '$url/api/preview?target=room&id=p1-r1&to=backup' | jq -e '.rooms == [\"p1-r1\"] and (.user_domains | length) > 0 and .decided_by == \"p1\"'"
check "/api/preview of an unknown room: 404" [ "$(code -u "ops:$pw" "$url/api/preview?target=room&id=p9-r9&to=backup")" = 404 ]
check "the page: 200, text/html" bash -c "curl -s -D - -o /dev/null -u 'ops:$pw' $url/ | grep -qi '^Content-Type: text/html'"
check "no file outside the console's directory (404)" \
	bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --path-as-is -u 'ops:$pw' '$url/../../CMakeLists.txt')\" = 404 ] && [ \"\$(curl -s -o /dev/null -w '%{http_code}' -u 'ops:$pw' '$url/..%2f..%2fCMakeLists.txt')\" = 404 ]"
post() { curl -s -o "$work/post.out" -w '%{http_code}' --max-time 15 -u "ops:$pw" -X POST "$@"; }
check "a POST without the CSRF token: 403" \
	[ "$(post -H 'Content-Type: application/json' -d '{"to":"backup"}' "$url/api/rooms/p1-r2/switch")" = 403 ]
check "a POST from another origin: 403" [ "$(post -H 'Content-Type: application/json' -H "X-Confdr-Csrf: $csrf" \
	-H 'Origin: http://evil.example' -d '{"to":"backup"}' "$url/api/rooms/p1-r2/switch")" = 403 ]
check "a POST as a form (not JSON): 403" [ "$(post -H "X-Confdr-Csrf: $csrf" -d 'to=backup' "$url/api/rooms/p1-r2/switch")" = 403 ]
check "a switch without credentials: 401" [ "$(code -X POST -H 'Content-Type: application/json' \
	-H "X-Confdr-Csrf: $csrf" -d '{"to":"backup"}' "$url/api/rooms/p1-r2/switch")" = 401 ]
check "p1-r2 is still normal after the refused POSTs" bash -c \
	"$ctl status --json | jq -e '.rooms[] | select(.room == \"p1-r2\") | .state == \"normal\"'"
check "a switch with a bad 'to': 400" [ "$(post -H 'Content-Type: application/json' -H "X-Confdr-Csrf: $csrf" \
	-d '{"to":"sideways"}' "$url/api/rooms/p1-r2/switch")" = 400 ]
# A platform is switched by its backup platform's pms: p2's by p1's, p1's by
# p2's (through p2's broker). Both are up: switching them back changes nothing.
check "platform p2 switched back (it was up): decided by the pms of p1, unchanged" bash -c "[ \"\$(curl -s -u 'ops:$pw' -X POST \
	-H 'Content-Type: application/json' -H 'X-Confdr-Csrf: $csrf' -d '{\"to\":\"back\"}' $url/api/platforms/p2/switch |
	jq -c '[.ok, .via, .answer.state, .answer.changed]')\" = '[true,\"p1\",\"up\",false]' ]"
check "platform p1 switched back (it was up): decided by the pms of p2, unchanged" bash -c "[ \"\$(curl -s -u 'ops:$pw' -X POST \
	-H 'Content-Type: application/json' -H 'X-Confdr-Csrf: $csrf' -d '{\"to\":\"back\"}' $url/api/platforms/p1/switch |
	jq -c '[.ok, .via, .answer.state, .answer.changed]')\" = '[true,\"p2\",\"up\",false]' ]"
check "pms logged the wrong credentials" grep -q "console: wrong credentials from 127.0.0.1" "$work/p1-pms.log"

# ---- conferences in p1-r1, then the browser ----
"$bin/cmsim" create --platform p1 -q --domain ud-p1-r1-a --domain ud-p1-r1-b --count 20 --rate 100 \
	--e164-start 7700000000 --timeout 30 --json "$work/create.json" >"$work/create.txt" 2>&1
check "20 conferences created in p1-r1 through cmsim" [ "$(jq -r .acked "$work/create.json" 2>/dev/null)" = 20 ]

browser_skip=
have_browser() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && command -v node >/dev/null; }
if ! have_browser; then
	if [ "$(id -u)" = 0 ]; then
		"$CONFDR_SOURCE_DIR/deploy/install-deps.sh" >"$work/install.log" 2>&1 ||
			browser_skip="chromium, chromium-driver or nodejs is not installed and deploy/install-deps.sh could not install it: $(tail -n 1 "$work/install.log")"
	else
		browser_skip="chromium, chromium-driver or nodejs is not installed and this user cannot install it (deploy/install-deps.sh as root)"
	fi
	[ -n "$browser_skip" ] || have_browser ||
		browser_skip="chromium, chromedriver or node is still missing after deploy/install-deps.sh"
fi
if [ -n "$browser_skip" ]; then
	echo "ok $((checks + 1)) - # SKIP the browser test: $browser_skip"
	checks=$((checks + 1))
	t_done
	exit
fi

shots_dir=${CONFDR_RUN_DIR:?}/console
mkdir -p "$shots_dir"
shots=$shots_dir/console-$CONFDR_NS-$(date -u +%Y%m%dT%H%M%SZ)
# chromedriver on a free loopback port of its own, started and ended by the
# script (the two lanes of tests/run.sh run this test at once)
CONSOLE_URL=$url/ CONSOLE_USER=ops CONSOLE_PASSWORD_FILE=$pwfile ROOM=p1-r1 SHOTS=$shots \
	CHROMEDRIVER_LOG=$work/chromedriver.log CHROMEDRIVER_PIDFILE=$work/chromedriver.pid TOTAL_TIMEOUT_MS=360000 \
	timeout -k 30 400 node "$CONFDR_SOURCE_DIR/tests/console/console.webdriver.mjs" >"$work/browser.out" 2>&1
rc=$?
# the script ends chromedriver and its browser (a process group) itself; had
# it been killed first, they are ended here (the browser's exited processes
# may stand in the group until init reaps them: a few seconds first)
if cd_pid=$(cat "$work/chromedriver.pid" 2>/dev/null) && [ -n "$cd_pid" ]; then
	for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$cd_pid" 2>/dev/null && sleep 0.5; done
	if kill -0 -- "-$cd_pid" 2>/dev/null; then
		echo "# chromedriver's process group ($cd_pid) outlived the script: killed"
		kill -KILL -- "-$cd_pid" 2>/dev/null
	fi
fi
while IFS= read -r line; do
	case $line in
	PASS\ *) ok "browser: ${line#PASS }" ;;
	FAIL\ *) not_ok "browser: ${line#FAIL }" ;;
	*) echo "# $line" ;;
	esac
done <"$work/browser.out"
check "the browser test ran through (exit $rc)" [ "$rc" = 0 ]
check "its screenshot is kept: $shots.png" [ -s "$shots.png" ]
echo "# screenshots: $shots*.png"

# What pms recorded: the operator is the HTTP user, through the console.
check "pms recorded the switch by ops@console (its alarm)" \
	grep -q "ALARM major room_abnormal p1-r1: room p1-r1 is abnormal (manual_switch by ops@console" "$work/p1-pms.log"
check "p1-r1 is normal again" bash -c "$ctl status --json | jq -e '.rooms[] | select(.room == \"p1-r1\") | .state == \"normal\"'"
t_done
