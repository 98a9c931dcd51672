#!/usr/bin/env bash
# The `make run` demo (the Makefile has built the debug binary first).
#
# 1. Redis: $SPOOL_REDIS_URL when set; else the redis-server a previous
#    `make run` left running; else a new one from config/redis.conf,
#    daemonized, AOF data in .run/, on port 6379 (or a free port when
#    something else already holds 6379).
# 2. Worker: `spool worker --queue demo --concurrency 4 --exec
#    demo.resize=scripts/demo-job.sh`, (re)started in the background in its own
#    session, pid in .run/worker.pid, log in .run/worker.log.
#    Then the status reader, `spool serve` on 127.0.0.1:8080 (a free port when
#    8080 is taken), likewise, pid in .run/serve.pid, log in .run/serve.log.
# 3. Enqueues five demo.resize jobs and prints their states every 0.5 s while
#    they change, until all are finished.
# 4. Leaves Redis, the worker and the status reader running; `make stop` stops
#    them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/redis-local.sh

root=$PWD
run=$root/.run
spool=${SPOOL_BIN:-$root/.build/debug/spool}
[[ -x $spool ]] || { echo "run: $spool is missing; run make run (it builds it)" >&2; exit 1; }
mkdir -p "$run"

# 1. Redis. (A URL given by the user is never printed: it may hold a password.)
our_url=""
if [[ -n ${SPOOL_REDIS_URL:-} ]]; then
  echo "run: using Redis from SPOOL_REDIS_URL"
elif pid=$(live_pid "$run/redis.pid") && [[ -s $run/redis.url ]]; then
  our_url=$(<"$run/redis.url")
  export SPOOL_REDIS_URL=$our_url
  echo "run: redis-server already running (pid $pid, $SPOOL_REDIS_URL)"
else
  port=6379
  if port_in_use "$port"; then
    port=$(free_port)
    echo "run: port 6379 is taken by another server; starting ours on $port"
  fi
  start_redis "$run" "$port" "$root/config/redis.conf" --dir "$run"
  our_url="redis://127.0.0.1:$REDIS_PORT/0"
  export SPOOL_REDIS_URL=$our_url
  echo "$our_url" >"$run/redis.url"
  echo "run: redis-server started (pid $REDIS_PID, $SPOOL_REDIS_URL, data in .run/)"
fi

# 2. Worker: always restarted, so it runs the binary just built.
if pid=$(live_pid "$run/worker.pid"); then
  echo "run: restarting the worker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
fi
# setsid: a Ctrl-C in this terminal must not reach the worker.
detach=()
command -v setsid >/dev/null 2>&1 && detach=(setsid)
"${detach[@]}" "$spool" worker --queue demo --concurrency 4 \
  --exec "demo.resize=$root/scripts/demo-job.sh" >"$run/worker.log" 2>&1 </dev/null &
echo $! >"$run/worker.pid"
sleep 0.5
if ! live_pid "$run/worker.pid" >/dev/null; then
  echo "run: the worker exited at once; .run/worker.log says:" >&2
  tail -n 20 "$run/worker.log" >&2
  exit 1
fi
echo "run: worker started (pid $(<"$run/worker.pid"), log in .run/worker.log)"

# The status reader: always restarted too. It prints its address once listening.
if pid=$(live_pid "$run/serve.pid"); then
  echo "run: restarting the status reader (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
fi
serve_port=8080
if port_in_use "$serve_port"; then serve_port=0; fi
"${detach[@]}" "$spool" serve --port "$serve_port" >"$run/serve.log" 2>&1 </dev/null &
echo $! >"$run/serve.pid"
serve_url=""
for _ in $(seq 1 100); do
  serve_url=$(sed -n 's/^spool serve: listening on //p' "$run/serve.log" | head -n 1)
  [[ -n $serve_url ]] && break
  live_pid "$run/serve.pid" >/dev/null || break
  sleep 0.1
done
if [[ -n $serve_url ]]; then
  echo "run: status reader started (pid $(<"$run/serve.pid"), log in .run/serve.log): dashboard at $serve_url/"
else
  echo "run: the status reader did not start; .run/serve.log says:" >&2
  tail -n 20 "$run/serve.log" >&2
fi

# 3. A demo batch.
ids=()
for n in 1 2 3 4 5; do
  ids+=("$("$spool" enqueue demo demo.resize --payload "{\"image\":\"cat-$n.png\"}")")
done
echo "run: enqueued ${#ids[@]} demo.resize jobs on queue demo: ${ids[*]}"
echo "run: spool watch ${ids[0]}  (live progress over Redis pub/sub)"
"$spool" watch "${ids[0]}" || true
echo

state_of() {
  "$spool" status "$1" --json 2>/dev/null | sed -n 's/^ *"state" *: *"\([a-z]*\)".*/\1/p' | head -n 1
}

last=""
started=$(date +%s%N)
while :; do
  line=""
  finished=0
  for i in "${!ids[@]}"; do
    state=$(state_of "${ids[$i]}")
    line+="  cat-$((i + 1)):${state:-?}"
    case $state in completed | dead | cancelled) finished=$((finished + 1)) ;; esac
  done
  elapsed_ms=$((($(date +%s%N) - started) / 1000000))
  if [[ $line != "$last" ]]; then
    printf 'run: %5.1fs%s\n' "$(awk "BEGIN { print $elapsed_ms / 1000 }")" "$line"
    last=$line
  fi
  ((finished == ${#ids[@]})) && break
  if ((elapsed_ms > 60000)); then
    echo "run: jobs still unfinished after 60 s; the end of .run/worker.log:" >&2
    tail -n 20 "$run/worker.log" >&2
    break
  fi
  sleep 0.5
done

echo
echo "run: spool status"
"$spool" status
echo
echo "run: spool status ${ids[0]}"
"$spool" status "${ids[0]}"

# 4. How to go on.
spool_cmd=${spool#"$root/"}
cat <<EOF

Redis, the worker and the status reader keep running. Try:
EOF
if [[ -n $our_url && $our_url != "redis://127.0.0.1:6379/0" ]]; then
  echo "  export SPOOL_REDIS_URL=$our_url"
fi
cat <<EOF
  $spool_cmd enqueue demo demo.resize '{"image":"dog.png"}' --wait
  $spool_cmd events demo        # every event of the queue, live
  $spool_cmd status
  $spool_cmd jobs demo --state completed
  tail -f .run/worker.log
EOF
if [[ -n $serve_url ]]; then
  cat <<EOF
  open $serve_url/              # the dashboard: queues, live progress, workers, dead jobs
  curl -s $serve_url/queues     # the JSON API (docs/openapi.json)
EOF
fi
cat <<EOF
Stop them with: make stop
EOF
