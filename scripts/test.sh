#!/usr/bin/env bash
# Runs `swift test` against a private redis-server (`make test`).
#
# 1. Starts redis-server on a free 127.0.0.1 port, with no persistence, its
#    files in a fresh temporary directory.
# 2. Exports SPOOL_TEST_REDIS_URL for the tests and clears the SPOOL_*
#    variables that would point them somewhere else.
# 3. Runs `swift test` (Swift Testing runs tests in parallel by itself); extra
#    arguments are passed on, e.g. `scripts/test.sh --filter ClaimTests`.
# 4. Stops that redis-server by its pid and removes the directory, whether the
#    tests passed, failed or were interrupted; exits with swift test's status.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/redis-local.sh

dir=$(mktemp -d "${TMPDIR:-/tmp}/spool-test.XXXXXX")
cleanup() {
  stop_redis "$dir/redis.pid" quiet
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_redis "$dir" auto --dir "$dir" --save '' --appendonly no
echo "test: redis-server pid $REDIS_PID on 127.0.0.1:$REDIS_PORT"

export SPOOL_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
unset SPOOL_TEST_BINARY_DIR SPOOL_REDIS_URL SPOOL_CONFIG SPOOL_PREFIX SPOOL_PAYLOAD_LIMIT

# The process tests run the spool executable: build every product first.
echo "test: swift build"
swift build
echo "test: swift test $*"
swift test "$@"
