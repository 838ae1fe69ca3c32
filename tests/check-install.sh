#!/usr/bin/env bash
# deploy/install.sh into a scratch prefix (no servers): every file where
# --help says, with its mode; secrets 0600 whatever their mode was; an
# instance's config left alone by a second run; the installed unit templates
# checked with systemd-analyze verify (their ExecStart pointed at the
# prefix's binaries); bad usage of install.sh and deploy/confdr.sh refused
# with 64; confdr.sh --manager systemd against stand-ins of systemctl and
# confdrctl (start, status, the rolling restart's order). TAP output.
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
# valid: confdrctl gets as far as connecting (69, nobody listens), not 65 (invalid)
reg_example() {
	jq .topology "$root/usr/share/confdr/examples/platforms.json" >"$work/t.json" &&
		jq .endpoints "$root/usr/share/confdr/examples/platforms.json" >"$work/e.json" &&
		status_is 69 timeout 30 "$root/usr/bin/confdrctl" --zk 127.0.0.1:1 --timeout 1 topology load "$work/t.json" --endpoints "$work/e.json"
}
check "usr/share/confdr/examples/platforms.json: a valid topology and endpoints (confdrctl topology load)" reg_example

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

# confdr.sh --manager systemd against a stand-in systemctl and confdrctl (no
# systemd runs here): units named from $CONFDR_ETC's files, the rolling
# restart's order of stops and starts. The stand-ins keep each unit's state
# in a file; the first instance started, or the first left running when the
# active one stops, is active with a new epoch, as the election would do.
fake=$work/fake
mkdir -p "$fake/bin" "$fake/etc" "$fake/state"
for i in 1 2; do
	printf '[daemon]\nplatform = p1\ninstance = p1-css-%s\n' $i >"$fake/etc/css-p1-$i.conf"
done
cat >"$fake/bin/systemctl" <<'SH'
#!/usr/bin/env bash
# systemctl start|stop|show -p MainPID --value UNIT, for check-install.sh
st=$FAKE_STATE
echo "$*" >>"$st/calls"
promote() { # the first running instance without a leader becomes active
	grep -l active "$st"/*.unit >/dev/null 2>&1 && return
	local f
	for f in "$st"/*.unit; do [ -e "$f" ] || return; e=$(($(cat "$st/epoch" 2>/dev/null || echo 0) + 1)); echo $e >"$st/epoch"; echo "active $e $(cut -d' ' -f3 "$f")" >"$f"; return; done
}
case $1 in
start) [ -e "$st/$2.unit" ] || { p=$(($(cat "$st/pid" 2>/dev/null || echo 100) + 1)); echo $p >"$st/pid"; echo "standby 0 $p" >"$st/$2.unit"; promote; } ;;
stop) rm -f "$st/$2.unit"; promote ;;
show) f=$st/${!#}.unit; if [ -e "$f" ]; then cut -d' ' -f3 "$f"; else echo 0; fi ;;
esac
SH
cat >"$fake/bin/confdrctl" <<'SH'
#!/usr/bin/env bash
# confdrctl status --json, from the stand-in systemctl's state
[ "$*" = "status --json" ] || exit 64
for f in "$FAKE_STATE"/*.unit; do
	[ -e "$f" ] || continue
	u=${f##*/} u=${u%.service.unit} i=${u#*@}
	read -r role epoch pid <"$f"
	printf '{"daemon":"css","platform":"p1","instance":"p1-css-%s","role":"%s","epoch":%s,"pid":%s,"ready":true}\n' "${i#p1-}" "$role" "$epoch" "$pid"
done | jq -s '{daemons: .}'
SH
chmod +x "$fake/bin/systemctl" "$fake/bin/confdrctl"
fconfdr() {
	PATH=$fake/bin:$PATH FAKE_STATE=$fake/state CONFDR_ETC=$fake/etc CONFDR_CTL=$fake/bin/confdrctl \
		"$top/deploy/confdr.sh" --manager systemd --timeout 5 "$@"
}
check "confdr.sh --manager systemd start css: both units started" \
	eval 'fconfdr start css >/dev/null && [ "$(grep -v "^show" "$fake/state/calls")" = "$(printf "start confdr-css@p1-1.service\nstart confdr-css@p1-2.service")" ]'
fstatus=$(fconfdr status css)
check "confdr.sh status: confdr-css@p1-1 active, @p1-2 standby" \
	eval 'grep -q "^css@p1-1 .* active .*confdr-css@p1-1.service" <<<"$fstatus" && grep -q "^css@p1-2 .* standby " <<<"$fstatus"'
: >"$fake/state/calls"
fconfdr rolling-restart css >"$work/rolling.out" 2>&1
rc=$?
check "confdr.sh --manager systemd rolling-restart css: exit 0" [ $rc = 0 ]
check "... the standby stopped and started first, then the active one" \
	eval '[ "$(cat "$fake/state/calls" | grep -v "^show")" = "$(printf "stop confdr-css@p1-2.service\nstart confdr-css@p1-2.service\nstop confdr-css@p1-1.service\nstart confdr-css@p1-1.service")" ]'
check "... and says the new active one: p1-css-2" grep -q "done in .*; active now p1-css-2" "$work/rolling.out"
[ $rc = 0 ] || sed 's/^/# /' "$work/rolling.out"
rm -f "$fake/state/"*.unit
check "rolling-restart with no active instance: refused, exit 1" eval '! fconfdr rolling-restart css >/dev/null 2>&1'

echo "1..$n"
[ $failed = 0 ]
