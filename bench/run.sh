#!/usr/bin/env bash
# Runs every benchmark (bench/bench_*.c) against the sandbox's real servers:
# installs what is missing (deploy/install-deps.sh), builds, brings the sandbox
# up if it is not (and down again after), prints each benchmark's numbers and
# its ratio to the baseline it measures itself.
#
#   ./bench/run.sh            every benchmark
#   ./bench/run.sh NAME...    only these (e.g. bench_bulk_alloc)
# CONFDR_RUN_DIR and CONFDR_PORT_BASE choose the sandbox as for deploy/sandbox.sh.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
case ${1:-} in -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
./deploy/install-deps.sh || { echo "bench: dependencies missing (deploy/install-deps.sh)" >&2; exit 1; }
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j"$(nproc)" >/dev/null ||
	{ echo "bench: build failed" >&2; exit 1; }
started=0
if ! ./deploy/sandbox.sh status --json 2>/dev/null | jq -e '[.servers[] | select(.name != "epmd") | .state == "running"] | all' >/dev/null; then
	./deploy/sandbox.sh up || { echo "bench: the sandbox did not come up" >&2; exit 1; }
	started=1
fi
eval "$(./deploy/sandbox.sh env)"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(cd build && ls bench_* 2>/dev/null))
rc=0
for b in "${names[@]}"; do
	echo "== $b"
	"./build/$b" || rc=1
done
[ $started = 1 ] && ./deploy/sandbox.sh down >/dev/null
exit $rc
