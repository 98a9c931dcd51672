-- retry: send dead jobs back to the waiting list by hand, with a fresh set of
-- attempts; their error history is kept.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:dead      zset   ids leave it
--   P:{Q}:waiting   list   LPUSH them (priority 0)
--   P:{Q}:prioritized zset  or here, by priority (see enqueue.lua)
--   P:{Q}:job:<id>  hash   state -> waiting, attempts -> 0; finished_at, run_at and
--                          an old cancel request (cancel_requested, cancel_reason) dropped
--   P:{Q}:wake      list   re-armed
--   P:{Q}:unique:<key> string its idempotency key names it again (no expiry), unless
--                          the key names another job that exists: then the job drops it
--   P:{Q}:watched   zset   read: whether a job's own channel P:{Q}:events:<id> has
--                          readers (watch.lua); published to only then
-- ARGV[1] -> now, Unix time in ms
-- ARGV[2] -> a job id, or "*" for the oldest dead jobs
-- ARGV[3] -> with "*": at most this many per call (at least 1; 1000 when absent)
-- Returns: the number of jobs sent back (one id: 1); -1 job missing; -6 the job
--          is not dead; -8 now or ARGV[3] is not a whole number, or ARGV[3] < 1.
-- Keeps: invariants 4 and 5.

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else (Lua's tonumber also takes "nan", "inf", "1e3", spaces).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local now = whole(ARGV[1])
local which = ARGV[2]
local limit = whole(ARGV[3] or '1000')
if not now or type(which) ~= 'string' or not limit or limit < 1 then return -8 end

local queue = string.match(prefix, '{([^}]*)}:$')
local deadKey = prefix .. 'dead'

-- Ready jobs of priority 0 queue in the list; others in the prioritized set.
local function pushReady(id)
  local priority = tonumber(redis.call('HGET', prefix .. 'job:' .. id, 'priority')) or 0
  if priority == 0 then
    redis.call('LPUSH', prefix .. 'waiting', id)
  else
    local order = redis.call('INCR', prefix .. 'pseq') % 1099511627776
    redis.call('ZADD', prefix .. 'prioritized', (100 - priority) * 1099511627776 + order, id)
  end
end

local function revive(id)
  local jobKey = prefix .. 'job:' .. id
  redis.call('ZREM', deadKey, id)
  redis.call('HSET', jobKey, 'state', 'waiting', 'attempts', 0)
  -- A retry by hand is a new request to run the job: a cancel asked of an
  -- earlier attempt must not stop it at its first heartbeat.
  redis.call('HDEL', jobKey, 'finished_at', 'run_at', 'cancel_requested', 'cancel_reason')
  pushReady(id)
  -- Its idempotency key names it again, without expiry, while it is unfinished,
  -- unless the key went on to name another job that still exists: that job
  -- keeps it, and this one lets go of it (its end must not expire the key).
  local key = redis.call('HGET', jobKey, 'key')
  if key then
    local uniqueKey = prefix .. 'unique:' .. key
    local holder = redis.call('GET', uniqueKey)
    if holder and holder ~= id and redis.call('EXISTS', prefix .. 'job:' .. holder) == 1 then
      redis.call('HDEL', jobKey, 'key', 'key_ttl_ms')
    else
      redis.call('SET', uniqueKey, id)
    end
  end
  local seq = redis.call('HINCRBY', jobKey, 'seq', 1)
  local event = cjson.encode({ event = 'waiting', id = id, queue = queue, state = 'waiting',
                               retried = true, at = now, seq = seq })
  redis.call('PUBLISH', prefix .. 'events', event)
  -- The job's own channel only while a reader follows it (watch.lua).
  if redis.call('ZSCORE', prefix .. 'watched', id) then redis.call('PUBLISH', prefix .. 'events:' .. id, event) end
end

local count = 0
if which == '*' then
  for _, id in ipairs(redis.call('ZRANGE', deadKey, 0, limit - 1)) do
    if redis.call('EXISTS', prefix .. 'job:' .. id) == 1 then
      revive(id)
      count = count + 1
    else
      redis.call('ZREM', deadKey, id)
    end
  end
else
  local state = redis.call('HGET', prefix .. 'job:' .. which, 'state')
  if not state then return -1 end
  if state ~= 'dead' then return -6 end
  revive(which)
  count = 1
end
if count > 0 and redis.call('LLEN', prefix .. 'wake') == 0 then
  redis.call('LPUSH', prefix .. 'wake', '1')
end
return count
