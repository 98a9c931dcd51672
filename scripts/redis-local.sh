# Helpers for starting and stopping a private redis-server, sourced by
# scripts/test.sh, scripts/run.sh, scripts/stop.sh and scripts/bench.sh.
#
# A server is always started daemonized with an absolute pid file, and always
# stopped through that pid file: nothing here looks processes up by name.

# Prints a TCP port on 127.0.0.1 that nothing listens on right now. The kernel
# picks it when python3 is there; otherwise random ports are probed.
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' && return 0
  fi
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! port_in_use "$port"; then
      echo "$port"
      return 0
    fi
  done
  echo "no free loopback port found" >&2
  return 1
}

# True when something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The pid recorded in a pid file, when that process is alive; else nothing.
live_pid() {
  local file=$1 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# start_redis DIR PORT [redis-server arguments...]
#
# 1. Starts redis-server daemonized on 127.0.0.1:PORT (PORT "auto": a free
#    port, retried a few times in case another process takes it first), with
#    its pid file and log in DIR (absolute).
# 2. Waits until that very process answers PING: the pid it reports in
#    INFO server must be the one in the pid file, so a foreign server that
#    grabbed the port is never mistaken for ours.
# 3. Sets REDIS_PORT and REDIS_PID; on failure prints the log and returns 1.
start_redis() {
  local dir=$1 want=$2
  shift 2
  local pidfile="$dir/redis.pid" log="$dir/redis.log" port pid reported
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    if [[ $want == auto ]]; then port=$(free_port) || return 1; else port=$want; fi
    rm -f "$pidfile"
    redis-server "$@" --port "$port" --bind 127.0.0.1 --daemonize yes \
      --pidfile "$pidfile" --logfile "$log" >/dev/null || return 1
    for _ in $(seq 1 100); do
      if pid=$(live_pid "$pidfile"); then
        reported=$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" INFO server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
        if [[ $reported == "$pid" ]]; then
          REDIS_PORT=$port
          REDIS_PID=$pid
          return 0
        fi
      fi
      sleep 0.05
    done
    # Not ours or not up: stop what we started (if anything) and try again.
    stop_redis "$pidfile" quiet
    [[ $want == auto ]] || break
  done
  echo "redis-server did not start on 127.0.0.1:$port; the end of $log:" >&2
  tail -n 20 "$log" >&2 2>/dev/null || true
  return 1
}

# stop_redis PIDFILE [quiet]: SIGTERM to the pid in PIDFILE (a redis-server),
# waiting up to 10 s for it to save and exit, then SIGKILL.
stop_redis() {
  local pidfile=$1 quiet=${2:-} pid
  if ! pid=$(live_pid "$pidfile"); then
    rm -f "$pidfile"
    return 0
  fi
  # A recycled pid must not be killed: make sure it is still a redis-server.
  if [[ -r /proc/$pid/comm ]] && ! grep -q '^redis' "/proc/$pid/comm"; then
    [[ -n $quiet ]] || echo "pid $pid in $pidfile is not a redis-server any more; leaving it alone" >&2
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
