#!/usr/bin/env bash
# Builds bench/loadgen from bench/loadgen.c against Debian's libnats
# (apt-get install libnats-dev).  Rebuilds only when the source (or this
# script) is newer than the binary, so the runner can call it every time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/loadgen.c"
out="$here/loadgen"

if [[ -x "$out" && "$out" -nt "$src" && "$out" -nt "${BASH_SOURCE[0]}" ]]; then
    exit 0
fi

if [[ ! -f /usr/include/nats/nats.h ]]; then
    echo "build.sh: libnats headers not found; run: apt-get install libnats-dev" >&2
    exit 1
fi

# Build to a temporary name first so an interrupted build never leaves a
# half-written binary that looks up to date.
cc -O2 -Wall -Wextra -o "$out.tmp.$$" "$src" -lnats -lpthread
mv -f "$out.tmp.$$" "$out"
echo "build.sh: built $out" >&2
