#!/usr/bin/env bash
# Stops what `make run` started, by the pid files in .run/: first the status
# reader (SIGTERM; SIGKILL after 10 s), then the worker
# (SIGTERM lets it finish its running jobs; SIGKILL after 30 s), then the
# redis-server (SIGTERM: it flushes its AOF and exits). Nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/redis-local.sh
run=$PWD/.run

stop_worker() {
  local pidfile=$run/worker.pid pid
  if ! pid=$(live_pid "$pidfile"); then
    rm -f "$pidfile"
    echo "stop: no worker running"
    return 0
  fi
  # Never signal a recycled pid: it must still be the spool binary.
  if [[ -r /proc/$pid/comm ]] && [[ $(<"/proc/$pid/comm") != spool ]]; then
    echo "stop: pid $pid in $pidfile is not a spool worker any more; leaving it alone"
    rm -f "$pidfile"
    return 0
  fi
  echo "stop: worker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop: worker still running after 30 s; sending SIGKILL (its jobs are redelivered after their lease)"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop_serve() {
  local pidfile=$run/serve.pid pid
  if ! pid=$(live_pid "$pidfile"); then
    rm -f "$pidfile"
    return 0
  fi
  # Never signal a recycled pid: it must still be the spool binary.
  if [[ -r /proc/$pid/comm ]] && [[ $(<"/proc/$pid/comm") != spool ]]; then
    rm -f "$pidfile"
    return 0
  fi
  echo "stop: status reader (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
}

stop_serve
stop_worker
if pid=$(live_pid "$run/redis.pid"); then
  echo "stop: redis-server (pid $pid)"
  stop_redis "$run/redis.pid"
else
  rm -f "$run/redis.pid"
  echo "stop: no redis-server started by make run"
fi
rm -f "$run/redis.url"
