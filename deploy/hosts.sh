# shellcheck shell=bash
# The multi-host sandbox's hosts and the faults a drill injects on them,
# sourced by deploy/sandbox.sh (not run): network namespaces <tag>-p1, -p2,
# -zk (tag cdr-<port base>) beside this one (ops), one veth link per pair of
# hosts (a full mesh, 6 links), each host one address of the sandbox's /24
# (lib.sh: host_addr) set as /32 on each of its link ends, with a /32 route to
# each peer over the direct link. No default route, no forwarding: a link
# down cuts exactly that pair. Link ends: "to-<peer>" inside a namespace,
# "c<base>-<peer>" here (interface names are at most 15 characters).
# Every command is bounded (ip: 10 s) and idempotent.

HOSTS=(ops p1 p2 zk)
NS_HOSTS=(p1 p2 zk)
PAIRS=("ops p1" "ops p2" "ops zk" "p1 p2" "p1 zk" "p2 zk")

ipc() { timeout 10 ip "$@"; }
ns_name() { echo "$NS_TAG-$1"; }
ns_exists() { [ -e "/run/netns/$(ns_name "$1")" ]; }
# end_name HOST PEER: the name of HOST's end of the link to PEER.
end_name() { if [ "$1" = ops ]; then echo "c$BASE-$2"; else echo "to-$2"; fi; }
# ipn HOST ARGS: ip in HOST's namespace.
ipn() { if [ "$1" = ops ]; then ipc "${@:2}"; else ipc -n "$(ns_name "$1")" "${@:2}"; fi; }
link_exists() { ipn "$1" link show "$(end_name "$1" "$2")" >/dev/null 2>&1; }
check_host() {
	case " ${HOSTS[*]} " in *" $1 "*) return 0 ;; esac
	die "unknown host '$1' (one of: ${HOSTS[*]})"
}

# link_create A B: the veth pair of A and B (A may be ops, B never is: PAIRS' order).
# Both ends there: done. One end without the other is not this sandbox's pair
# (one of ours loses both ends with its namespace, a moment later): another
# sandbox of the same port base on this network stack, e.g. in another root
# or container that shares it, holds it; taking its name would leave this
# namespace without its end, so that is an error that names it.
link_create() {
	local a=$1 b=$2 end=$((SECONDS + 5))
	while link_exists "$a" "$b" || link_exists "$b" "$a"; do
		link_exists "$a" "$b" && link_exists "$b" "$a" && return 0
		[ $SECONDS -lt $end ] && { sleep 0.2; continue; }
		if link_exists "$a" "$b"; then
			die "link $a-$b: $a has its end $(end_name "$a" "$b") but $(ns_name "$b") has no $(end_name "$b" "$a"): another sandbox with port base $BASE uses this network stack (another root or container sharing it?); stop it, or choose another CONFDR_PORT_BASE"
		fi
		die "link $a-$b: $(ns_name "$b") has its end $(end_name "$b" "$a") but $a has no $(end_name "$a" "$b"): another sandbox with port base $BASE uses this network stack (another root or container sharing it?); stop it, or choose another CONFDR_PORT_BASE"
	done
	ipn "$a" link add "$(end_name "$a" "$b")" type veth peer name "$(end_name "$b" "$a")" netns "$(ns_name "$b")" ||
		die "cannot create the link $a-$b"
}

# link_up A B: both ends up, each with its host's address and a route to the peer.
link_up() {
	local x y e
	for x in "$1 $2" "$2 $1"; do
		read -r x y <<<"$x"
		e=$(end_name "$x" "$y")
		ipn "$x" link set "$e" up || die "cannot set $x's link to $y up"
		ipn "$x" addr replace "$(host_addr "$x")/32" dev "$e" || die "cannot address $x's link to $y"
		ipn "$x" route replace "$(host_addr "$y")/32" dev "$e" src "$(host_addr "$x")" ||
			die "cannot route $x to $y"
	done
}
link_down() {
	ipn "$1" link set "$(end_name "$1" "$2")" down 2>/dev/null || true
	ipn "$2" link set "$(end_name "$2" "$1")" down 2>/dev/null || true
}
link_state() { # A B: up | down | missing
	if ! link_exists "$1" "$2"; then echo missing; return 0; fi
	if ipn "$1" link show "$(end_name "$1" "$2")" | grep -q 'state UP\|,UP[,>]' &&
		ipn "$2" link show "$(end_name "$2" "$1")" | grep -q 'state UP\|,UP[,>]'; then echo up; else echo down; fi
}

# hosts_up: the namespaces (loopback up: each host's own 127.0.0.1) and the links.
hosts_up() {
	local h p
	command -v ip >/dev/null || die "ip (package iproute2) is missing"
	# Another sandbox whose port base gives the same /24 (bases less than 128 apart) routes it already.
	h=$(ipc route show "$(host_addr p1)/32" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
	[ -z "$h" ] || [ "$h" = "$(end_name ops p1)" ] ||
		die "$NET.0/24 is in use here already (route to $(host_addr p1) via $h): choose a CONFDR_PORT_BASE at least 128 away"
	for h in "${NS_HOSTS[@]}"; do
		ns_exists "$h" || ipc netns add "$(ns_name "$h")" || die "cannot create network namespace $(ns_name "$h") (root needed)"
		ipn "$h" link set lo up || die "cannot set lo up in $(ns_name "$h")"
	done
	for p in "${PAIRS[@]}"; do
		# shellcheck disable=SC2086 # a pair: two words
		link_create $p
		# shellcheck disable=SC2086
		link_up $p
	done
}

# hosts_down: the namespaces (their link ends go with them) and any end left here.
hosts_down() {
	local h l
	for h in "${NS_HOSTS[@]}"; do
		ns_exists "$h" && { ipc netns del "$(ns_name "$h")" || warn "cannot delete namespace $(ns_name "$h")"; }
	done
	# The ends here go with the namespaces, a moment later; any still here then is deleted.
	for _ in $(seq 50); do [ -z "$(root_ends)" ] && break; sleep 0.1; done
	for l in $(root_ends); do
		ipc link del "$l" 2>/dev/null || { [ -z "$(root_ends | grep -x "$l")" ] || warn "cannot delete link $l"; }
	done
}
root_ends() { ipc -o link show 2>/dev/null | sed -n "s/^[0-9]*: \(c$BASE-[a-z0-9]*\)[@:].*/\1/p"; }
# hosts_left: what of the hosts is still there (nothing: empty).
hosts_left() {
	ipc netns list 2>/dev/null | grep -E "^$NS_TAG-(p1|p2|zk)( |\$)" || true
	ipc -o link show 2>/dev/null | grep -oE "c$BASE-[a-z0-9]+" || true
}

# ---------------------------------------------------------------- faults

# fault_power_off HOST: every process of HOST's namespace SIGKILLed at once.
fault_power_off() {
	local h=$1 pids end
	[ "$h" != ops ] || die "ops is this host: no power cut there"
	ns_exists "$h" || die "host $h is not up (no namespace $(ns_name "$h"))"
	pids=$(ipc netns pids "$(ns_name "$h")" | tr '\n' ' ')
	if [ -z "${pids// /}" ]; then say "power-off $h: no process runs there"; return 0; fi
	# shellcheck disable=SC2086 # a list of pids
	kill -KILL $pids 2>/dev/null || true
	end=$((SECONDS + 10))
	while [ -n "$(ipc netns pids "$(ns_name "$h")")" ]; do
		[ $SECONDS -lt $end ] || die "power-off $h: processes survive SIGKILL: $(ipc netns pids "$(ns_name "$h")" | tr '\n' ' ')"
		sleep 0.1
	done
	say "power-off $h: killed (SIGKILL) $(wc -w <<<"$pids") processes: $(names_of_pids $pids)"
}
# names_of_pids PID...: the sandbox names (pid files) among them, else the command.
names_of_pids() {
	local p f out=()
	for p in "$@"; do
		f=$(grep -lx "$p" "$RUN"/pids/*.pid 2>/dev/null | head -n 1)
		if [ -n "$f" ]; then out+=("$(basename "$f" .pid)"); fi
	done
	echo "${out[*]:-(no sandbox names)}"
}

# fault_zk_cut P: P cut from the other ZooKeeper members and their clients
# only (its member in the minority, its daemons without the majority), its
# broker, Redis and MariaDB still reached: an nftables table in P's namespace
# drops TCP to and from the other hosts on the ZooKeeper ports (client, peer,
# election). Dropped, not refused: as a real cut, connections hang.
ZKCUT_TABLE=cdr_zkcut
zk_cut_on() { in_host "$1" nft list table inet $ZKCUT_TABLE >/dev/null 2>&1; }
fault_zk_cut() {
	local p=$1 others=() h ports
	command -v nft >/dev/null || die "zk-cut: nft is missing (package nftables; deploy/install-deps.sh)"
	ns_exists "$p" || die "host $p is not up (no namespace $(ns_name "$p"))"
	for h in "${NS_HOSTS[@]}"; do [ "$h" = "$p" ] || others+=("$(host_addr "$h")"); done
	ports="$ZK_PORT, $ZK_PEER_PORT, $ZK_ELECTION_PORT"
	zk_cut_on "$p" && { say "zk-cut $p: already cut"; return 0; }
	in_host "$p" nft -f - <<NFT || die "zk-cut $p: nft refused the rules"
table inet $ZKCUT_TABLE {
	chain in {
		type filter hook input priority 0; policy accept;
		ip saddr { ${others[0]}, ${others[1]} } tcp dport { $ports } drop
		ip saddr { ${others[0]}, ${others[1]} } tcp sport { $ports } drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		ip daddr { ${others[0]}, ${others[1]} } tcp dport { $ports } drop
		ip daddr { ${others[0]}, ${others[1]} } tcp sport { $ports } drop
	}
}
NFT
	say "zk-cut $p: ZooKeeper traffic to and from ${others[*]} dropped (ports $ports); every other link and port still reached"
}
zk_cut_heal() {
	local p
	for p in p1 p2; do
		ns_exists "$p" && zk_cut_on "$p" || continue
		in_host "$p" nft delete table inet $ZKCUT_TABLE || die "cannot remove the zk-cut of $p"
		say "heal: zk-cut of $p removed"
	done
}

fault_partition() {
	local a=$1 b=$2
	check_host "$a"
	check_host "$b"
	[ "$a" != "$b" ] || die "partition: two different hosts"
	link_exists "$b" "$a" || die "no link $a-$b (sandbox not up multi-host?)"
	link_down "$a" "$b"
	say "partition $a $b: link down at both ends ($a: $(end_name "$a" "$b"), $b: $(end_name "$b" "$a"))"
}
# fault_heal [A B]: that link (or every link) up again with its address and routes.
fault_heal() {
	local p
	if [ $# = 2 ]; then
		check_host "$1"
		check_host "$2"
		[ "$1" != "$2" ] || die "heal: two different hosts"
		link_up "$1" "$2"
		say "heal $1 $2: link up"
		return 0
	fi
	for p in "${PAIRS[@]}"; do
		# shellcheck disable=SC2086
		[ "$(link_state $p)" = up ] && continue
		# shellcheck disable=SC2086
		link_up $p
		say "heal: link ${p/ /-} up"
	done
	command -v nft >/dev/null && zk_cut_heal
	say "heal: every link up, no zk-cut"
}
fault_status() {
	local p
	printf '%-8s %s\n' LINK STATE
	for p in "${PAIRS[@]}"; do
		# shellcheck disable=SC2086
		printf '%-8s %s\n' "${p/ /-}" "$(link_state $p)"
	done
	for p in p1 p2; do
		command -v nft >/dev/null && ns_exists "$p" && zk_cut_on "$p" && printf '%-8s %s\n' "$p" "zk-cut"
	done
	return 0
}

cmd_fault() {
	[ "$LAYOUT" = multi ] || die "fault: the sandbox in $RUN is single-host (faults need CONFDR_SANDBOX_HOSTS=multi)"
	case ${1:-} in
	power-off) [ $# = 2 ] || die "usage: fault power-off p1|p2|zk"; check_host "$2"; fault_power_off "$2" ;;
	partition)
		[ $# = 3 ] || die "usage: fault partition A B (hosts: ${HOSTS[*]})"
		fault_partition "$2" "$3" ;;
	partition-zk)
		# P from the ZooKeeper majority: its links to the other platform and to zk down (ops kept).
		if [ $# != 2 ] || { [ "$2" != p1 ] && [ "$2" != p2 ]; }; then die "usage: fault partition-zk p1|p2"; fi
		fault_partition "$2" zk
		if [ "$2" = p1 ]; then fault_partition p1 p2; else fault_partition p2 p1; fi ;;
	zk-cut)
		if [ $# != 2 ] || { [ "$2" != p1 ] && [ "$2" != p2 ]; }; then die "usage: fault zk-cut p1|p2"; fi
		fault_zk_cut "$2" ;;
	heal) [ $# = 1 ] || [ $# = 3 ] || die "usage: fault heal [A B]"; fault_heal "${@:2}" ;;
	zk-stop | zk-start)
		case $#:${2:-} in 2:1 | 2:2 | 2:3) ;; *) die "usage: fault $1 1|2|3 (zookeeper-1 on p1, -2 on p2, -3 on zk)" ;; esac
		if [ "$1" = zk-stop ]; then server_stop "zookeeper-$2"; else server_start "zookeeper-$2"; fi ;;
	status) fault_status ;;
	*) die "usage: fault power-off HOST | partition A B | partition-zk P | zk-cut P | heal [A B] | zk-stop N | zk-start N | status" ;;
	esac
}
