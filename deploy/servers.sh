# shellcheck shell=bash
# The sandbox's servers, sourced by deploy/sandbox.sh (not run): how each is
# configured, started, awaited, set up and stopped, in either layout (lib.sh:
# single-host, every server on 127.0.0.1; multi-host, each in the namespace
# of its host, deploy/hosts.sh, bound to that host's address).
#   single: rabbitmq zookeeper redis-p1 redis-p2 redis-p1-replica redis-p2-replica mariadb
#   multi:  rabbitmq-P, mariadb-P, redis-P on P; redis-P-replica on the other
#           platform; zookeeper-1 on p1, -2 on p2, -3 on zk (an ensemble of 3)

if [ "$LAYOUT" = single ]; then
	# Start order (slowest first: they boot in parallel); stopped in reverse.
	SERVERS=(rabbitmq zookeeper redis-p1 redis-p2 redis-p1-replica redis-p2-replica mariadb)
	EPMDS=(epmd)
else
	SERVERS=(rabbitmq-p1 rabbitmq-p2 zookeeper-1 zookeeper-2 zookeeper-3 redis-p1 redis-p2 redis-p1-replica
		redis-p2-replica mariadb-p1 mariadb-p2)
	EPMDS=(epmd-p1 epmd-p2)
fi

# rabbit_bin: the directory of the broker's own scripts, looked up when used
# (after install-deps.sh ran), never when this script starts. Debian's
# /usr/sbin/rabbitmq-server is a wrapper that re-runs the broker as the
# rabbitmq user, who cannot write our run dir: it is never used.
rabbit_bin() {
	local d
	for d in /usr/lib/rabbitmq/bin /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin; do
		[ -x "$d/rabbitmq-server" ] && { echo "$d"; return 0; }
	done
	die "RabbitMQ's scripts are not in /usr/lib/rabbitmq/bin (package rabbitmq-server; deploy/install-deps.sh installs it)"
}

port_of() {
	case $1 in
	rabbitmq*) echo $AMQP_PORT ;; redis-*) redis_port "$1" ;; zookeeper*) echo $ZK_PORT ;;
	mariadb*) echo $MYSQL_PORT ;; epmd*) echo $EPMD_PORT ;; *) return 1 ;;
	esac
}
check_server_name() {
	case " ${SERVERS[*]} " in *" $1 "*) return 0 ;; esac
	die "unknown server '$1' (one of: ${SERVERS[*]})"
}

# ---------------------------------------------------------------- TLS

# The sandbox's CA (run/tls/ca.pem, its key ca.key) and a certificate per
# broker and MariaDB server (run/tls/NAME.pem, NAME.key), made when missing
# with openssl: ECDSA P-256; the CA for 10 years, a server's for 2. A
# server's certificate names its address as an IP and as a DNS name (the
# AMQP client, librabbitmq 0.11, compares the host as text with the DNS
# names only; MariaDB's checks the IP). Keys 0600. A CA already there (a
# private server of tests/ns.sh gets the sandbox's) is kept; a server's
# certificate for another address (another port base, layout) is made anew.
tls_ca_make() {
	local t=$RUN/tls
	[ -s "$t/ca.pem" ] && [ -s "$t/ca.key" ] && return 0
	command -v openssl >/dev/null || die "openssl is missing (package openssl; deploy/install-deps.sh installs it)"
	mkdir -p "$t" && chmod 700 "$t"
	(umask 077 && openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$t/ca.key.new" -out "$t/ca.pem.new" -days 3650 -subj "/O=confdr sandbox/CN=confdr sandbox CA" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign) >/dev/null 2>&1 ||
		die "openssl could not make the sandbox's CA in $t"
	chmod 644 "$t/ca.pem.new"
	mv "$t/ca.key.new" "$t/ca.key" && mv "$t/ca.pem.new" "$t/ca.pem"
	say "TLS: made the sandbox's CA $t/ca.pem"
}
# tls_server_cert NAME: NAME's certificate and key for its address.
tls_server_cert() {
	local name=$1 t=$RUN/tls a
	a=$(addr_of "$name")
	tls_ca_make
	if [ -s "$t/$name.pem" ] && [ -s "$t/$name.key" ] &&
		openssl x509 -in "$t/$name.pem" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:$a\(,\|\$\)" &&
		openssl verify -CAfile "$t/ca.pem" "$t/$name.pem" >/dev/null 2>&1; then
		return 0
	fi
	(umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$t/$name.key.new" \
		-out "$t/$name.csr" -subj "/O=confdr sandbox/CN=$a" &&
		openssl x509 -req -in "$t/$name.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 730 \
			-out "$t/$name.pem.new" -extfile <(printf '%s\n' "subjectAltName=IP:$a,DNS:$a" \
				"basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
				"extendedKeyUsage=serverAuth")) >/dev/null 2>&1 ||
		die "openssl could not make the certificate of $name in $t"
	chmod 644 "$t/$name.pem.new"
	rm -f "$t/$name.csr"
	mv "$t/$name.key.new" "$t/$name.key" && mv "$t/$name.pem.new" "$t/$name.pem"
}

# ---------------------------------------------------------------- processes

# listener_pid NAME / listening NAME: who listens on NAME's port, on its host.
listener_pid() {
	in_host "$(server_host "$1")" ss -Hltnp "sport = :$(port_of "$1")" 2>/dev/null |
		sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}
listening() { [ -n "$(in_host "$(server_host "$1")" ss -Hltn "sport = :$(port_of "$1")" 2>/dev/null)" ]; }

# claim_port NAME: if NAME's port is served by a process of ours that has no
# pid file (a half-finished earlier run), adopt it; if by someone else, fail.
claim_port() {
	local name=$1 port p pg
	port=$(port_of "$name")
	listening "$name" || return 0
	p=$(listener_pid "$name")
	if [ -n "$p" ] && ours "$p"; then
		pg=$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')
		ours "$pg" && p=$pg
		echo "$p" >"$(pidfile "$name")"
		say "adopting $name (pid $p) already listening on $(addr_of "$name"):$port"
		return 0
	fi
	die "port $port (for $name) is in use by ${p:-another process}${p:+ ($(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | cut -c1-80))}; stop it or choose another CONFDR_PORT_BASE"
}

# ---------------------------------------------------------------- epmd + RabbitMQ

# The Erlang environment of broker NAME and of its rabbitmqctl: nothing from
# /etc. AMQP on NAME's host address; epmd and the Erlang distribution on the
# loopback of that host (in multi-host, the namespace's own 127.0.0.1).
rmq_env() {
	local d=$RUN/$1
	export "$MARK=$RUN"
	# No RABBITMQ_NODE_IP_ADDRESS / _PORT: they would open a plain AMQP
	# listener; rabbitmq.conf has the TLS one.
	export RABBITMQ_NODENAME=confdr@localhost
	export RABBITMQ_DIST_PORT=$DIST_PORT ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=$HOST
	export RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log RABBITMQ_LOGS=-
	export RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
	export RABBITMQ_CONF_ENV_FILE=$d/rabbitmq-env.conf RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config
	export RABBITMQ_PID_FILE=$d/beam.pid HOME=$d/home ERL_CRASH_DUMP=$d/erl_crash.dump
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}
# rmqctl NAME ARGS: rabbitmqctl of broker NAME, on its host.
rmqctl() {
	local b
	b=$(rabbit_bin) || return 1
	(rmq_env "$1" && exec $(ns_prefix "$(server_host "$1")") timeout 60 "$b/rabbitmqctl" "${@:2}" 9>&-)
}
epmd_of() { if [ "$LAYOUT" = single ]; then echo epmd; else echo "epmd-${1#rabbitmq-}"; fi; }

epmd_ok() { in_host "$(server_host "$1")" env ERL_EPMD_PORT=$EPMD_PORT timeout 5 epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; }
# epmd exits at once when its port is not free yet (a server of the same
# port slot stopping an instant before): tried 3 times, 1 s apart.
start_epmd() {
	local e=$1 try
	running "$e" && return 0
	claim_port "$e"
	running "$e" && return 0
	for try in 1 2 3; do
		spawn "$e" epmd -port "$EPMD_PORT" -address "$HOST"
		wait_until 10 "$e" epmd_ok "$e" && return 0
		warn "$e on $HOST:$EPMD_PORT did not start (try $try of 3)"
		sleep 1
	done
	return 1
}

# rmq_hash PASSWORD: RabbitMQ's sha256 password hash, base64(salt || sha256(salt || password)),
# with a random 4-byte salt.
rmq_hash() {
	local salt hex
	salt=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
	hex=$({ printf "$(sed 's/../\\x&/g' <<<"$salt")"; printf '%s' "$1"; } | sha256sum | cut -c1-64)
	printf "$(sed 's/../\\x&/g' <<<"$salt$hex")" | base64 -w0
}

# The broker's users (docs/security.md): one per role, each allowed only its
# own queues and exchanges, plus confdr, the administrator (the operator's
# and the tests' inspection; the daemons take nothing it sends). Per role:
# configure, write, read, as RabbitMQ permission regexes. Each daemon
# declares every exchange, the dead-letter queue and its own work queues
# (docs/amqp.md): declaring a queue that dead-letters takes the right to read
# it and to write to confdr.dlx, binding confdr.dead.q to confdr.dlx takes
# write on the queue and read on the exchange. amq.gen-* are the
# server-named reply and subscriber queues.
RMQ_SHARED='confdr\.dlx|mau\.cmcmu\.ex|cmu\.mau\.ex|rms\.ntf\.ex|pms\.ntf\.ex|pms\.beat\.ex|modb\.notify\.ex|upu\.ntf\.ex|cdr\.alarm\.ex|cm\.ntf\.ex|confdr\.dead\.q'
RMQ_GEN='amq\.gen-.*'
RMQ_DEAD='confdr\.dlx|confdr\.dead\.q'
RMQ_NOTICES='rms\.ntf\.ex|pms\.ntf\.ex|pms\.beat\.ex|modb\.notify\.ex|confdr\.dlx'
declare -A RMQ_PERM=(
	[css]="^($RMQ_SHARED|mau\.conf\.q|mau\.cmu\.q|bmc\.cdr\.q|$RMQ_GEN)\$ ^(amq\.default|mau\.cmcmu\.ex|cm\.ntf\.ex|upu\.ntf\.ex|cdr\.alarm\.ex|mau\.cmu\.q|$RMQ_DEAD|$RMQ_GEN)\$ ^(mau\.conf\.q|mau\.cmu\.q|bmc\.cdr\.q|cmu\.mau\.ex|$RMQ_NOTICES|$RMQ_GEN)\$"
	[rms]="^($RMQ_SHARED|rms\.req\.q|rms\.res\.q|$RMQ_GEN)\$ ^(amq\.default|rms\.ntf\.ex|cdr\.alarm\.ex|$RMQ_DEAD|$RMQ_GEN)\$ ^(rms\.req\.q|rms\.res\.q|$RMQ_NOTICES|$RMQ_GEN)\$"
	[pms]="^($RMQ_SHARED|pms\.req\.q|$RMQ_GEN)\$ ^(amq\.default|pms\.ntf\.ex|pms\.beat\.ex|cdr\.alarm\.ex|$RMQ_DEAD|$RMQ_GEN)\$ ^(pms\.req\.q|$RMQ_NOTICES|$RMQ_GEN)\$"
	[mcu]="^($RMQ_GEN)\$ ^(amq\.default|cmu\.mau\.ex|$RMQ_GEN)\$ ^(mau\.cmcmu\.ex|rms\.ntf\.ex|$RMQ_GEN)\$"
	[cm]="^($RMQ_GEN|cmsim\..*)\$ ^(amq\.default|$RMQ_GEN|cmsim\..*)\$ ^(cm\.ntf\.ex|$RMQ_GEN|cmsim\..*)\$"
	[ops]="^($RMQ_GEN|cmsim\..*)\$ ^(amq\.default|$RMQ_GEN|cmsim\..*)\$ ^(confdr\.dead\.q|cdr\.alarm\.ex|cm\.ntf\.ex|upu\.ntf\.ex|$RMQ_NOTICES|$RMQ_GEN|cmsim\..*)\$"
	[bmc]="^($RMQ_GEN)\$ ^(amq\.default|modb\.notify\.ex|$RMQ_GEN)\$ ^(bmc\.cdr\.q|$RMQ_GEN)\$"
)
# amqp_secret USER: the password of broker user USER, made (random) the
# first time, in a file only its owner reads.
amqp_secret() {
	local f=$RUN/secrets/amqp-$1.password
	if [ ! -s "$f" ]; then
		mkdir -p "$RUN/secrets" && chmod 700 "$RUN/secrets"
		(umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$f")
	fi
	head -1 "$f"
}
# rmq_definitions VHOST...: users, vhosts, permissions and policies for a
# broker serving VHOSTs, as RabbitMQ's definitions JSON.
rmq_definitions() {
	local u users=() perms=() v c w r
	for u in confdr "${AMQP_ROLES[@]}"; do
		users+=("$(jq -nc --arg n "$u" --arg h "$(rmq_hash "$(amqp_secret "$u")")" --argjson admin "$([ "$u" = confdr ] && echo true || echo false)" \
			'{name: $n, password_hash: $h, hashing_algorithm: "rabbit_password_hashing_sha256", tags: (if $admin then ["administrator"] else [] end)}')")
	done
	for v in "$@"; do
		perms+=("$(jq -nc --arg v "$v" '{user: "confdr", vhost: $v, configure: ".*", write: ".*", read: ".*"}')")
		for u in "${AMQP_ROLES[@]}"; do
			read -r c w r <<<"${RMQ_PERM[$u]}"
			perms+=("$(jq -nc --arg u "$u" --arg v "$v" --arg c "$c" --arg w "$w" --arg r "$r" \
				'{user: $u, vhost: $v, configure: $c, write: $w, read: $r}')")
		done
	done
	jq -n --argjson users "[$(IFS=,; echo "${users[*]}")]" --argjson perms "[$(IFS=,; echo "${perms[*]}")]" \
		--argjson vhosts "$(printf '%s\n' "$@" | jq -R '{name: .}' | jq -s .)" \
		--argjson policy "$RMQ_DEAD_POLICY" \
		'{users: $users, vhosts: $vhosts, permissions: $perms,
		  policies: [$vhosts[] | {vhost: .name, name: "confdr-dead-bound", pattern: "^confdr\\.dead\\.q$",
		             "apply-to": "queues", priority: 0, definition: $policy}]}'
}

# The bound of confdr.dead.q: 100,000 messages, 7 days each, the oldest
# dropped first.
RMQ_DEAD_POLICY='{"max-length": 100000, "message-ttl": 604800000, "overflow": "drop-head"}'

spawn_rabbitmq() {
	local name=$1 d=$RUN/$1 bin
	mkdir -p "$d/home" "$d/mnesia" "$d/log"
	if [ ! -s "$d/home/.erlang.cookie" ]; then
		(umask 077 && head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F >"$d/home/.erlang.cookie")
	fi
	chmod 600 "$d/home/.erlang.cookie"
	tls_server_cert "$name"
	cat >"$d/rabbitmq.conf" <<CONF
# written by deploy/sandbox.sh
loopback_users = none
# AMQP over TLS only (docs/security.md, TLS): no plain listener. Clients are
# not asked for a certificate: they log in with a password, over TLS.
listeners.tcp = none
listeners.ssl.default = $(addr_of "$name"):$AMQP_PORT
ssl_options.cacertfile = $RUN/tls/ca.pem
ssl_options.certfile = $RUN/tls/$name.pem
ssl_options.keyfile = $RUN/tls/$name.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
load_definitions = $d/definitions.json
disk_free_limit.absolute = 50MB
log.console = true
log.console.level = info
log.file = false
CONF
	# Single-host: vhosts p1 and p2 on the one broker; multi-host: each
	# platform's on its own. The dead-letter queue is bounded (docs/amqp.md):
	# a flood of refused messages cannot fill the broker's disk. A policy, not
	# queue arguments: it can be changed on a live broker without declaring
	# the queue anew.
	(umask 077 && rmq_definitions $(rmq_vhosts "$name") >"$d/definitions.json") || die "RabbitMQ $name: definitions not written"
	echo '[].' >"$d/enabled_plugins"
	: >"$d/rabbitmq-env.conf"
	echo '[].' >"$d/advanced.config"
	bin=$(rabbit_bin) || exit 1
	start_epmd "$(epmd_of "$name")"
	(rmq_env "$name" && spawn "$name" "$bin/rabbitmq-server")
}
rabbitmq_ok() { rmqctl "$1" await_startup --timeout 5; }
# rmq_vhosts NAME: the vhosts broker NAME serves.
rmq_vhosts() { if [ "$LAYOUT" = single ]; then echo "${PLATFORMS[*]}"; else echo "${1#rabbitmq-}"; fi; }
setup_rabbitmq() {
	# The definitions file made vhosts, users and permissions at boot; check,
	# and import it again if not.
	local name=$1 perms v u missing=
	for v in $(rmq_vhosts "$name"); do
		perms=$(rmqctl "$name" -q list_permissions -p "$v" 2>/dev/null || true)
		for u in confdr "${AMQP_ROLES[@]}"; do
			grep -q "^${u}[[:space:]]" <<<"$perms" || missing+=" $u@$v"
		done
	done
	if [ -n "$missing" ]; then
		warn "RabbitMQ $name: users or permissions missing ($missing); importing its definitions again"
		rmqctl "$name" -q import_definitions "$RUN/$name/definitions.json" >/dev/null ||
			warn "RabbitMQ $name: importing $RUN/$name/definitions.json failed"
	fi
	# a broker made before the bound: its policy set now (idempotent)
	for v in $(rmq_vhosts "$name"); do
		rmqctl "$name" -q list_policies -p "$v" 2>/dev/null | grep -q confdr-dead-bound && continue
		rmqctl "$name" -q set_policy -p "$v" --apply-to queues confdr-dead-bound '^confdr\.dead\.q$' "$RMQ_DEAD_POLICY" >/dev/null ||
			warn "RabbitMQ $name: the bound of confdr.dead.q on vhost $v could not be set"
	done
}
stop_rabbitmq() {
	local name=$1 p
	p=$(pid_of "$name") || return 0
	if alive "$(cat "$RUN/$name/beam.pid" 2>/dev/null || true)"; then
		rmqctl "$name" stop "$RUN/$name/beam.pid" >/dev/null 2>&1 || kill -TERM "$p" 2>/dev/null || true
	else
		kill -TERM "$p" 2>/dev/null || true
	fi
	wait_gone "$name" "$p" 30
	rm -f "$(pidfile "$name")"
}

# ---------------------------------------------------------------- Redis

# redis_users NAME: the ACL users of Redis NAME (docs/security.md, "Stores"),
# the same on every Redis of the sandbox but for css's REPLICAOF (replicas
# only: css's takeover promotes one). In a file of mode 0600: passwords are
# never on a command line.
#   default  the sandbox's admin (ops tools, tests, drills): everything
#   css      its keys only; no admin or dangerous command but INFO
#   ops      reads anything, writes nothing
#   replica  the replication link only (masteruser of every Redis)
redis_users() {
	local extra=
	case $1 in *-replica) extra=' +replicaof' ;; esac
	cat <<CONF
user default on >$(secret redis-admin) ~* &* +@all
user css on >$(secret redis-css) resetkeys ~conf:* ~confs:* ~answer:* ~templates ~templates:* ~cdr:* resetchannels +@all -@dangerous +info$extra
user ops on >$(secret redis-ops) ~* resetchannels -@all +@read +info +ping +select +role -keys
user replica on >$(secret redis-replica) resetkeys resetchannels -@all +psync +replconf +ping
masteruser replica
masterauth $(secret redis-replica)
CONF
}

spawn_redis() {
	local name=$1 port args=()
	port=$(port_of "$name")
	mkdir -p "$RUN/$name"
	case $name in
	redis-p1-replica) args=(--replicaof "$(addr_of redis-p1)" "$REDIS_P1") ;;
	redis-p2-replica) args=(--replicaof "$(addr_of redis-p2)" "$REDIS_P2") ;;
	esac
	(umask 077 && redis_users "$name" >"$RUN/$name/users.conf")
	spawn "$name" redis-server "$RUN/$name/users.conf" --port "$port" --bind "$(addr_of "$name")" --dir "$RUN/$name" \
		--daemonize no --save '' --appendonly yes --repl-timeout 5 --protected-mode yes \
		--pidfile "$RUN/$name/redis.pid" "${args[@]}"
}
# A Redis started before its users were (a sandbox of an older checkout):
# css's logins would fail. Said, not mended: restarting it is the remedy.
redis_users_ok() {
	rcli "$1" ACL USERS 2>/dev/null | grep -qx css ||
		warn "$1 runs without the users of deploy/servers.sh (started before them): '$SELF server stop $1' then 'server start $1'"
	return 0
}
redis_ok() { [ "$(rcli "$1" ping 2>/dev/null)" = PONG ]; }

# ---------------------------------------------------------------- ZooKeeper

# Single-host: standalone; multi-host: member N of the ensemble (myid N).
spawn_zookeeper() {
	local name=$1 d=$RUN/$1 cp j main=ZooKeeperServerMain n
	mkdir -p "$d/data"
	cat >"$d/zoo.cfg" <<CFG
# written by deploy/sandbox.sh. A tick of 250 ms and syncLimit 4: a member
# that loses its leader (a power cut of the leader's host) notices within
# 1 s and the ensemble elects another, which bounds a platform's detection
# when its host held the leader (docs/pms.md, timing budget). The session
# bounds are explicit, not 2 to 20 ticks.
tickTime=250
initLimit=40
syncLimit=4
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=$d/data
clientPort=$ZK_PORT
clientPortAddress=$(addr_of "$name")
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
CFG
	if [ "$LAYOUT" = multi ]; then
		# Three members writing on one disk: no fsync per transaction (a
		# process killed, the sandbox's power cut included, loses nothing the
		# kernel has; only a crash of the machine would).
		main=quorum.QuorumPeerMain
		echo "forceSync=no" >>"$d/zoo.cfg"
		echo "${name#zookeeper-}" >"$d/data/myid"
		for n in 1 2 3; do
			echo "server.$n=$(addr_of "zookeeper-$n"):$ZK_PEER_PORT:$ZK_ELECTION_PORT"
		done >>"$d/zoo.cfg"
	fi
	cat >"$d/log4j.properties" <<'CFG'
# written by deploy/sandbox.sh: everything to stdout, which is the sandbox's log
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
CFG
	# zookeeper.jar's manifest names its dependencies; add an slf4j binding and log4j.
	cp=$d
	for j in zookeeper.jar zookeeper-jute.jar slf4j-api.jar slf4j-log4j12.jar log4j-1.2.jar; do
		[ -f "/usr/share/java/$j" ] || die "ZooKeeper: /usr/share/java/$j is missing (packages zookeeper, libslf4j-java, liblog4j1.2-java)"
		cp=$cp:/usr/share/java/$j
	done
	spawn "$name" java -Xmx256m -Djava.net.preferIPv4Stack=true -Dzookeeper.log.dir="$d" \
		-Dlog4j.configuration="file:$d/log4j.properties" -Dzookeeper.admin.enableServer=false \
		-Dzookeeper.jmx.log4j.disable=true \
		-cp "$cp" "org.apache.zookeeper.server.$main" "$d/zoo.cfg"
}
# zk_ok NAME: serving (standalone, or a member of a quorum: leader or follower).
zk_ok() {
	echo srvr | timeout 5 nc -q 1 -w 2 "$(addr_of "$1")" "$ZK_PORT" 2>/dev/null |
		grep -qE '^Mode: (standalone|leader|follower)'
}

# ---------------------------------------------------------------- MariaDB

spawn_mariadb() {
	local name=$1 d=$RUN/$1
	# A tmpdir of its own: mariadbd removes every "#sql*" file of its tmpdir
	# when it starts, and with the shared /tmp one sandbox's server starting
	# broke another's mariadb-install-db ("Unknown table mysql.tmp_user_sys").
	mkdir -p "$d" "$d/tmp"
	if [ ! -d "$d/data/mysql" ]; then
		# Into a scratch dir first, so an interrupted install is redone, never half-used.
		rm -rf "$d/data" "$d/data.new"
		say "mariadb: creating the data dir (mariadb-install-db)"
		# One install at a time on this machine (two sandboxes coming up at once,
		# tests/run.sh's lanes), each in its own tmpdir.
		(flock -w 300 8 && exec timeout 120 mariadb-install-db --no-defaults --datadir="$d/data.new" \
			--user=root --auth-root-authentication-method=normal --skip-test-db --tmpdir="$d/tmp" 8>&-) \
			8>"${TMPDIR:-/tmp}/confdr-mariadb-install.lock" >>"$(logfile "$name")" 2>&1 </dev/null 9>&- ||
			{ show_log "$name" 60; die "mariadb-install-db failed"; }
		mv "$d/data.new" "$d/data"
	fi
	# TCP clients must use TLS (require_secure_transport; the socket, root's
	# way in, counts as secure): docs/security.md, TLS.
	tls_server_cert "$name"
	spawn "$name" mariadbd --no-defaults --datadir="$d/data" --tmpdir="$d/tmp" --port="$MYSQL_PORT" --bind-address="$(addr_of "$name")" \
		--socket="$d/mysql.sock" --user=root --pid-file="$d/mariadbd.pid" --skip-name-resolve \
		--ssl-ca="$RUN/tls/ca.pem" --ssl-cert="$RUN/tls/$name.pem" --ssl-key="$RUN/tls/$name.key" \
		--tls-version=TLSv1.2,TLSv1.3 --require-secure-transport=ON \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
		--innodb-buffer-pool-size=128M --max-connections=500
}
mariadb_ok() { timeout 10 mariadb-admin --no-defaults --socket="$RUN/$1/mysql.sock" -uroot --connect-timeout=2 ping; }
# Single-host: both databases, user confdr at 127.0.0.1 and localhost;
# multi-host: confdr_P on P's, user confdr from any address (the server
# listens only on P's address in the sandbox's /24).
# The users (docs/security.md, "Stores"), made again at every up (their
# passwords from run/secrets):
#   root     by its socket only: unix_socket (the OS user root) or its password
#   css      SELECT, INSERT, UPDATE on the platforms' databases (a takeover
#            writes the failed platform's)
#   migrate  the schema (css's [mysql] migrations_user): all but GRANT there
#   ops      SELECT there (checks, drills)
#   confdr   the tests' user: nothing here (tests/ns.sh gives it their own databases)
# Single-host: both databases, users at 127.0.0.1 and localhost; multi-host:
# confdr_P on P's, users from any address (the server listens only on P's
# address in the sandbox's /24).
setup_mariadb() {
	local dbs hosts u h g sql
	if [ "$1" != mariadb ]; then
		dbs=(confdr_${1#mariadb-}) hosts=(% localhost)
	else
		dbs=(confdr_p1 confdr_p2) hosts=(127.0.0.1 localhost)
	fi
	sql="ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$(secret mysql-root)');"
	sql+=$'\n'"DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost'; DELETE FROM mysql.global_priv WHERE User = '';"
	for u in css migrate ops; do
		for h in "${hosts[@]}"; do
			sql+=$'\n'"CREATE USER IF NOT EXISTS '$u'@'$h' IDENTIFIED BY '$(secret mysql-$u)';"
			sql+=$'\n'"ALTER USER '$u'@'$h' IDENTIFIED BY '$(secret mysql-$u)';"
		done
	done
	for h in "${hosts[@]}"; do
		sql+=$'\n'"CREATE USER IF NOT EXISTS 'confdr'@'$h' IDENTIFIED BY 'confdr';"
		sql+=$'\n'"ALTER USER 'confdr'@'$h' IDENTIFIED BY 'confdr';"
	done
	for g in "${dbs[@]}"; do
		sql+=$'\n'"CREATE DATABASE IF NOT EXISTS $g;"
		for h in "${hosts[@]}"; do
			sql+=$'\n'"GRANT SELECT, INSERT, UPDATE ON $g.* TO 'css'@'$h';"
			sql+=$'\n'"GRANT ALL PRIVILEGES ON $g.* TO 'migrate'@'$h';"
			sql+=$'\n'"GRANT SELECT ON $g.* TO 'ops'@'$h';"
		done
	done
	# confdr (a well-known password) has no right on the platforms'
	# databases, only on the tests' (a sandbox made before had them).
	local in=
	for g in "${dbs[@]}"; do in+="${in:+, }'$g'"; done
	sql+=$'\n'"DELETE FROM mysql.db WHERE User = 'confdr' AND Db IN ($in);"
	sql+=$'\n'"FLUSH PRIVILEGES;"
	# On stdin: the passwords are never on a command line. A server just
	# installed has a root without a password yet.
	local p
	p=$(mysql_platform "$1")
	if ! mysql_root "$p" -e 'DO 1' >/dev/null 2>&1; then
		MYSQL_ROOT_FRESH=1 mysql_root "$p" <<<"$sql"
	else
		mysql_root "$p" <<<"$sql"
	fi
}
mysql_platform() { if [ "$1" = mariadb ]; then echo p1; else echo "${1#mariadb-}"; fi; }

# ---------------------------------------------------------------- one server

# server_spawn NAME: starts NAME if it is not running (does not wait).
server_spawn() {
	local name=$1
	running "$name" && return 0
	claim_port "$name"
	running "$name" && return 0
	say "starting $name on $(addr_of "$name"):$(port_of "$name")"
	case $name in
	rabbitmq*) spawn_rabbitmq "$name" ;;
	redis-*) spawn_redis "$name" ;;
	zookeeper*) spawn_zookeeper "$name" ;;
	mariadb*) spawn_mariadb "$name" ;;
	esac
}

# server_await NAME: waits until NAME answers, then sets it up (idempotent).
server_await() {
	local name=$1
	case $name in
	rabbitmq*) wait_until 120 "$name" rabbitmq_ok "$name" && setup_rabbitmq "$name" ;;
	redis-*) wait_until 30 "$name" redis_ok "$name" && redis_users_ok "$name" ;;
	zookeeper*) wait_until 60 "$name" zk_ok "$name" ;;
	mariadb*) wait_until 90 "$name" mariadb_ok "$name" && setup_mariadb "$name" ;;
	esac
}

server_start() {
	check_server_name "$1"
	make_secrets
	server_spawn "$1"
	server_await "$1" || die "$1 did not come up (log: $(logfile "$1"))"
	say "$1 is up (pid $(pid_of "$1" || echo '?'), $(addr_of "$1"):$(port_of "$1"))"
}

server_stop() {
	local name=$1 p
	check_server_name "$name"
	if ! running "$name"; then
		# No pid file, but maybe one of ours still serves the port.
		p=$(listener_pid "$name")
		if [ -n "$p" ] && ours "$p"; then echo "$p" >"$(pidfile "$name")"; else
			say "$name is not running"
			return 0
		fi
	fi
	say "stopping $name (pid $(pid_of "$name"))"
	case $name in
	rabbitmq*) stop_rabbitmq "$name" ;;
	mariadb*) stop_pid "$name" 60 ;;
	*) stop_pid "$name" 30 ;;
	esac
}

