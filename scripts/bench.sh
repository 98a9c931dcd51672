#!/usr/bin/env bash
# Runs `spool bench` (release build) against a private redis-server (`make bench`).
#
# 1. Finds the spool binary: $SPOOL_BIN when set, else the release build
#    (`make bench` builds it).
# 2. When SPOOL_REDIS_URL is set, benchmarks that Redis. Otherwise starts
#    redis-server on a free 127.0.0.1 port, without persistence (the numbers
#    measure Spool and Redis, not the disk), files in a temporary dir.
# 3. Runs `spool bench`; extra arguments are passed on
#    (`make bench BENCH_ARGS="--scenario drain-1 --runs 5"`). Messages from
#    this script go to stderr, so `--json` output stays clean.
# 4. Stops that redis-server by its pid, whatever happened, and exits with
#    the bench's status.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/redis-local.sh

bin=${SPOOL_BIN:-$(swift build -c release --show-bin-path)/spool}
if [[ ! -x $bin ]]; then
  echo "bench: $bin is missing; run make bench (it builds it) or set SPOOL_BIN" >&2
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

if [[ -n ${SPOOL_REDIS_URL:-} ]]; then
  # The URL may carry a password: never print it.
  echo "bench: using the Redis of SPOOL_REDIS_URL" >&2
else
  # No persistence (the numbers are Spool's and Redis's, not the disk's); job
  # records in the listpack encoding up to 1 KiB values, as config/redis.conf
  # sets it (Redis's default, 64 bytes, makes a record with a 100-byte payload
  # a hash table: about 2.3 times the memory).
  start_redis "$dir" auto --dir "$dir" --save '' --appendonly no --hash-max-listpack-value 1024
  echo "bench: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), pid $REDIS_PID on 127.0.0.1:$REDIS_PORT" >&2
  export SPOOL_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  unset SPOOL_CONFIG SPOOL_PREFIX
fi

started=$SECONDS
status=0
"$bin" bench "$@" || status=$?
echo "bench: finished in $((SECONDS - started)) s (exit status $status)" >&2
exit "$status"
