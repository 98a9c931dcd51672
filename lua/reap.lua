-- reap: redeliver jobs whose lease expired (their worker died, hung or lost its
-- connection) and jobs popped into the legacy active list that never got a
-- lease. An expired job with a cancel request pending is cancelled instead
-- (its worker never confirmed the cancel; it must not run again). At most one sweep per queue runs per interval across the whole fleet.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:guard:reap string  SET NX PX <interval>: the sweep's ticket
--   P:{Q}:leases     zset    the active jobs: id -> deadline (ms); expired ones are reaped
--   P:{Q}:active     list    legacy (protocol version 2 and older claimed into it;
--                            version 3 never writes it): expired ids are removed
--                            from it, and ids in it without a lease are redelivered
--   P:{Q}:waiting    list    redelivered ids go to the front (RPUSH: claimed next)
--   P:{Q}:dead       zset    stalled jobs that were on their last attempt
--   P:{Q}:cancelled  zset    expired jobs with a cancel request (cancel_requested)
--   P:{Q}:job:<id>   hash    state, errors, last_error; token and lease_until removed
--   P:{Q}:wake       list    re-armed when anything was redelivered, and when
--                            jobs are ready but no token is there (one was
--                            lost: its taker died before claiming); not while
--                            the queue is paused
--   P:{Q}:prioritized zset   read: ready jobs at other priorities
--   P:{Q}:paused     string  read: no re-arming while paused
--   P:{Q}:stats      hash    stalled / dead / cancelled counters
--   P:{Q}:unique:<key> string a dead job's idempotency key expires after key_ttl_ms
--   P:{Q}:job:<id>-cb<n> hash a dead job with a callback URL gets a delivery job
--   P:{Q}:watched   zset   read: whether a job's own channel P:{Q}:events:<id> has
--                          readers (watch.lua); published to only then
-- ARGV[1] -> now, Unix time in ms
-- ARGV[2] -> guard interval in ms; 0 sweeps unconditionally
-- ARGV[3] -> at most this many jobs of each kind per call
-- Returns: {stalled, orphans, dead} counts (jobs cancelled here are in none);
--          {-1, 0, 0} when another sweep ran within the interval; -8 when an argument is not a whole number or
--          the limit is below 1.
-- Keeps: invariants 1 and 3 (nothing held by a dead worker is lost; the attempt
--        stays counted), 4, and a cancel request (the job does not run again).

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else (Lua's tonumber also takes "nan", "inf", "1e3", spaces).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local now = whole(ARGV[1])
local guardMs = whole(ARGV[2] or '0')
local limit = whole(ARGV[3] or '1000')
if not now or not guardMs or not limit or limit < 1 then return -8 end

local queue = string.match(prefix, '{([^}]*)}:$')
local activeKey, leasesKey, waitingKey = prefix .. 'active', prefix .. 'leases', prefix .. 'waiting'

if guardMs > 0 and not redis.call('SET', prefix .. 'guard:reap', now, 'PX', guardMs, 'NX') then
  return { -1, 0, 0 }
end

local function publish(event)
  event.seq = redis.call('HINCRBY', prefix .. 'job:' .. event.id, 'seq', 1)
  local text = cjson.encode(event)
  redis.call('PUBLISH', prefix .. 'events', text)
  -- The job's own channel only while a reader follows it (watch.lua).
  if redis.call('ZSCORE', prefix .. 'watched', event.id) then redis.call('PUBLISH', prefix .. 'events:' .. event.id, text) end
end

-- As in complete.lua and fail.lua: a job that ends dead with a callback URL
-- gets a delivery job (type spool.callback) in the same step.
local function scheduleCallback(id, url)
  -- <id>-cb<n> with the next n whose id is free: a producer may have taken
  -- one, or retention reset the count; no record is overwritten.
  local cbId
  repeat
    cbId = id .. '-cb' .. redis.call('HINCRBY', prefix .. 'job:' .. id, 'callbacks', 1)
  until redis.call('EXISTS', prefix .. 'job:' .. cbId) == 0
  redis.call('HSET', prefix .. 'job:' .. cbId, 'type', 'spool.callback',
             'payload', cjson.encode({ job = id, url = url, state = 'dead' }),
             'created_at', now, 'max_attempts', 10, 'backoff_base_ms', 1000, 'backoff_cap_ms', 300000,
             'seq', 1, 'state', 'waiting')
  redis.call('LPUSH', waitingKey, cbId)
end

local stalled, orphans, dead = 0, 0, 0

local expired = redis.call('ZRANGEBYSCORE', leasesKey, '-inf', '(' .. now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local jobKey = prefix .. 'job:' .. id
  redis.call('ZREM', leasesKey, id)
  redis.call('LREM', activeKey, 1, id) -- claimed by a version 2 worker; else a no-op
  local job = redis.call('HMGET', jobKey, 'attempts', 'max_attempts', 'errors', 'worker', 'key', 'key_ttl_ms', 'callback',
                         'state', 'cancel_requested', 'cancel_reason')
  if job[8] == 'active' and job[9] then
    -- A cancel was asked of the running job and its worker is gone before
    -- confirming it: the job ends cancelled here, never runs again.
    local reason = job[10] or ''
    redis.call('HDEL', jobKey, 'token', 'lease_until')
    redis.call('HSET', jobKey, 'state', 'cancelled', 'finished_at', now)
    if reason ~= '' then redis.call('HSET', jobKey, 'last_error', reason) end
    redis.call('ZADD', prefix .. 'cancelled', now, id)
    redis.call('HINCRBY', prefix .. 'stats', 'cancelled', 1)
    if job[5] then redis.call('PEXPIRE', prefix .. 'unique:' .. job[5], whole(job[6]) or 86400000) end
    publish({ event = 'cancelled', id = id, queue = queue, state = 'cancelled',
              error = reason ~= '' and reason or nil, at = now })
  elseif job[8] == 'active' then
    -- Only an active record is redelivered: a lease left behind by a job that
    -- already reached another state is just dropped.
    local attempts = tonumber(job[1]) or 1
    local maxAttempts = tonumber(job[2]) or 1
    local message = 'lease expired: worker ' .. (job[4] or '?') .. ' stopped renewing it (stalled)'
    local errors = job[3] and cjson.decode(job[3]) or {}
    errors[#errors + 1] = { attempt = attempts, error = message, at = now, worker = job[4] }
    while #errors > 50 do table.remove(errors, 1) end
    redis.call('HDEL', jobKey, 'token', 'lease_until')
    redis.call('HSET', jobKey, 'errors', cjson.encode(errors), 'last_error', message)
    redis.call('HINCRBY', prefix .. 'stats', 'stalled', 1)
    if attempts >= maxAttempts then
      redis.call('HSET', jobKey, 'state', 'dead', 'finished_at', now)
      redis.call('ZADD', prefix .. 'dead', now, id)
      redis.call('HINCRBY', prefix .. 'stats', 'dead', 1)
      if job[5] then redis.call('PEXPIRE', prefix .. 'unique:' .. job[5], whole(job[6]) or 86400000) end
      if job[7] then scheduleCallback(id, job[7]) end
      dead = dead + 1
      publish({ event = 'stalled', id = id, queue = queue, state = 'dead', attempt = attempts,
                error = message, at = now })
    else
      redis.call('HSET', jobKey, 'state', 'waiting')
      redis.call('RPUSH', waitingKey, id)
      stalled = stalled + 1
      publish({ event = 'stalled', id = id, queue = queue, state = 'waiting', attempt = attempts,
                error = message, at = now })
    end
  end
end

-- Claim pops and stamps in one script and has not used the active list since
-- protocol version 3. An id in that list without a lease was put there by
-- something else (a crashed foreign worker that popped with LMOVE, a hand
-- edit): give it back to the waiting list. Its attempt was never counted,
-- because no claim ran. Ids with a lease were claimed by a version 2 worker,
-- which removes them itself when it finishes them.
local tail = redis.call('LRANGE', activeKey, -limit, -1)
for _, id in ipairs(tail) do
  if not redis.call('ZSCORE', leasesKey, id) then
    redis.call('LREM', activeKey, 1, id)
    local jobKey = prefix .. 'job:' .. id
    -- Only a job still waiting or active by its record: one cancelled (or
    -- otherwise finished) since it was popped is in its place already.
    local state = redis.call('HGET', jobKey, 'state')
    if state == 'waiting' or state == 'active' then
      redis.call('HDEL', jobKey, 'token', 'lease_until')
      redis.call('HSET', jobKey, 'state', 'waiting')
      redis.call('RPUSH', waitingKey, id)
      orphans = orphans + 1
      publish({ event = 'stalled', id = id, queue = queue, state = 'waiting',
                error = 'popped but never claimed', at = now })
    end
  end
end

-- Idle workers block on the wake list and do not poll the queue, so this
-- sweep is what recovers a lost token: within one interval, fleet-wide.
if redis.call('LLEN', prefix .. 'wake') == 0 and redis.call('EXISTS', prefix .. 'paused') == 0
    and (stalled + orphans + dead > 0 or redis.call('LLEN', waitingKey) > 0
         or redis.call('ZCARD', prefix .. 'prioritized') > 0) then
  redis.call('LPUSH', prefix .. 'wake', '1')
end
return { stalled, orphans, dead }
