#!/usr/bin/env bash
# Installs the Debian 12 packages confdr builds, tests and runs with, when one
# is missing; a fast no-op (one dpkg-query) when all are present.
#
#   deploy/install-deps.sh           install what is missing (needs root)
#   deploy/install-deps.sh --check   only report what is missing (exit 1 if any)
#   deploy/install-deps.sh --list    print the package list
#
# Needs only Debian's archive. Package scripts are kept from starting the
# system services (policy-rc.d answers 101 during the install): the sandbox
# (deploy/sandbox.sh) runs its own servers on its own ports, without systemd,
# and depends on none of the system ones.
set -euo pipefail

pkgs=(
	# build and tests
	build-essential cmake pkg-config valgrind
	librabbitmq-dev libhiredis-dev libzookeeper-mt-dev default-libmysqlclient-dev
	libjansson-dev libevent-dev libcmocka-dev
	# the man pages' check (tests/package.sh: groff -ww -man); dpkg-dev (dpkg-shlibdeps,
	# for the .deb's Depends) comes with build-essential
	groff-base
	# servers the sandbox runs. ZooKeeper: its jars and a headless Java runtime; Debian's
	# package "zookeeper" (the system service) depends on default-jre, a desktop JRE that
	# pulls in Mesa, GTK's libraries, X and fonts, and the sandbox does not use its scripts.
	rabbitmq-server redis-server redis-tools libzookeeper-java default-jre-headless
	mariadb-server mariadb-client
	# tools deploy/sandbox.sh and the test scripts use (nftables: the ZooKeeper-only cut of
	# a platform host, sandbox.sh fault zk-cut)
	netcat-openbsd procps iproute2 util-linux coreutils jq nftables
	# the metrics test scrapes /metrics, /healthz and /readyz (tests/integration/metrics.sh),
	# the console test checks its auth (tests/integration/console.sh)
	curl
	# the sandbox's CA and server certificates (deploy/servers.sh, TLS)
	openssl
	# systemd-analyze: tests/check-install.sh verifies the unit templates (deploy/systemd/)
	systemd
)

# ---- the web console's browser test (tests/integration/console.sh, docs/console.md) ----
# Debian's chromium, driven through Debian's chromedriver (chromium-driver) over WebDriver
# by a Node.js script that needs no npm package (tests/console/console.webdriver.mjs).
pkgs+=(chromium chromium-driver nodejs)

# ---- promtool, from Debian's prometheus package (its server is never started here:
# policy-rc.d below): tests/integration/metrics.sh checks each daemon's /metrics,
# deploy/monitoring/prometheus.yml and alerts.yml with it ----
pkgs+=(prometheus)
# ---- end of the console's block ----

case ${1:-} in
--list) printf '%s\n' "${pkgs[@]}"; exit 0 ;;
--check | "") ;;
-h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "install-deps: unknown option $1 (see --help)" >&2; exit 64 ;;
esac

# One dpkg-query for all: packages it does not know are reported on stderr and
# are missing as well.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${pkgs[@]}" 2>/dev/null | awk '$2 == "ii" {print $1}' || true)
missing=()
for p in "${pkgs[@]}"; do
	grep -qxF "$p" <<<"$installed" || missing+=("$p")
done
[ ${#missing[@]} = 0 ] && exit 0

if [ "${1:-}" = --check ]; then
	echo "install-deps: missing Debian packages: ${missing[*]}" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing Debian packages: ${missing[*]}; run deploy/install-deps.sh as root to install them" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package scripts must not start the system services: confdr runs its own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e $policy ]; then
	printf '#!/bin/sh\n# installed by confdr deploy/install-deps.sh for the duration of an install\nexit 101\n' >$policy
	chmod 755 $policy
	created_policy=1
fi
trap '[ $created_policy = 1 ] && rm -f $policy' EXIT
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
