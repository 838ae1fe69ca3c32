#!/usr/bin/env bash
# /metrics, /healthz and /readyz ([daemon] metrics_listen, docs/metrics.md)
# of css, rms and pms against the sandbox's real servers, in a namespace of
# their own (tests/ns.sh): p1's css (active and a standby), rms and pms, p2's
# pms, and an MCU simulator of room p1-r1.
#   - every scrape parses as Prometheus text: tests/prom_check.c, strictly
#     (names, labels, escapes, values, HELP/TYPE before the samples, one
#     block per family, histogram consistency), and promtool check metrics
#     when promtool is installed;
#   - /healthz 200; /readyz 200 with the role (active with its epoch,
#     standby), 503 with its reason for a css whose broker login fails;
#   - the figures: the role and epoch, the stores up, rms's MCUs, pms's rooms;
#     creates move confdr_css_creates_total and the create-latency histogram,
#     a refusal moves confdr_css_nacks_total with its reason, a drain of an
#     unknown MCU confdr_rms_nacks_total;
#   - an unknown path is 404, a POST 405;
#   - the broker restarted: /readyz 503 "amqp: not connected" meanwhile, then
#     200 again and confdr_store_reconnects_total{store="amqp"} moved by one
#     (ctest gives the test a broker of its own: tests/ns.sh --private);
#   - deploy/monitoring/alerts.yml uses only metrics the daemons serve (and
#     promtool checks it and prometheus.yml, and runs its unit tests
#     alerts.test.yml, when installed: Debian's prometheus package).
set -uo pipefail
. "${CONFDR_SOURCE_DIR:?}/tests/lib.sh"
t_init metrics

command -v curl >/dev/null || { echo "Bail out! curl is not installed (deploy/install-deps.sh installs it)"; exit 1; }
check_bin=$bin/prom_check
[ -x "$check_bin" ] || { echo "Bail out! $check_bin missing (cmake --build the tree)"; exit 1; }
promtool=$(command -v promtool || true)

# free_port: a TCP port no socket uses, below the kernel's ephemeral range
# (an outgoing connection may take any port of that range meanwhile);
# random, so that parallel tests differ
free_port() {
	local p lo
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % (lo - 20000)))
		ss -Htan "( sport = :$p )" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}
# with_metrics CONF NAME PORT: a copy of CONF as instance NAME serving on PORT
with_metrics() {
	local out=$work/$2.conf
	sed -e "s/^instance = .*/instance = $2/" -e "/^instance = /a metrics_listen = 127.0.0.1:$3" "$1" >"$out"
	chmod 600 "$out"
	echo "$out"
}
# code URL: the HTTP status of a GET
code() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$1"; }
# value FILE SERIES: the value of one series (exactly as rendered) in a scrape, or ""
value() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }
# scrape NAME: /metrics of daemon NAME into $work/NAME.prom (fails on an HTTP error)
scrape() { curl -sf -m 5 "http://${addr[$1]}/metrics" -o "$work/$1.prom"; }

declare -A addr
for n in css css2 cssbad rms pms; do
	p=$(free_port) || { echo "Bail out! no free port"; exit 1; }
	addr[$n]=127.0.0.1:$p
done

start rms "$(with_metrics "$(conf p1 rms "[rms]
heartbeat_interval = 200ms
heartbeat_misses = 10")" t-p1-rms "${addr[rms]#*:}")" "$work/p1-rms.log"
start pms "$(with_metrics "$(conf p1 pms "[pms]
peer_grace = 5s

[room p1-r1]
mcus = no

[room p1-r2]
mcus = no")" t-p1-pms "${addr[pms]#*:}")" "$work/p1-pms.log"
start pms "$(conf p2 pms "[pms]
peer_grace = 5s")" "$work/p2-pms.log"
css_conf=$(conf p1 css "[mysql]
user = $CONFDR_MYSQL_USER
password = $CONFDR_MYSQL_PASSWORD
tls_ca = ${CONFDR_TLS_CA:-}
migrations = $CONFDR_SOURCE_DIR/deploy/sql")
start css "$(with_metrics "$css_conf" t-p1-css "${addr[css]#*:}")" "$work/p1-css.log"
wait_for 60 "css is active and ready (/readyz 200)" bash -c "[ \"\$(curl -s -m 5 -o /dev/null -w '%{http_code}' http://${addr[css]}/readyz)\" = 200 ]"
# the standby, once the first one is active
start css "$(with_metrics "$css_conf" t-p1-css-2 "${addr[css2]#*:}")" "$work/p1-css-2.log"
# a css whose broker login fails: never ready
printf 'not-the-password\n' >"$work/wrong.password"
chmod 600 "$work/wrong.password"
bad=$(with_metrics "$css_conf" t-p1-css-bad "${addr[cssbad]#*:}")
sed -i "s|^password_file = .*amqp-css.password$|password_file = $work/wrong.password|" "$bad"
start css "$bad" "$work/p1-css-bad.log"
"$bin/mcusim" --platform p1 --room p1-r1 --prefix t-m --count 2 --capacity 100 -q >>"$work/mcusim.log" 2>&1 &
pids+=($!)

for n in css2 rms pms; do
	wait_for 60 "$n ready (/readyz 200)" bash -c "[ \"\$(curl -s -m 5 -o /dev/null -w '%{http_code}' http://${addr[$n]}/readyz)\" = 200 ]"
done
for n in css css2 cssbad rms pms; do
	wait_for 30 "$n: /healthz 200" bash -c "[ \"\$(curl -s -m 5 -o /dev/null -w '%{http_code}' http://${addr[$n]}/healthz)\" = 200 ]"
done
r=$(curl -s -m 5 "http://${addr[css]}/readyz")
check "active css: /readyz says active and its epoch ($r)" grep -Eq '^ready: active, epoch [0-9]+$' <<<"$r"
r=$(curl -s -m 5 "http://${addr[css2]}/readyz")
check "standby css: /readyz says standby ($r)" test "$r" = "ready: standby"
sleep 2 # the bad css tried its broker
r="$(curl -s -m 5 "http://${addr[cssbad]}/readyz") $(code "http://${addr[cssbad]}/readyz")"
check "css without its broker: /readyz 503 with the reason ($r)" test "$r" = "not ready: amqp: not connected 503"
check "unknown path: 404" test "$(code "http://${addr[css]}/nope")" = 404
check "POST: 405" test "$(curl -s -o /dev/null -m 5 -w '%{http_code}' -X POST "http://${addr[css]}/metrics")" = 405
ctype=$(curl -s -m 5 -o /dev/null -w '%{content_type}' "http://${addr[css]}/metrics")
check "content type of the text format 0.0.4 ($ctype)" test "$ctype" = "text/plain; version=0.0.4; charset=utf-8"

wait_for 30 "rms has the simulator's 2 MCUs up" bash -c "curl -s -m 5 http://${addr[rms]}/metrics | grep -qx 'confdr_rms_mcus{room=\"p1-r1\",state=\"up\"} 2'"

# Creates: the counters and the histogram move by what was created.
scrape css || not_ok "scrape css"
acks0=$(value "$work/css.prom" 'confdr_css_creates_total{result="ack"}')
hist0=$(value "$work/css.prom" 'confdr_css_create_seconds_count{result="ack"}')
"$bin/cmsim" create --platform p1 --domain ud-p1-r1-a --count 3 --rate 50 --e164-start 7600000000 -q \
	--json "$work/created.json" >/dev/null 2>&1
acked=$(jq -r '.acked // .summary.acked // empty' "$work/created.json" 2>/dev/null)
"$bin/cmsim" create --platform p1 --domain ud-nowhere --count 1 --e164-start 7600000100 -q >/dev/null 2>&1
# an E164 that runs already: refused after css took the create up (its answer stored, then sent)
"$bin/cmsim" create --platform p1 --domain ud-p1-r1-a --count 1 --e164-start 7600000000 -q >/dev/null 2>&1
scrape css || not_ok "scrape css after the creates"
acks1=$(value "$work/css.prom" 'confdr_css_creates_total{result="ack"}')
hist1=$(value "$work/css.prom" 'confdr_css_create_seconds_count{result="ack"}')
inf1=$(value "$work/css.prom" 'confdr_css_create_seconds_bucket{result="ack",le="+Inf"}')
check "3 creates: confdr_css_creates_total{result=\"ack\"} ${acks0:-0} -> $acks1 (cmsim: ${acked:-?} acked)" \
	test "$((${acks1:-0} - ${acks0:-0}))" = 3
check "3 creates: the create-latency histogram counted them (${hist0:-none} -> $hist1, +Inf bucket $inf1)" \
	test "$((${hist1:-0} - ${hist0:-0}))" = 3 -a "$inf1" = "$hist1"
check "running conferences: $(value "$work/css.prom" 'confdr_css_conferences{state="running"}')" \
	test "$(value "$work/css.prom" 'confdr_css_conferences{state="running"}')" -ge 3
nack=$(value "$work/css.prom" 'confdr_css_nacks_total{request="cm_mau_createconf_req",reason="unknown_user_domain"}')
check "a create for an unknown user domain: confdr_css_nacks_total{...,reason=\"unknown_user_domain\"} ${nack:-absent}" \
	test "${nack:-0}" = 1
nack=$(value "$work/css.prom" 'confdr_css_nacks_total{request="cm_mau_createconf_req",reason="duplicate_e164"}')
check "a create of a running E164: confdr_css_nacks_total{...,reason=\"duplicate_e164\"} ${nack:-absent}" \
	test "${nack:-0}" = 1
check "... in the histogram as a refusal (confdr_css_create_seconds_count{result=\"nack\"} $(value "$work/css.prom" 'confdr_css_create_seconds_count{result="nack"}'))" \
	test "$(value "$work/css.prom" 'confdr_css_create_seconds_count{result="nack"}')" = 1

# rms's refusals, by request and reason
$ctl mcu drain no-such-mcu --platform p1 >/dev/null 2>&1
scrape rms || not_ok "scrape rms"
check "rms: a drain of an unknown MCU counted (confdr_rms_nacks_total{request=\"ctl_rms_drain_req\",reason=\"unknown_mcu\"} $(value "$work/rms.prom" 'confdr_rms_nacks_total{request="ctl_rms_drain_req",reason="unknown_mcu"}'))" \
	test "$(value "$work/rms.prom" 'confdr_rms_nacks_total{request="ctl_rms_drain_req",reason="unknown_mcu"}')" = 1

# Every daemon's scrape, strictly; the figures each must show.
for n in css css2 cssbad rms pms; do
	if ! scrape "$n"; then not_ok "$n: /metrics answers"; continue; fi
	if out=$("$check_bin" "$work/$n.prom" 2>&1); then ok "$n: /metrics parses ($out)"; else not_ok "$n: /metrics parses: $out"; fi
	if [ -n "$promtool" ]; then
		if out=$("$promtool" check metrics <"$work/$n.prom" 2>&1); then ok "$n: promtool check metrics"; else not_ok "$n: promtool check metrics: $out"; fi
	fi
done
[ -n "$promtool" ] || echo "# promtool not installed: only prom_check ran"
daemon_of() { case $1 in css*) echo css ;; *) echo "$1" ;; esac; }
for n in css css2 rms pms; do
	d=$(daemon_of "$n") want=0
	[ "$n" = css2 ] || want=1
	check "$n: confdr_active{daemon=\"$d\",platform=\"p1\"} $want" \
		test "$(value "$work/$n.prom" "confdr_active{daemon=\"$d\",platform=\"p1\"}")" = $want
	check "$n: confdr_ready 1" test "$(value "$work/$n.prom" confdr_ready)" = 1
	check "$n: ZooKeeper and the broker up" test "$(value "$work/$n.prom" 'confdr_store_up{store="zookeeper"}')$(value "$work/$n.prom" 'confdr_store_up{store="amqp"}')" = 11
done
check "cssbad: confdr_ready 0, amqp down" test "$(value "$work/cssbad.prom" confdr_ready)$(value "$work/cssbad.prom" 'confdr_store_up{store="amqp"}')" = 00
check "css: its epoch is /readyz's" test "$(value "$work/css.prom" 'confdr_epoch{daemon="css",platform="p1"}')" = "$(curl -s -m 5 "http://${addr[css]}/readyz" | sed -n 's/.*epoch //p')"
check "css: redis and mysql up" test "$(value "$work/css.prom" 'confdr_store_up{store="redis"}')$(value "$work/css.prom" 'confdr_store_up{store="mysql"}')" = 11
check "rms: the simulator's MCUs, each with its state" grep -q '^confdr_rms_mcu_state{mcu="t-m[^"]*",room="p1-r1",state="up"} 1$' "$work/rms.prom"
check "rms: their registrations alarmed (cleared)" grep -Eq '^confdr_alarms_total\{kind="mcu_down",severity="cleared"\} [1-9]' "$work/rms.prom"
check "pms: room p1-r1 normal" test "$(value "$work/pms.prom" 'confdr_pms_room_abnormal{room="p1-r1"}')" = 0
check "pms: platform p2 up" test "$(value "$work/pms.prom" 'confdr_pms_platform_down{target_platform="p2"}')" = 0

# The broker goes away and comes back: not ready meanwhile, then one
# reconnection counted. Left running whatever happens (the next steps use it).
trap 't_cleanup; "$CONFDR_SANDBOX" server start rabbitmq >/dev/null 2>&1' EXIT
"$CONFDR_SANDBOX" server stop rabbitmq >/dev/null || not_ok "stop rabbitmq"
wait_for 30 "broker stopped: css /readyz 503 (amqp: not connected)" bash -c "[ \"\$(curl -s -m 5 http://${addr[css]}/readyz)\" = 'not ready: amqp: not connected' ]"
"$CONFDR_SANDBOX" server start rabbitmq >/dev/null || not_ok "start rabbitmq"
for n in css rms pms; do
	wait_for 60 "$n ready again (/readyz 200)" bash -c "[ \"\$(curl -s -m 5 -o /dev/null -w '%{http_code}' http://${addr[$n]}/readyz)\" = 200 ]"
	scrape "$n" || not_ok "scrape $n after the broker restart"
	check "$n: one amqp reconnection counted ($(value "$work/$n.prom" 'confdr_store_reconnects_total{store="amqp"}'))" \
		test "$(value "$work/$n.prom" 'confdr_store_reconnects_total{store="amqp"}')" = 1
done

# deploy/monitoring: every metric the alert rules use is one the daemons
# serve (the rules are checked by promtool when it is installed).
mon=$CONFDR_SOURCE_DIR/deploy/monitoring
served=$(sed -n 's/^# TYPE \([^ ]*\) .*/\1/p' "$work"/*.prom | sort -u)
missing=""
for m in $(grep -o 'confdr_[a-z_]*' "$mon/alerts.yml" | sort -u); do
	grep -qx "$m" <<<"$served" || grep -qx "${m%_bucket}" <<<"$served" || missing="$missing $m"
done
check "alerts.yml names only served metrics${missing:+ (not served:$missing)}" test -z "$missing"
if [ -n "$promtool" ]; then
	check "promtool check rules alerts.yml" "$promtool" check rules "$mon/alerts.yml"
	check "promtool check config prometheus.yml" "$promtool" check config "$mon/prometheus.yml"
	# the rules' unit tests: which alerts fire on given series, and which do not
	if out=$(cd "$mon" && "$promtool" test rules alerts.test.yml 2>&1); then
		ok "promtool test rules alerts.test.yml"
	else
		not_ok "promtool test rules alerts.test.yml"
		sed 's/^/# /' <<<"$out"
	fi
fi

t_done
