#!/usr/bin/env bash
# The benchmark suite (docs/performance.md): confdr's figures and, in the same
# run, the floor of the servers under them, each figure printed beside its
# floor and the ratio. Installs what is missing (deploy/install-deps.sh),
# builds, brings the sandbox up if it is not (and down again after).
#
#   ./bench/run.sh [--quick] [--json FILE]   the suite; --quick ends within 5 minutes on 2 cores
#   ./bench/run.sh NAME...                   only these benchmark programs (e.g. bench_bulk_alloc)
#
# Figures: the floor (bench_floor: AMQP request/reply paced, back to back and
# 64 in flight; a Redis record write alone and pipelined; the MySQL history row
# alone and batched), before and after confdr's runs, medians; create latency
# at 20/s and at rising rates until p99 > 50 ms or a NACK; create throughput;
# memory of css and rms per conference, and after the conferences ended;
# restore of a room of 10,000 (and 20,000, 50,000 without --quick)
# conferences, all of which move (drill room-failure --one-room). Slowness
# never fails it: the exit status is 1 only when something could not be run.
# Environment: CONFDR_RUN_DIR, CONFDR_PORT_BASE, CONFDR_SANDBOX_HOSTS and
# CONFDR_BUILD_DIR as for deploy/sandbox.sh.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top" || exit 1
PROG=bench SAY_T0=$SECONDS
# shellcheck source=../deploy/lib.sh
. "$top/deploy/lib.sh"
SANDBOX=$top/deploy/sandbox.sh

QUICK=0 JSON_OUT= names=()
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	--quick) QUICK=1; shift ;;
	--json) JSON_OUT=$(realpath -m "${2:?--json wants a file}"); shift 2 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) names+=("$1"); shift ;;
	esac
done

./deploy/install-deps.sh >/dev/null || die "dependencies missing (deploy/install-deps.sh)"
for t in jq redis-cli; do command -v $t >/dev/null || die "$t is missing"; done
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build "$BUILD" -j"$(nproc)" >/dev/null ||
	die "build failed"
started=0
if ! "$SANDBOX" status --json 2>/dev/null | jq -e '[.servers[] | select(.name != "epmd") | .state == "running"] | all' >/dev/null; then
	"$SANDBOX" up >/dev/null || die "the sandbox did not come up"
	started=1
fi
eval "$("$SANDBOX" env)"
# the operators' password file is confdrctl's: the simulators take their own role's (CONFDR_AMQP_SECRETS)
unset CONFDR_AMQP_PASSWORD_FILE CONFDR_AMQP_USER
finish() { [ $started = 1 ] && "$SANDBOX" down >/dev/null; }

# The programs by name: the old way.
if [ ${#names[@]} -gt 0 ]; then
	rc=0
	for b in "${names[@]}"; do
		echo "== $b"
		"$BUILD/$b" || rc=1
	done
	finish
	exit $rc
fi

# ---------------------------------------------------------------- settings

T_START=$SECONDS
WORK=$RUN/bench
rm -rf "$WORK" && mkdir -p "$WORK"
DOMAINS=(--domain ud-p1-r1-a --domain ud-p1-r1-b --domain ud-p1-r2-a --domain ud-p1-r2-b)
if [ $QUICK = 1 ]; then
	LOW_N=100 STEP_S=3 RATES=(100 200 400 800 1200 1600) TP_N=3000 RESTORE_NS=(10000) FLOOR_ROUNDS=2
else
	LOW_N=600 STEP_S=6 RATES=(100 200 300 400 500 600 800 1000 1200 1600 2000) TP_N=10000
	RESTORE_NS=(10000 20000 50000) FLOOR_ROUNDS=3
fi
LOW_RATE=20 RESTORE_RATE=800
rc=0

# ---------------------------------------------------------------- helpers

# cm_create OUT COUNT RATE: creates through p1's css as the CM (cmsim), bounded.
cm_create() {
	timeout 300 "$BUILD/cmsim" create --platform p1 --amqp "$(amqp_at p1 cm)" "${DOMAINS[@]}" --count "$2" \
		--rate "$3" --timeout "${CM_TIMEOUT:-60}" --linger 0 -q --json "$1" >"$1.txt" 2>&1
	jq -e . "$1" >/dev/null 2>&1
}
# cm_end FROM: ends what the create of FROM made, fast.
cm_end() {
	[ "$(jq '.confs | length' "$1" 2>/dev/null || echo 0)" -gt 0 ] || return 0
	timeout 300 "$BUILD/cmsim" end --platform p1 --amqp "$(amqp_at p1 cm)" --from-json "$1" --rate 2000 \
		--timeout 60 --linger 0 -q --json "$1.end" >"$1.end.txt" 2>&1
}
# rss NAME: VmRSS in bytes of the daemon of instance NAME (its supervisor's child).
rss() {
	local p
	p=$(daemon_pid "$1") || { echo null; return; }
	awk '/^VmRSS:/ { print $2 * 1024; f = 1 } END { if (!f) print "null" }' "/proc/$p/status" 2>/dev/null || echo null
}
# rss_all: {"p1-css": bytes, ...} for p1's css and rms instances.
rss_all() {
	local n out='{}'
	for n in $(dnames p1 css) $(dnames p1 rms); do
		out=$(jq -c --arg n "$n" --argjson v "$(rss "$n")" '.[$n] = $v' <<<"$out")
	done
	echo "$out"
}
floor_round() {
	local i=$1 q=
	[ $QUICK = 1 ] && q=--quick
	say "floor, round $i of $FLOOR_ROUNDS"
	"$BUILD/bench_floor" $q --gap $((1000 / LOW_RATE)) --json "$WORK/floor-$i.json" | sed 's/^/    /' ||
		{ warn "bench_floor failed (round $i)"; rc=1; }
}
# cpu_all: {"NAME": CPU seconds} of the process groups of p1's daemons, the
# servers and the MCU simulators (children that ended are not counted).
CPU_NAMES=($(dnames p1 css) $(dnames p1 rms) $(dnames p1 pms) "$(srv rabbitmq p1)" redis-p1 "$(srv mariadb p1)"
	sim-p1-r1 sim-p1-r2 bench-p1-r1 bench-p1-r2)
cpu_all() {
	local n p t out='{}' hz
	hz=$(getconf CLK_TCK)
	for n in "${CPU_NAMES[@]}"; do
		p=$(pid_of "$n") || continue
		t=$(for q in $(pgrep -g "$p"); do awk '{ print $14 + $15 }' "/proc/$q/stat" 2>/dev/null; done | awk '{ s += $1 } END { print s + 0 }')
		out=$(jq -c --arg n "$n" --argjson v "$t" --argjson hz "$hz" '.[$n] = $v / $hz' <<<"$out")
	done
	echo "$out"
}
mcus_up() { ctl mcu list --platform p1 --json 2>/dev/null | jq '[.[] | select(.state == "up")] | length' 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- the machine

MACHINE=$(jq -n --arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
	--argjson nproc "$(nproc)" --arg kernel "$(uname -r)" \
	--argjson mem "$(awk '/^MemTotal:/ { print $2 * 1024 }' /proc/meminfo)" \
	--arg rabbitmq "$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null)" \
	--arg redis "$(dpkg-query -W -f '${Version}' redis-server 2>/dev/null)" \
	--arg mariadb "$(dpkg-query -W -f '${Version}' mariadb-server 2>/dev/null)" \
	--arg layout "$LAYOUT" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
	'{cpu: $cpu, nproc: $nproc, kernel: $kernel, mem_bytes: $mem, rabbitmq: $rabbitmq, redis: $redis,
	  mariadb: $mariadb, sandbox_layout: $layout, loadavg_at_start: $load}')
say "machine: $(jq -r '"\(.nproc) x \(.cpu), \(.mem_bytes / 1073741824 | floor) GiB, kernel \(.kernel); RabbitMQ \(.rabbitmq), Redis \(.redis), MariaDB \(.mariadb); sandbox \(.sandbox_layout); load \(.loadavg_at_start)"' <<<"$MACHINE")"
say "mode: $([ $QUICK = 1 ] && echo quick || echo full)"

# ---------------------------------------------------------------- the daemons

# Clean: no daemon, no drill simulator, empty stores; then the daemons and the
# sandbox's simulators (4 MCUs of 500 per room), and 4 more MCUs of 5,000 in
# each of p1's rooms for the load (bench-p1-r1, bench-p1-r2).
say "starting the daemons (sandbox.sh start) and the simulators"
"$SANDBOX" drill stop >/dev/null 2>&1
stop_pid bench-p1-r1 10
stop_pid bench-p1-r2 10
# daemons started afresh: a css that ran before has a heap to grow into unseen
"$SANDBOX" stop >/dev/null 2>&1
for r in redis-p1 redis-p2; do rcli "$r" FLUSHALL >/dev/null 2>&1; done
"$SANDBOX" start >"$WORK/start.log" 2>&1 || { cat "$WORK/start.log" >&2; finish; die "sandbox.sh start failed"; }
for r in p1-r1 p1-r2; do
	spawn "bench-$r" "$BUILD/mcusim" --platform p1 --room "$r" --prefix "bench-$r" --count 4 --capacity 5000 \
		--amqp "$(amqp_at p1 mcu)" -q
done
want=$((4 + 4 + 4 + 4))
wait_for 60 "p1's $want MCUs up in rms" eval '[ "$(mcus_up)" -ge $want ]' || { rc=1; warn "MCUs not up: $(mcus_up) of $want"; }
# The first creates through a fresh css: until one is ACKed, nothing is measured.
ok=0
for i in $(seq 12); do
	CM_TIMEOUT=5 cm_create "$WORK/probe.json" 5 50 && [ "$(jq .acked "$WORK/probe.json")" = 5 ] && { ok=1; break; }
	sleep 2
done
[ $ok = 1 ] || { finish; die "css of p1 does not ACK creates: $(cat "$WORK/probe.json.txt" 2>/dev/null | tail -n 3)"; }
cm_end "$WORK/probe.json"

# ---------------------------------------------------------------- floor and create

floor_round 1

# Throughput first, on a css that has run only the probe: its memory per
# conference is the growth from there (after the rate steps the heap keeps
# what their conferences used, and a later run grows into it unseen).
RSS_BEFORE=$(rss_all)
say "create throughput: $TP_N creates as fast as they are answered"
CPU_BEFORE=$(cpu_all)
cm_create "$WORK/throughput.json" $TP_N 100000 || warn "cmsim create failed: $(tail -n 3 "$WORK/throughput.json.txt")"
CPU_AFTER=$(cpu_all)
sleep 2 # the history rows written, the records settled
RSS_LOADED=$(rss_all)
RUNNING=$(jq '.acked' "$WORK/throughput.json" 2>/dev/null || echo 0)
say "ending the $RUNNING conferences"
cm_end "$WORK/throughput.json"
sleep 3
RSS_ENDED=$(rss_all)
sleep 5 # css's history writes of the ends done before the floor is measured again

say "create latency at $LOW_RATE/s: $LOW_N creates"
cm_create "$WORK/create-low.json" $LOW_N $LOW_RATE || warn "cmsim create failed: $(tail -n 3 "$WORK/create-low.json.txt")"
cm_end "$WORK/create-low.json"

MAX_RATE=null
: >"$WORK/steps.jsonl"
for rate in "${RATES[@]}"; do
	n=$((rate * STEP_S))
	say "create at $rate/s: $n creates"
	sleep 1
	cm_create "$WORK/step-$rate.json" $n "$rate" || { warn "cmsim create failed at $rate/s"; break; }
	# measured from here on: 0 when not even the first rate kept p99 within 50 ms
	[ "$MAX_RATE" = null ] && MAX_RATE=0
	jq -c --argjson r "$rate" '{rate: $r, acked, nacked, unanswered, p50_ms: (.ack_latency_us.p50 / 1000),
		p99_ms: (.ack_latency_us.p99 / 1000), achieved_per_s: (.acked / (.elapsed_ms / 1000))}' \
		"$WORK/step-$rate.json" | tee -a "$WORK/steps.jsonl" | sed 's/^/    /'
	cm_end "$WORK/step-$rate.json"
	jq -e '.nacked == 0 and .unanswered == 0 and .acked > 0 and .ack_latency_us.p99 <= 50000' "$WORK/step-$rate.json" >/dev/null || break
	MAX_RATE=$rate
done

[ $FLOOR_ROUNDS -ge 3 ] && floor_round 2

floor_round "$FLOOR_ROUNDS"

stop_pid bench-p1-r1 10
stop_pid bench-p1-r2 10

# ---------------------------------------------------------------- restore

: >"$WORK/restores.jsonl"
for n in "${RESTORE_NS[@]}"; do
	say "restore of a room of $n conferences: drill room-failure --one-room --confs $n"
	timeout 1200 "$top/deploy/drill.sh" room-failure --one-room --confs "$n" --rate $RESTORE_RATE \
		--json "$WORK/restore-$n.json" >"$WORK/restore-$n.log" 2>&1 ||
		warn "the drill at $n did not pass (see $WORK/restore-$n.log): $(jq -c '.failures' "$WORK/restore-$n.json" 2>/dev/null)"
	if jq -e . "$WORK/restore-$n.json" >/dev/null 2>&1; then
		jq -c --argjson n "$n" '{confs: $n, running_before, restored, lost, duplicates, pass, detect_s,
			restore_all_s, restore_p50_s, restore_p99_s, settle_s}' "$WORK/restore-$n.json" |
			tee -a "$WORK/restores.jsonl" | sed 's/^/    /'
	else
		rc=1
		tail -n 5 "$WORK/restore-$n.log" >&2
	fi
done
"$SANDBOX" drill stop >/dev/null 2>&1

# ---------------------------------------------------------------- figures

# The floors, median over the rounds of each figure.
jq -s '
	def med: map(select(. != null)) | sort |
		if length == 0 then null else (.[(length - 1) / 2 | floor] + .[length / 2 | floor]) / 2 end;
	def f(p): map(getpath(p)) | med;
	{rr_paced_p50_ms: f(["amqp","rr_paced","p50_ms"]), rr_paced_p99_ms: f(["amqp","rr_paced","p99_ms"]),
	 rr_b2b_p50_ms: f(["amqp","rr_b2b","p50_ms"]), rr_b2b_rate: f(["amqp","rr_b2b","rate_per_s"]),
	 rr_w64_rate: f(["amqp","rr_w64","rate_per_s"]), rr_w64_p50_ms: f(["amqp","rr_w64","p50_ms"]),
	 redis_paced_p50_ms: f(["redis","write_paced","p50_ms"]), redis_b2b_rate: f(["redis","write_b2b","rate_per_s"]),
	 redis_pipelined_rate: f(["redis","write_pipelined","rate_per_s"]),
	 mysql_paced_p50_ms: f(["mysql","write_paced","p50_ms"]), mysql_batched_rate: f(["mysql","write_batched","rate_per_s"]),
	 rounds: length}' "$WORK"/floor-*.json >"$WORK/floor.json"

jq -n --argjson quick $QUICK --argjson machine "$MACHINE" --slurpfile floor "$WORK/floor.json" \
	--slurpfile low "$WORK/create-low.json" --slurpfile tp "$WORK/throughput.json" \
	--slurpfile steps <(jq -s . "$WORK/steps.jsonl") --slurpfile restores <(jq -s . "$WORK/restores.jsonl") \
	--argjson maxrate "$MAX_RATE" --argjson before "$RSS_BEFORE" --argjson loaded "$RSS_LOADED" \
	--argjson ended "$RSS_ENDED" --argjson running "$RUNNING" --argjson lowrate $LOW_RATE \
	--argjson cpu0 "$CPU_BEFORE" --argjson cpu1 "$CPU_AFTER" \
	--argjson elapsed $((SECONDS - T_START)) '
	def r(x): if x == null then null else (x * 1000 | round) / 1000 end;
	def div(a; b): if a == null or b == null or b == 0 then null else a / b end;
	$floor[0] as $f | $restores[0] as $rs |
	def restore(n): ($rs | map(select(.confs == n)) | first);
	# bytes per conference: the instance that grew most (the active one)
	def per_conf(d): if $running > 0 then
		([$loaded | to_entries[] | select(.key | test("^p1-" + d)) | (.value - ($before[.key] // .value))] | max) / $running
		else null end;
	def after_end(d): [$ended | to_entries[] | select(.key | test("^p1-" + d)) | .value] | max;
	# the create floor: 6 broker legs (3 request/replies: CM to css, css to rms, css to the MCU)
	# and 2 record writes (creating, running); the MySQL row is written after the ACK.
	(3 * $f.rr_paced_p50_ms + 2 * $f.redis_paced_p50_ms) as $cfloor |
	# a conference at full pipelining: 3 request/replies, 2 records, 1 history row, one after the other
	(div(1; 3 / $f.rr_w64_rate + 2 / $f.redis_pipelined_rate + 1 / $f.mysql_batched_rate)) as $tfloor |
	# a restored conference: 1 request/reply (the MCU), 2 records (pending_restore, restored), 1 history row
	(div(1; 1 / $f.rr_w64_rate + 2 / $f.redis_pipelined_rate + 1 / $f.mysql_batched_rate)) as $rfloor |
	($low[0].ack_latency_us.p50 / 1000) as $p50 |
	($tp[0].acked / ($tp[0].elapsed_ms / 1000)) as $tput |
	($rs | map(select(.restore_all_s != null and .restore_all_s > 0)) | last) as $rbig |
	{mode: (if $quick == 1 then "quick" else "full" end), elapsed_s: $elapsed, machine: $machine,
	 create_p50_ms: r($p50), create_p99_ms: r($low[0].ack_latency_us.p99 / 1000), create_rate: $lowrate,
	 create_floor_p50_ms: r($cfloor), create_ratio: r(div($p50; $cfloor)),
	 create_max_rate: $maxrate, create_steps: $steps[0],
	 create_throughput: r($tput), create_throughput_floor: r($tfloor), create_throughput_ratio: r(div($tput; $tfloor)),
	 restore_10k_s: restore(10000).restore_all_s, restore_20k_s: restore(20000).restore_all_s,
	 restore_50k_s: restore(50000).restore_all_s,
	 restore_rate: r(if $rbig then $rbig.restored / $rbig.restore_all_s else null end),
	 restore_rate_of: (if $rbig then $rbig.confs else null end),
	 restore_floor_rate: r($rfloor),
	 restore_ratio: r(if $rbig then div($rbig.restored / $rbig.restore_all_s; $rfloor) else null end),
	 restores: $rs,
	 css_bytes_per_conf: r(per_conf("css")), rms_bytes_per_conf: r(per_conf("rms")),
	 memory_confs: $running, css_rss_after_end_bytes: after_end("css"), rms_rss_after_end_bytes: after_end("rms"),
	 rss: {before: $before, loaded: $loaded, ended: $ended},
	 throughput_cpu_s: ($cpu1 | with_entries(.value = r(.value - ($cpu0[.key] // 0)))),
	 throughput_wall_s: r($tp[0].elapsed_ms / 1000),
	 cpu_ms_per_create: r(div(($cpu1 | to_entries | map(.value - ($cpu0[.key] // 0)) | add) * 1000; $tp[0].acked)),
	 floor: $f,
	 skipped: (if $quick == 1 then "quick: restore of 20,000 and 50,000 not run (null); fewer and shorter rounds" else null end)}
	' >"$WORK/result.json" || { rc=1; warn "the figures could not be computed"; }

# ---------------------------------------------------------------- the table

jq -r '
	def n(x; d): if x == null then "-" else (x * pow(10; d) | round / pow(10; d) | tostring) end;
	def row(a; b; c; d): "  \(a)\t\(b)\t\(c)\t\(d)";
	"figure\tconfdr\tfloor\tratio",
	row("create p50 ms at \(.create_rate)/s"; n(.create_p50_ms; 2); n(.create_floor_p50_ms; 2); n(.create_ratio; 2)),
	row("create p99 ms at \(.create_rate)/s"; n(.create_p99_ms; 2); "-"; "-"),
	row("create max rate /s (p99 <= 50 ms, no NACK)"; n(.create_max_rate; 0); "-"; "-"),
	row("create throughput /s"; n(.create_throughput; 0); n(.create_throughput_floor; 0); n(.create_throughput_ratio; 2)),
	(.restores[] | row("restore of a room of \(.confs), s (restored \(.restored), lost \(.lost))"; n(.restore_all_s; 3); "-"; "-")),
	row("restore rate /s (room of \(.restore_rate_of // "-"))"; n(.restore_rate; 0); n(.restore_floor_rate; 0); n(.restore_ratio; 2)),
	row("CPU ms per create (all servers, daemons, MCU simulators)"; n(.cpu_ms_per_create; 3); "-"; "-"),
	row("css bytes per conference"; n(.css_bytes_per_conf; 0); "-"; "-"),
	row("rms bytes per conference"; n(.rms_bytes_per_conf; 0); "-"; "-"),
	row("css RSS MiB after all ended"; n(.css_rss_after_end_bytes / 1048576; 1); "-"; "-"),
	row("rms RSS MiB after all ended"; n(.rms_rss_after_end_bytes / 1048576; 1); "-"; "-"),
	"",
	"CPU seconds during the throughput run of \(.throughput_wall_s) s: \(.throughput_cpu_s | to_entries | map("\(.key) \(.value)") | join(", "))\t\t\t",
	"floor (median of \(.floor.rounds) rounds)\t\t\t",
	row("amqp request/reply p50 ms, paced / back to back"; "\(n(.floor.rr_paced_p50_ms; 3)) / \(n(.floor.rr_b2b_p50_ms; 3))"; ""; ""),
	row("amqp request/reply /s, back to back / 64 in flight"; "\(n(.floor.rr_b2b_rate; 0)) / \(n(.floor.rr_w64_rate; 0))"; ""; ""),
	row("redis record p50 ms paced; /s back to back, pipelined"; "\(n(.floor.redis_paced_p50_ms; 3)); \(n(.floor.redis_b2b_rate; 0)), \(n(.floor.redis_pipelined_rate; 0))"; ""; ""),
	row("mysql row p50 ms alone; /s batched"; "\(n(.floor.mysql_paced_p50_ms; 3)); \(n(.floor.mysql_batched_rate; 0))"; ""; ""),
	(if .skipped then "  (\(.skipped))" else empty end)
	' "$WORK/result.json" | awk -F '\t' '
	# the rows before the blank line as a table (columns padded to their widest
	# cell; no column(1): bsdextrautils is not on a fresh machine), the rest as is
	function flush(r, i, line) {
		for (r = 1; r <= n; r++) {
			line = ""
			for (i = 1; i <= nf[r]; i++)
				line = line (i < nf[r] ? sprintf("%-" (w[i] + 2) "s", c[r, i]) : c[r, i])
			sub(/ +$/, "", line)
			print line
		}
		n = 0
	}
	BEGIN { t = 1 }
	t && /^$/ { flush(); t = 0; next }
	t { n++; nf[n] = NF; for (i = 1; i <= NF; i++) { c[n, i] = $i; if (length($i) > w[i]) w[i] = length($i) }; next }
	{ gsub(/\t+/, " "); print }
	END { if (t) flush() }'
[ -n "$JSON_OUT" ] && cp "$WORK/result.json" "$JSON_OUT"
say "done in $((SECONDS - T_START)) s; files in $WORK"
finish
exit $rc
