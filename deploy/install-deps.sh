#!/usr/bin/env bash
# Installs the Debian 12 packages confdr builds, tests and runs with, if any is
# missing. Needs root (apt-get); a no-op when everything is present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
	librabbitmq-dev libhiredis-dev libzookeeper-mt-dev default-libmysqlclient-dev
	libjansson-dev libevent-dev libcmocka-dev
	rabbitmq-server redis-server redis-tools zookeeper mariadb-server mariadb-client
	netcat-openbsd procps jq valgrind clang-format)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} = 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing Debian packages: ${missing[*]}; run as root to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package scripts must not start the system services: confdr runs its own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e $policy ]; then
	printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && created_policy=1
fi
trap '[ $created_policy = 1 ] && rm -f $policy' EXIT
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
