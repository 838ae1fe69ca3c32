#!/usr/bin/env bash
# The .deb installed and run on a fresh Debian 12 root (docs/packaging.md),
# run by hand, not by tests/run.sh:
#
#   ../shared/tools/fresh-machine.sh 'tests/deb-fresh.sh'            (from a checkout; commits only)
#   ../shared/tools/fresh-machine.sh 'tests/deb-fresh.sh --lintian'  (also installs and runs lintian)
#
# It installs the build and sandbox dependencies (deploy/install-deps.sh),
# builds the packages (tests/package.sh, a scratch build dir with
# CMAKE_INSTALL_PREFIX=/usr), installs them with apt-get (which resolves their
# Depends from the archive), checks what the install did (the user confdr,
# /var/lib/confdr, conffiles, the daemons on PATH and their default config),
# starts the sandbox's servers and then the INSTALLED daemons and simulators
# against them (deploy/sandbox.sh start with CONFDR_BUILD_DIR a directory of
# links to /usr/sbin and /usr/bin, CONFDR_PREBUILT=1), waits until the
# installed confdrctl sees every daemon up and connected, checks each running
# daemon is the installed program, creates conferences through the installed
# cmsim, upgrades the package under the running daemons over an edited
# conffile, then stops the sandbox and purges.
# One line per check, "ok ..." or "not ok ...", each step's time; exit 1 if any is not ok.
#
# It installs packages into the system it runs on: it refuses to run unless
# CI=true (fresh-machine.sh sets it) or --force is given.
# Environment: CONFDR_PORT_BASE (default 21000: away from the usual sandboxes,
# since fresh-machine.sh shares this machine's network, and below the
# ephemeral ports, 32768 and up, which any outgoing connection may hold),
# CONFDR_SANDBOX_HOSTS (single, the default here, or multi), CONFDR_INSTANCES
# (default 2).
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
lintian=0 force=0
for a in "$@"; do
	case $a in
	--lintian) lintian=1 ;;
	--force) force=1 ;;
	-h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "deb-fresh.sh: unknown option $a (see --help)" >&2; exit 64 ;;
	esac
done
[ "${CI:-}" = true ] || [ $force = 1 ] ||
	{ echo "deb-fresh.sh: installs confdr into this system; run it in a fresh root (fresh-machine.sh) or with --force" >&2; exit 64; }
[ "$(id -u)" = 0 ] || { echo "deb-fresh.sh: run as root" >&2; exit 64; }

export CONFDR_PORT_BASE=${CONFDR_PORT_BASE:-21000}
export CONFDR_SANDBOX_HOSTS=${CONFDR_SANDBOX_HOSTS:-single}
export CONFDR_INSTANCES=${CONFDR_INSTANCES:-2}
work=$(mktemp -d /tmp/confdr-deb-fresh.XXXXXX)
debs=$work/debs bin=$work/bin
export CONFDR_RUN_DIR=$work/run CONFDR_BUILD_DIR=$bin CONFDR_PREBUILT=1
export DEBIAN_FRONTEND=noninteractive

n=0 nbad=0 t_all=$SECONDS
ok() { n=$((n + 1)); echo "ok $n $*"; }
bad() { n=$((n + 1)) nbad=$((nbad + 1)); echo "not ok $n $*"; }
check() {
	local what=$1 o
	shift
	if o=$("$@" 2>&1); then ok "$what"; else bad "$what"; [ -z "$o" ] || sed 's/^/    /' <<<"$o" | tail -n 20; fi
}
t=$SECONDS
step() { echo "# $* (at $((SECONDS - t_all)) s)"; t=$SECONDS; }
took() { echo "$((SECONDS - t)) s"; }
# timed WHAT COMMAND...: check, with the seconds COMMAND took in the line.
timed() {
	local what=$1 t0=$SECONDS o rc=0
	shift
	o=$("$@" 2>&1) || rc=$?
	if [ $rc = 0 ]; then ok "$what ($((SECONDS - t0)) s)"; else
		bad "$what ($((SECONDS - t0)) s)"
		[ -z "$o" ] || sed 's/^/    /' <<<"$o" | tail -n 30
	fi
	return $rc
}
finish() {
	./deploy/sandbox.sh down >/dev/null 2>&1
	echo "deb-fresh.sh: $((n - nbad)) ok, $nbad not ok, in $((SECONDS - t_all)) s (git $(git log -1 --format=%h 2>/dev/null))"
	[ $nbad = 0 ]
	exit
}
trap 'bad "interrupted"; finish' INT TERM
# An exit from anywhere (a bug here, set -u) still takes the sandbox down.
trap './deploy/sandbox.sh down >/dev/null 2>&1' EXIT

step "dependencies (deploy/install-deps.sh)"
timed "deploy/install-deps.sh" ./deploy/install-deps.sh

step "the packages (tests/package.sh, a scratch build dir)"
if bash tests/package.sh --out "$debs" >"$work/package.log" 2>&1; then
	ok "tests/package.sh: $(grep -c '^ok ' "$work/package.log") checks ok ($(took))"
else
	bad "tests/package.sh ($(took))"
	grep -E '^not ok|^    ' "$work/package.log" | head -n 30
	[ -n "$(ls "$debs"/confdr_*.deb 2>/dev/null)" ] || finish
fi
deb=$(ls "$debs"/confdr_*.deb | head -n 1) sims=$(ls "$debs"/confdr-sims_*.deb | head -n 1)

# The build's -dev packages pulled in the runtime libraries: without them
# (purged, then autoremove), the install has to pull those itself.
step "the -dev packages purged and the libraries autoremoved (so that apt has to resolve the Depends)"
LIBS=(librabbitmq4 libhiredis0.14 libzookeeper-mt2 libmariadb3 libjansson4 libevent-core-2.1-7 libevent-pthreads-2.1-7)
installed() { dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null | awk '$2 == "ii" {print $1}'; }
dev=$(installed librabbitmq-dev libhiredis-dev libzookeeper-mt-dev default-libmysqlclient-dev libmariadb-dev \
	libmariadb-dev-compat libjansson-dev libevent-dev libcmocka-dev)
# shellcheck disable=SC2086 # $dev: package names
timed "apt-get purge $(echo $dev); apt-get autoremove --purge" bash -c \
	"apt-get purge -y -q $(echo $dev) >'$work/purge.log' 2>&1 && apt-get autoremove --purge -y -q >>'$work/purge.log' 2>&1"
gone=$(comm -23 <(printf '%s\n' "${LIBS[@]}" | sort) <(installed "${LIBS[@]}" | sort) | tr '\n' ' ')
echo "# runtime libraries not installed now: ${gone:-none}"

step "apt-get install ./$(basename "$deb") ./$(basename "$sims")"
if apt-get install -y -q --no-install-recommends "$deb" "$sims" >"$work/apt.log" 2>&1; then
	ok "apt-get install of both packages ($(took); $(grep -oE '[0-9]+ newly installed' "$work/apt.log"): $(sed -n 's/^Setting up \([^ ]*\) .*/\1/p' "$work/apt.log" | tr '\n' ' ')"
else
	bad "apt-get install of both packages"
	tail -n 20 "$work/apt.log"
	finish
fi
check "apt-get pulled the libraries: ${LIBS[*]} installed" test "$(installed "${LIBS[@]}" | wc -l)" = ${#LIBS[@]}
check "dpkg: confdr and confdr-sims installed" bash -c \
	"dpkg-query -W -f='\${db:Status-Abbrev}\n' confdr confdr-sims | grep -c '^ii' | grep -qx 2"
check "the system user confdr (nologin, uid < 1000) and its group" bash -c \
	'getent passwd confdr | awk -F: "\$3 < 1000 && \$7 ~ /nologin/ {f=1} END {exit !f}" && getent group confdr'
check "/var/lib/confdr: confdr:confdr 750" test "$(stat -c '%U:%G %a' /var/lib/confdr 2>&1)" = "confdr:confdr 750"
check "conffiles: /etc/confdr/{css,rms,pms}.conf" bash -c \
	"[ \"\$(dpkg-query -W -f='\${Conffiles}\n' confdr | awk 'NF {print \$1}' | sort | tr '\n' ' ')\" = '/etc/confdr/css.conf /etc/confdr/pms.conf /etc/confdr/rms.conf ' ]"
for d in css rms pms; do
	check "confdr-$d on PATH is /usr/sbin/confdr-$d and takes its default config (-t)" \
		bash -c "[ \"\$(command -v confdr-$d)\" = /usr/sbin/confdr-$d ] && confdr-$d -t"
done
check "confdrctl, mcusim, cmsim in /usr/bin" bash -c 'for p in confdrctl mcusim cmsim confdr-conform; do [ -x /usr/bin/$p ] || exit 1; done'
check "man pages installed: confdr-css.8.gz ... confdrctl.8.gz" bash -c \
	'for p in confdr-css confdr-rms confdr-pms confdrctl; do [ -s /usr/share/man/man8/$p.8.gz ] || exit 1; done'
if [ $lintian = 1 ]; then
	step "lintian (its report shown, not judged)"
	apt-get install -y -q --no-install-recommends lintian >"$work/lintian-apt.log" 2>&1 || echo "# lintian: install failed"
	lintian --tag-display-limit 0 "$deb" "$sims" 2>&1 | sed 's/^/#   /'
	echo "# lintian: $(took)"
fi

step "the sandbox's servers and the installed daemons ($CONFDR_SANDBOX_HOSTS-host, ports from $CONFDR_PORT_BASE)"
mkdir -p "$bin"
for p in confdr-css confdr-rms confdr-pms confdr-supervise; do ln -s /usr/sbin/$p "$bin/$p"; done
for p in confdrctl mcusim cmsim; do ln -s /usr/bin/$p "$bin/$p"; done
if ./deploy/sandbox.sh start >"$work/start.log" 2>&1; then
	ok "sandbox.sh start with the installed programs ($(took))"
else
	bad "sandbox.sh start with the installed programs ($(took))"
	tail -n 30 "$work/start.log"
	finish
fi
eval "$(./deploy/sandbox.sh env)"
all=$((6 * CONFDR_INSTANCES))
ctl() {
	CONFDR_ZK_USER=deploy CONFDR_ZK_PASSWORD_FILE=$CONFDR_SECRETS/zk-deploy.password \
		timeout 120 /usr/bin/confdrctl "$@"
}
timed "installed confdrctl: all $all daemons up and connected (status --wait 90 --expect $all)" \
	ctl status --wait 90 --expect $all
ctl status 2>&1 | sed 's/^/#   /'
# Each daemon (the supervisor's child) runs the installed file: compared by
# inode (-ef), since under 'ip netns exec' in a chroot (multi-host) its
# /proc/PID/exe reads as a path from the machine's root.
installed_daemons=0 others=
for f in "$CONFDR_RUN_DIR"/pids/p[12]-*.pid; do
	inst=$(basename "$f" .pid) inst=${inst%-[0-9]} d=${inst##*-}
	c=$(pgrep -P "$(cat "$f")" | head -n 1)
	if [ -n "$c" ] && [ "/proc/$c/exe" -ef "/usr/sbin/confdr-$d" ]; then
		installed_daemons=$((installed_daemons + 1))
	else
		others="$others $(basename "$f" .pid):$(readlink "/proc/${c:-0}/exe" 2>/dev/null)"
	fi
done
check "each running daemon is the installed /usr/sbin/confdr-{css,rms,pms}: $installed_daemons of $all${others:+; not:$others}" \
	test "$installed_daemons" = "$all"
mcus_up() { [ "$(ctl mcu list --platform "$1" --json | jq '[.[] | select(.state == "up")] | length')" -ge 8 ]; }
t=$SECONDS
for p in p1 p2; do
	for _ in $(seq 150); do mcus_up $p 2>/dev/null && break; sleep 0.2; done
	check "$p's rms (installed) has the 8 MCUs of the installed mcusim up" mcus_up $p
	check "installed cmsim: 50 conferences created on $p" bash -c \
		"/usr/bin/cmsim create --platform $p --domain ud-$p-r1-a --domain ud-$p-r2-a --count 50 --rate 50 --timeout 30 -q \
			--json '$work/create-$p.json' && [ \"\$(jq -r .acked '$work/create-$p.json')\" = 50 ]"
done
echo "# conferences: $(took)"
check "installed confdrctl conf list: 50 on p1" bash -c \
	"[ \"\$(CONFDR_ZK_USER=deploy CONFDR_ZK_PASSWORD_FILE=$CONFDR_SECRETS/zk-deploy.password /usr/bin/confdrctl conf list --platform p1 --json | jq length)\" = 50 ]"
# An upgrade while the daemons run: the same package as version
# <version>+up1, its css.conf changed too (a line added), over an admin's
# edit of /etc/confdr/css.conf: with --force-confold the edit stays and the
# package's new copy is left beside it as css.conf.dpkg-dist.
step "upgrade while the daemons run, over an edited conffile the package changed too"
old_version=$(dpkg-query -W -f='${Version}' confdr)
echo "# edited by tests/deb-fresh.sh" >>/etc/confdr/css.conf
dpkg-deb -R "$deb" "$work/up"
sed -i 's/^Version: .*/&+up1/' "$work/up/DEBIAN/control"
echo "# added by the next version (tests/deb-fresh.sh)" >>"$work/up/etc/confdr/css.conf"
(cd "$work/up" && find etc usr -type f -exec md5sum {} + >DEBIAN/md5sums)
if dpkg-deb -b --root-owner-group "$work/up" "$work/confdr-up1.deb" >/dev/null; then
	timed "apt-get install of confdr $old_version+up1 over $old_version (--force-confold)" bash -c \
		"apt-get install -y -q -o Dpkg::Options::=--force-confold '$work/confdr-up1.deb' >'$work/apt-up.log' 2>&1"
else
	bad "dpkg-deb -b of the +up1 package"
fi
check "confdr is $old_version+up1 now" test "$(dpkg-query -W -f='${Version}' confdr)" = "$old_version+up1"
check "the admin's edit of /etc/confdr/css.conf is kept" grep -q 'edited by tests/deb-fresh.sh' /etc/confdr/css.conf
check "the package's new css.conf is beside it as css.conf.dpkg-dist" \
	grep -q 'added by the next version' /etc/confdr/css.conf.dpkg-dist
timed "the daemons still up after the upgrade (status --wait 30 --expect $all)" ctl status --wait 30 --expect $all
replaced=$(for f in "$CONFDR_RUN_DIR"/pids/p[12]-*.pid; do
	c=$(pgrep -P "$(cat "$f")" | head -n 1)
	[ -n "$c" ] && readlink "/proc/$c/exe"
done | grep -c deleted)
echo "# daemons running a replaced binary (restart them one instance at a time to run the new one): $replaced of $all"

step "sandbox down"
timed "sandbox.sh down" ./deploy/sandbox.sh down

step "purge"
timed "apt-get purge confdr confdr-sims" bash -c "apt-get purge -y -q confdr confdr-sims >/dev/null 2>&1"
check "purged: no /usr/sbin/confdr-css, no /etc/confdr, no /var/lib/confdr; the user confdr stays" bash -c \
	'[ ! -e /usr/sbin/confdr-css ] && [ ! -e /etc/confdr ] && [ ! -e /var/lib/confdr ] && getent passwd confdr >/dev/null'
echo "# $(took)"
finish
