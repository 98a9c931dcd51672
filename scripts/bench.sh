#!/usr/bin/env bash
# Runs `spool bench` (release build) against a private redis-server (`make bench`).
#
# 1. Starts redis-server on a free 127.0.0.1 port, without persistence (the
#    numbers measure Spool and Redis, not the disk), files in a temporary dir.
# 2. Runs `spool bench` with SPOOL_REDIS_URL pointing at it; extra arguments
#    are passed on (`make bench BENCH_ARGS="--help"`).
# 3. Stops that redis-server by its pid, whatever happened, and exits with
#    the bench's status.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/redis-local.sh

bin=$(swift build -c release --show-bin-path)/spool
if [[ ! -x $bin ]]; then
  echo "bench: $bin is missing; run make bench (it builds it)" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/spool-bench.XXXXXX")
cleanup() {
  stop_redis "$dir/redis.pid" quiet
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_redis "$dir" auto --dir "$dir" --save '' --appendonly no
echo "bench: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), pid $REDIS_PID on 127.0.0.1:$REDIS_PORT"

export SPOOL_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
unset SPOOL_CONFIG SPOOL_PREFIX
"$bin" bench "$@"
