#!/usr/bin/env bash
# Installs confdr on a platform's machine, or registers a platform's topology
# and endpoints in ZooKeeper.
#
#   deploy/install.sh [--prefix DIR] [--build DIR] [--secrets DIR] [--no-user]
#   deploy/install.sh register FILE.json [--prefix DIR] [--build DIR]
#
# install (the default) puts, under PREFIX (default /; a scratch root for a
# test or a package):
#   usr/sbin/confdr-css, confdr-rms, confdr-pms   the daemons (0755), from the build dir
#   usr/bin/confdrctl                             the operators' tool (0755)
#   etc/systemd/system/confdr-{css,rms,pms}@.service   the unit templates (0644, deploy/systemd/)
#   usr/share/confdr/sql/NNN_*.sql                the schema's migrations (0644): css's
#                                                 [mysql] migrations = /usr/share/confdr/sql
#   etc/confdr/                                   0750, group confdr
#   etc/confdr/{css,rms,pms}.conf.example         the commented example configs (0640);
#                                                 an instance's file is D-INSTANCE.conf
#                                                 (confdr-css@p1-1: css-p1-1.conf), never overwritten
#   etc/confdr/secrets/                           0700, owner confdr; --secrets DIR copies each
#                                                 DIR/*.password there, mode 0600, owner confdr
#   usr/share/confdr/examples/platforms.json      an example for register (deploy/platforms.example.json)
#   usr/share/doc/confdr/                         operations.md, configuration.md, the units' README
# Files already there are replaced, except the configs and secrets it does not
# install. As root with PREFIX /, it also makes the system user and group
# confdr (no shell, no home; --no-user: not) and runs systemctl daemon-reload
# when systemd runs. Under another PREFIX no user is made; files are
# owned by confdr only when that user exists and the script runs as root.
#
# register FILE.json: FILE.json is {"topology": {...}, "endpoints": {...}}
# (deploy/platforms.example.json):
# the service domain's topology (every platform, room and user domain:
# docs/zookeeper.md; what is not in it is removed from ZooKeeper) and the
# endpoints of each platform's main room (and "replicas"), as conf/
# sandbox-topology.json and the sandbox's run/endpoints.json. It is loaded with
# `confdrctl topology load` (validated first; nothing is written if invalid)
# against $CONFDR_ZK, $CONFDR_ZK_CHROOT (default /dr), as $CONFDR_ZK_USER
# with $CONFDR_ZK_PASSWORD_FILE, the daemons' ids from $CONFDR_ZK_IDS
# (confdrctl --help). confdrctl: PREFIX/usr/bin's, else the build dir's,
# else the one on PATH.
#
# --build DIR: where the binaries are (default $CONFDR_BUILD_DIR, else
# <repo>/build). Exit 0 done, 1 failed, 64 bad usage.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=install.sh
say() { printf '%s: %s\n' "$prog" "$*"; }
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$prog" "$*" >&2; exit 64; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

cmd=install prefix=/ build=${CONFDR_BUILD_DIR:-$top/build} secrets= make_user=1 file=
if [ "${1:-}" = register ] || [ "${1:-}" = install ]; then
	cmd=$1
	shift
fi
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) prefix=${2:?--prefix wants a directory}; shift ;;
	--build) build=${2:?--build wants a directory}; shift ;;
	--secrets) secrets=${2:?--secrets wants a directory}; shift ;;
	--no-user) make_user=0 ;;
	-h | --help) usage; exit 0 ;;
	-*) usage_error "unknown option $1" ;;
	*)
		if [ "$cmd" != register ] || [ -n "$file" ]; then usage_error "unexpected argument $1"; fi
		file=$1 ;;
	esac
	shift
done
prefix=$(realpath -m "$prefix")
root=${prefix%/} # "" for /: paths below read root/usr/...
[ "$cmd" = register ] || [ -z "$file" ] || usage_error "unexpected argument $file"

# ---------------------------------------------------------------- register

if [ "$cmd" = register ]; then
	[ -n "$file" ] || usage_error "register wants FILE.json"
	[ -r "$file" ] || die "$file: cannot read it"
	command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
	jq -e '(.topology | type) == "object"' "$file" >/dev/null 2>&1 ||
		die "$file: not a JSON object with a \"topology\" object (and \"endpoints\")"
	ctl=
	for c in "$root/usr/bin/confdrctl" "$build/confdrctl" "$(command -v confdrctl || true)"; do
		[ -n "$c" ] && [ -x "$c" ] && { ctl=$c; break; }
	done
	[ -n "$ctl" ] || die "confdrctl not found (in $root/usr/bin, $build or PATH)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	jq '.topology' "$file" >"$tmp/topology.json"
	args=("$tmp/topology.json")
	if jq -e 'has("endpoints")' "$file" >/dev/null; then
		jq '.endpoints' "$file" >"$tmp/endpoints.json"
		args+=(--endpoints "$tmp/endpoints.json")
	fi
	say "registering $file in ZooKeeper ${CONFDR_ZK:-127.0.0.1:17181}${CONFDR_ZK_CHROOT:-/dr} with $ctl"
	"$ctl" topology load "${args[@]}" || die "confdrctl topology load failed"
	exit 0
fi

# ---------------------------------------------------------------- install

daemons=(css rms pms)
for d in "${daemons[@]}"; do
	[ -x "$build/confdr-$d" ] || die "$build/confdr-$d is missing: build first (cmake -S $top -B $build && cmake --build $build), or give --build DIR"
done
[ -x "$build/confdrctl" ] || die "$build/confdrctl is missing: build first, or give --build DIR"

is_root=0
[ "$(id -u)" = 0 ] && is_root=1
if [ -z "$root" ] && [ $make_user = 1 ]; then
	[ $is_root = 1 ] || die "installing to / needs root (or give --prefix DIR)"
	if ! getent passwd confdr >/dev/null; then
		getent group confdr >/dev/null || groupadd --system confdr
		useradd --system --gid confdr --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
			--comment "confdr daemons" confdr
		say "system user and group confdr made"
	fi
fi
# Owner of the secrets and group of /etc/confdr: confdr when it exists and we may.
own=
[ $is_root = 1 ] && getent passwd confdr >/dev/null && own=confdr

# put MODE SRC DST: install one file, creating its directory.
put() { install -D -m "$1" "$2" "$3"; }

for d in "${daemons[@]}"; do put 0755 "$build/confdr-$d" "$root/usr/sbin/confdr-$d"; done
put 0755 "$build/confdrctl" "$root/usr/bin/confdrctl"
say "binaries: $root/usr/sbin/confdr-{css,rms,pms}, $root/usr/bin/confdrctl"

for d in "${daemons[@]}"; do
	put 0644 "$top/deploy/systemd/confdr-$d@.service" "$root/etc/systemd/system/confdr-$d@.service"
done
say "units: $root/etc/systemd/system/confdr-{css,rms,pms}@.service"

install -d -m 0755 "$root/usr/share/confdr/sql"
for f in "$top"/deploy/sql/*.sql; do put 0644 "$f" "$root/usr/share/confdr/sql/${f##*/}"; done
say "schema: $root/usr/share/confdr/sql ($(find "$top/deploy/sql" -name '*.sql' | wc -l) migrations)"

install -d -m 0750 "$root/etc/confdr"
install -d -m 0700 "$root/etc/confdr/secrets"
if [ -n "$own" ]; then chgrp confdr "$root/etc/confdr" && chown confdr:confdr "$root/etc/confdr/secrets"; fi
for d in "${daemons[@]}"; do
	put 0640 "$top/conf/$d.conf" "$root/etc/confdr/$d.conf.example"
	if [ -n "$own" ]; then chgrp confdr "$root/etc/confdr/$d.conf.example"; fi
done
say "configs: $root/etc/confdr/{css,rms,pms}.conf.example (an instance's file: D-INSTANCE.conf, e.g. css-p1-1.conf for confdr-css@p1-1)"

if [ -n "$secrets" ]; then
	n=0
	for f in "$secrets"/*.password; do
		[ -f "$f" ] || continue
		put 0600 "$f" "$root/etc/confdr/secrets/${f##*/}"
		if [ -n "$own" ]; then chown confdr:confdr "$root/etc/confdr/secrets/${f##*/}"; fi
		n=$((n + 1))
	done
	[ $n -gt 0 ] || die "--secrets $secrets: no *.password file in it"
	say "secrets: $n files in $root/etc/confdr/secrets (0600${own:+, owner confdr})"
fi

put 0644 "$top/deploy/platforms.example.json" "$root/usr/share/confdr/examples/platforms.json"
for f in docs/operations.md docs/configuration.md; do put 0644 "$top/$f" "$root/usr/share/doc/confdr/${f##*/}"; done
put 0644 "$top/deploy/systemd/README.md" "$root/usr/share/doc/confdr/systemd.md"
say "docs: $root/usr/share/doc/confdr; an example for register: $root/usr/share/confdr/examples/platforms.json"

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	say "systemctl daemon-reload done"
fi
say "installed under $prefix"
