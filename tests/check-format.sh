#!/usr/bin/env bash
# Every C file follows .clang-format (clang-format 14, Debian 12).
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
command -v clang-format >/dev/null || { echo "clang-format is not installed (deploy/install-deps.sh installs it)"; exit 1; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find include src tests -name '*.[ch]')
bad=$(clang-format --dry-run $files 2>&1 | grep -o '^[^:]*:[0-9]*' | sort -u)
if [ -n "$bad" ]; then
	echo "not formatted as .clang-format says (run: clang-format -i FILE):"
	echo "$bad" | head -40
	exit 1
fi
echo "format: $(echo $files | wc -w) files ok"
