#!/usr/bin/env bash
# deploy/install.sh into a scratch prefix (no servers): every file where
# --help says, with its mode; secrets 0600 whatever their mode was; an
# instance's config left alone by a second run; the installed unit templates
# checked with systemd-analyze verify (their ExecStart pointed at the
# prefix's binaries); bad usage of install.sh and deploy/confdr.sh refused
# with 64. TAP output.
set -uo pipefail
build=${1:?usage: check-install.sh BUILD_DIR}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
inst=$top/deploy/install.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0 failed=0
check() { # WHAT COMMAND...
	local what=$1
	shift
	n=$((n + 1))
	if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failed=$((failed + 1)); fi
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
quiet() { "$@" >/dev/null 2>&1; }
status_is() { # CODE COMMAND...: COMMAND exits with CODE
	local want=$1
	shift
	"$@" >/dev/null 2>&1
	[ $? = "$want" ]
}
mode_is() { [ "$(stat -c %a "$2" 2>/dev/null)" = "$1" ]; }

root=$work/root
mkdir -p "$work/secrets"
printf 'not-a-real-password\n' >"$work/secrets/amqp-css.password"
printf 'another\n' >"$work/secrets/mysql-css.password"
chmod 0644 "$work/secrets/amqp-css.password" # install makes it 0600 anyway

check "install.sh --help exits 0 and names --prefix and register" \
	eval '"$inst" --help | grep -q -- "--prefix DIR" && "$inst" --help | grep -q "register FILE.json"'
check "install.sh --bogus: exit 64" status_is 64 "$inst" --bogus
check "install.sh register without a file: exit 64" status_is 64 "$inst" register --prefix "$work/x"
check "install.sh with a build dir without binaries: exit 1" status_is 1 "$inst" --prefix "$work/x" --build "$work"
check "install.sh --prefix (scratch) --secrets: exit 0" quiet "$inst" --prefix "$root" --build "$build" --secrets "$work/secrets"

for d in css rms pms; do
	check "usr/sbin/confdr-$d 0755, runs (--version)" eval 'mode_is 755 "$root/usr/sbin/confdr-$d" && "$root/usr/sbin/confdr-$d" --version | grep -q "^confdr-$d "'
	check "etc/systemd/system/confdr-$d@.service 0644" mode_is 644 "$root/etc/systemd/system/confdr-$d@.service"
	check "etc/confdr/$d.conf.example 0640, accepted by confdr-$d -t" \
		eval 'mode_is 640 "$root/etc/confdr/$d.conf.example" && quiet "$root/usr/sbin/confdr-$d" -t -c "$root/etc/confdr/$d.conf.example"'
done
check "usr/bin/confdrctl 0755" mode_is 755 "$root/usr/bin/confdrctl"
check "etc/confdr 0750" mode_is 750 "$root/etc/confdr"
check "etc/confdr/secrets 0700" mode_is 700 "$root/etc/confdr/secrets"
check "secrets 0600 (one was 0644)" eval 'mode_is 600 "$root/etc/confdr/secrets/amqp-css.password" && mode_is 600 "$root/etc/confdr/secrets/mysql-css.password"'
check "secret copied as it was" cmp -s "$work/secrets/amqp-css.password" "$root/etc/confdr/secrets/amqp-css.password"
check "schema: every deploy/sql/*.sql in usr/share/confdr/sql, 0644" \
	eval 'for f in "$top"/deploy/sql/*.sql; do cmp -s "$f" "$root/usr/share/confdr/sql/${f##*/}" && mode_is 644 "$root/usr/share/confdr/sql/${f##*/}" || exit 1; done'
check "docs: usr/share/doc/confdr/operations.md (the units' Documentation=)" test -s "$root/usr/share/doc/confdr/operations.md"

# A second run replaces what it installs and leaves an instance's config alone.
printf '# mine\n' >"$root/etc/confdr/css-p1-1.conf"
check "a second install.sh run: exit 0" quiet "$inst" --prefix "$root" --build "$build"
check "the instance's config css-p1-1.conf is left as it was" grep -qx '# mine' "$root/etc/confdr/css-p1-1.conf"
check "nothing is installed outside the prefix's usr/ and etc/" \
	eval '[ "$(cd "$root" && ls -A | tr "\n" " ")" = "etc usr " ]'

# The unit templates, as installed: each names its binary and the instance's config.
for d in css rms pms; do
	u=$root/etc/systemd/system/confdr-$d@.service
	check "confdr-$d@.service: ExecStart=/usr/sbin/confdr-$d -c /etc/confdr/$d-%i.conf" grep -qx "ExecStart=/usr/sbin/confdr-$d -c /etc/confdr/$d-%i.conf" "$u"
	check "confdr-$d@.service: Type=notify, WatchdogSec, Restart=on-failure, RestartPreventExitStatus=78, User=confdr" \
		eval 'for k in Type=notify WatchdogSec=20s Restart=on-failure RestartPreventExitStatus=78 User=confdr ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes ProtectHome=yes; do grep -qx "$k" "$u" || exit 1; done'
done
if command -v systemd-analyze >/dev/null; then
	# verify checks that ExecStart's binary exists: the copies point at the prefix's.
	mkdir -p "$work/units"
	for d in css rms pms; do
		sed "s|/usr/sbin/|$root/usr/sbin/|" "$root/etc/systemd/system/confdr-$d@.service" >"$work/units/confdr-$d@.service"
		check "systemd-analyze verify confdr-$d@p1-1.service (installed template): no complaint" \
			eval '[ -z "$(cd "$work/units" && systemd-analyze verify "./confdr-$d@p1-1.service" 2>&1)" ]'
	done
else
	skip "systemd-analyze verify of the units" "systemd-analyze is not installed (deploy/install-deps.sh installs it)"
fi

check "confdr.sh without a command: exit 64" status_is 64 "$top/deploy/confdr.sh" --manager sandbox
check "confdr.sh --manager bogus status: exit 64" status_is 64 "$top/deploy/confdr.sh" --manager bogus status
check "confdr.sh --help exits 0 and names rolling-restart" eval '"$top/deploy/confdr.sh" --help | grep -q rolling-restart'

echo "1..$n"
[ $failed = 0 ]
