#!/usr/bin/env bash
# The Debian packages (docs/packaging.md): builds them with CPack and checks
# them without installing: each package's control fields, conffiles and
# maintainer scripts, the files it holds (and no password file), the example
# configs accepted by the packaged daemons, every man page rendered without a
# warning and naming every option its program's --help names; lintian's
# report when lintian is installed (shown, not judged). One line per check,
# "ok ..." or "not ok ..."; exit 1 if any is not ok.
#
#   tests/package.sh                   configure and build a scratch build dir
#                                      (-DCMAKE_INSTALL_PREFIX=/usr), then package
#   tests/package.sh --build-dir DIR   package an existing build dir (tests/run.sh: build/)
#   --out DIR                          where the .deb files go (default: a temp dir,
#                                      removed at the end unless --keep)
#   --keep                             keep the temp dirs (their paths are printed)
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build= out= keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--build-dir) build=$(realpath -m "${2:?--build-dir DIR}"); shift 2 ;;
	--out) out=$(realpath -m "${2:?--out DIR}"); shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "package.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
	esac
done

tmp=$(mktemp -d /tmp/confdr-package.XXXXXX)
# shellcheck disable=SC2317 # called by the trap
cleanup() { if [ $keep = 1 ]; then echo "package.sh: kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT
[ -n "$out" ] || out=$tmp/out
mkdir -p "$out"

n=0 nok=0 nbad=0
ok() { n=$((n + 1)) nok=$((nok + 1)); echo "ok $n $*"; }
bad() { n=$((n + 1)) nbad=$((nbad + 1)); echo "not ok $n $*"; }
# check WHAT COMMAND...: ok when COMMAND succeeds; its output shown when it fails.
check() {
	local what=$1 o
	shift
	if o=$("$@" 2>&1); then ok "$what"; else bad "$what"; [ -z "$o" ] || sed 's/^/    /' <<<"$o"; fi
}

PROGRAMS=(confdr-css confdr-rms confdr-pms confdr-supervise confdrctl mcusim cmsim confdr-conform)
t0=$SECONDS
if [ -z "$build" ]; then
	build=$tmp/build
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr >"$tmp/cmake.log" 2>&1 ||
		{ tail -n 20 "$tmp/cmake.log"; bad "cmake configures a build dir"; exit 1; }
fi
if ! nice cmake --build "$build" -j"$(nproc)" --target "${PROGRAMS[@]}" man >"$tmp/build.log" 2>&1; then
	tail -n 30 "$tmp/build.log"
	bad "the packaged programs build in $build"
	exit 1
fi
ok "the packaged programs built in $build ($((SECONDS - t0)) s)"
t0=$SECONDS
if ! (cd "$build" && cpack -G DEB -B "$out") >"$tmp/cpack.log" 2>&1; then
	cat "$tmp/cpack.log"
	bad "cpack -G DEB"
	exit 1
fi
deb=$(ls "$out"/confdr_*.deb 2>/dev/null | head -n 1)
sims=$(ls "$out"/confdr-sims_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ] || [ -z "$sims" ]; then
	bad "cpack makes confdr_*.deb and confdr-sims_*.deb (in $out: $(ls "$out" | tr '\n' ' '))"
	exit 1
fi
ok "cpack -G DEB: $(basename "$deb") ($(du -k "$deb" | cut -f1) kB), $(basename "$sims") ($(du -k "$sims" | cut -f1) kB) in $((SECONDS - t0)) s"

# ---- control: fields, dependencies, conffiles, maintainer scripts
field() { dpkg-deb -f "$1" "$2"; }
check "confdr: Package confdr, Version $(field "$deb" Version)" test "$(field "$deb" Package)" = confdr
deps=$(field "$deb" Depends)
for p in adduser libc6 librabbitmq4 libhiredis0.14 libzookeeper-mt2 libmariadb3 libjansson4 libevent-core-2.1-7 \
	libevent-pthreads-2.1-7; do
	check "confdr depends on $p" grep -qE "(^|, )$p( |,|$)" <<<"$deps"
done
check "confdr-sims: Package confdr-sims" test "$(field "$sims" Package)" = confdr-sims
dpkg-deb -e "$deb" "$tmp/control"
check "conffiles: /etc/confdr/css.conf, rms.conf, pms.conf" \
	diff <(sort "$tmp/control/conffiles") <(printf '/etc/confdr/%s.conf\n' css pms rms)
for s in postinst postrm; do
	check "$s: executable, sh -n" sh -n "$tmp/control/$s"
	[ -x "$tmp/control/$s" ] || bad "$s is not executable"
done
check "postinst makes the system user confdr and /var/lib/confdr" \
	grep -q 'adduser --system.*confdr' "$tmp/control/postinst"

# ---- content
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/files"
dpkg-deb -c "$sims" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/files-sims"
want=(/usr/sbin/confdr-css /usr/sbin/confdr-rms /usr/sbin/confdr-pms /usr/sbin/confdr-supervise /usr/bin/confdrctl
	/etc/confdr/css.conf /etc/confdr/rms.conf /etc/confdr/pms.conf
	/usr/share/confdr/sql/001_init.sql /usr/share/doc/confdr/README.md /usr/share/doc/confdr/docs/operations.md
	/usr/share/doc/confdr/examples/monitoring/prometheus.yml /usr/share/doc/confdr/examples/monitoring/alerts.yml)
for m in "$top"/man/*.8; do want+=("/usr/share/man/man8/$(basename "$m").gz"); done
missing=()
for f in "${want[@]}"; do grep -qxF "$f" "$tmp/files" || missing+=("$f"); done
check "confdr holds the daemons, confdrctl, configs, schema, docs and ${#want[@]} files in all" test ${#missing[@]} = 0
[ ${#missing[@]} = 0 ] || printf '    missing %s\n' "${missing[@]}"
for f in "$top"/deploy/sql/*.sql; do
	grep -qxF "/usr/share/confdr/sql/$(basename "$f")" "$tmp/files" || bad "schema $(basename "$f") not in the package"
done
check "confdr-sims holds mcusim, cmsim, confdr-conform" \
	diff <(grep -E '^/usr/bin/.' "$tmp/files-sims" | sort) <(printf '/usr/bin/%s\n' cmsim confdr-conform mcusim)
check "the simulators are not in confdr" bash -c "! grep -E '/(mcusim|cmsim|confdr-conform)$' '$tmp/files'"
check "/etc/confdr holds the three configs only (no password file)" \
	diff <(grep -E '^/etc/confdr/.' "$tmp/files" | sort) <(printf '/etc/confdr/%s.conf\n' css pms rms)
dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -x "$sims" "$tmp/root"
check "no password set in the shipped configs" bash -c "! grep -nE '^[[:space:]]*(password|migrations_password)[[:space:]]*=' '$tmp'/root/etc/confdr/*.conf"
for d in css rms pms; do
	check "packaged confdr-$d accepts the packaged /etc/confdr/$d.conf (-t)" \
		"$tmp/root/usr/sbin/confdr-$d" -t -c "$tmp/root/etc/confdr/$d.conf"
done
for p in "${PROGRAMS[@]}"; do
	f=$(ls "$tmp"/root/usr/{s,}bin/"$p" 2>/dev/null | head -n 1)
	check "packaged $p runs (--help) and is stripped" bash -c "'$f' --help >/dev/null && ! file '$f' | grep -q 'not stripped'"
done

# ---- man pages: rendered without a warning, naming every option of --help
for m in "$top"/man/*.8; do
	name=$(basename "$m" .8)
	check "man $name: groff -ww -man renders it without a warning" \
		bash -c "[ -z \"\$(groff -ww -man -z '$m' 2>&1)\" ] || { groff -ww -man -z '$m'; exit 1; }"
	if command -v man >/dev/null; then
		check "man $name: man --warnings -l renders the packaged page without a warning" \
			bash -c "[ -z \"\$(MANWIDTH=80 man --warnings -l '$tmp/root/usr/share/man/man8/$name.8.gz' 2>&1 >/dev/null)\" ]"
	fi
	bin=$(ls "$tmp"/root/usr/{s,}bin/"$name" 2>/dev/null | head -n 1)
	opts=$("$bin" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u)
	[ "$name" = confdrctl ] && opts=$(printf '%s\n' "$opts" | grep -vE -- '^--(sims|pids|prefix|home|out|before|now|settle|hold|every|dest|redis|retry|mysql|mysql-socket|mysql-user|mysql-password)$')
	undocumented=()
	text=$(sed 's/\\-/-/g' "$m") # roff's \- is a -
	for o in $opts; do grep -qE -- "$o([^a-z-]|$)" <<<"$text" || undocumented+=("$o"); done
	check "man $name names every option of '$name --help' ($(echo $opts | wc -w))" test ${#undocumented[@]} = 0
	[ ${#undocumented[@]} = 0 ] || echo "    not in man/$name.8: ${undocumented[*]}"
done
for p in confdr-css confdr-rms confdr-pms confdrctl confdr-supervise; do
	[ -s "$top/man/$p.8" ] || bad "man/$p.8 is missing"
done

# ---- lintian, when installed: its report, not judged (docs/packaging.md)
if command -v lintian >/dev/null; then
	echo "# lintian (shown, not judged):"
	lintian --tag-display-limit 0 "$deb" "$sims" 2>&1 | sed 's/^/#   /'
fi

echo "package.sh: $nok ok, $nbad not ok; packages in $out"
[ $keep = 1 ] || [ "$out" != "$tmp/out" ] || echo "package.sh: (the temp dir goes; --out DIR or --keep keeps them)"
[ $nbad = 0 ]
