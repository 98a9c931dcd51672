-- claim: take the oldest waiting job, move it to the active list and stamp a
-- lease on it (deadline + token) in one step, so no job is ever active without
-- a lease.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:waiting   list   RPOP the oldest id
--   P:{Q}:active    list   LPUSH the claimed id
--   P:{Q}:leases    zset   id -> lease deadline (ms)
--   P:{Q}:job:<id>  hash   state, attempts, worker, token, started_at, seq;
--                          progress and progress_message cleared
--   P:{Q}:paused    string present while the queue is paused
--   P:{Q}:wake      list   re-armed while jobs remain, so the next idle worker wakes
-- ARGV[1] -> now, Unix time in ms
-- ARGV[2] -> worker id (for the record and logs)
-- ARGV[3] -> lease token, unique per claim (fences every later call on this job)
-- ARGV[4] -> lease length in ms (the visibility timeout)
-- Returns: {id, type, payload, attempts, max_attempts, timeout_ms, lease_deadline}
--          0 when nothing is waiting; -7 when the queue is paused.
-- Keeps: invariants 2 (one fenced lease) and 4 (waiting -> active atomically).

local prefix = KEYS[1]
local now = tonumber(ARGV[1])
local worker = ARGV[2]
local token = ARGV[3]
local leaseMs = tonumber(ARGV[4])

local waitingKey = prefix .. 'waiting'
local queue = string.match(prefix, '{([^}]*)}:$')

if redis.call('EXISTS', prefix .. 'paused') == 1 then return -7 end

-- An id whose record is gone (deleted by hand) is dropped rather than claimed.
for _ = 1, 100 do
  local id = redis.call('RPOP', waitingKey)
  if not id then return 0 end
  local jobKey = prefix .. 'job:' .. id
  if redis.call('EXISTS', jobKey) == 1 then
    local deadline = now + leaseMs
    redis.call('LPUSH', prefix .. 'active', id)
    redis.call('ZADD', prefix .. 'leases', deadline, id)
    local attempts = redis.call('HINCRBY', jobKey, 'attempts', 1)
    redis.call('HSET', jobKey, 'state', 'active', 'started_at', now, 'worker', worker, 'token', token)
    -- A new attempt starts from nothing, not from the last attempt's progress.
    redis.call('HDEL', jobKey, 'progress', 'progress_message')
    local job = redis.call('HMGET', jobKey, 'type', 'payload', 'max_attempts', 'timeout_ms')
    if redis.call('LLEN', waitingKey) > 0 and redis.call('LLEN', prefix .. 'wake') == 0 then
      redis.call('LPUSH', prefix .. 'wake', '1')
    end
    local seq = redis.call('HINCRBY', jobKey, 'seq', 1)
    local event = cjson.encode({ event = 'active', id = id, queue = queue, state = 'active',
                                 attempt = attempts, worker = worker, at = now, seq = seq })
    redis.call('PUBLISH', prefix .. 'events', event)
    redis.call('PUBLISH', prefix .. 'events:' .. id, event)
    return { id, job[1] or '', job[2] or 'null', attempts, tonumber(job[3]) or 1,
             tonumber(job[4]) or 0, deadline }
  end
end
return 0
