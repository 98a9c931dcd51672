-- promote: move delayed jobs and failed jobs whose retry time has come to the
-- waiting list, oldest due first. At most one sweep per queue runs per
-- interval across the fleet.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:guard:promote string  SET NX PX <interval>: the sweep's ticket
--   P:{Q}:delayed       zset    id -> run_at (ms), state "delayed"
--   P:{Q}:retry         zset    id -> run_at (ms), state "failed"
--   P:{Q}:waiting       list    LPUSH due ids of priority 0 (behind waiting ones)
--   P:{Q}:prioritized   zset    due ids of other priorities (see enqueue.lua)
--   P:{Q}:job:<id>      hash    state -> waiting
--   P:{Q}:wake          list    re-armed when anything was promoted
--   P:{Q}:watched   zset   read: whether a job's own channel P:{Q}:events:<id> has
--                          readers (watch.lua); published to only then
-- ARGV[1] -> now, Unix time in ms
-- ARGV[2] -> guard interval in ms; 0 sweeps unconditionally
-- ARGV[3] -> at most this many jobs per set per call (at least 1; 1000 when absent)
-- Returns: {promoted, next_due}: next_due is the earliest run_at still in
--          either set (ms), or -1 when both are empty; {-1, next_due} when
--          another sweep ran within the interval; -8 when an argument is not a
--          whole number or the limit is below 1 (nothing changed).
-- Keeps: invariant 4 (delayed/retry -> waiting atomically) and 5.

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
local sets = { prefix .. 'delayed', prefix .. 'retry' }

local function nextDue()
  local best = -1
  for _, key in ipairs(sets) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local due = tonumber(first[2])
      if best < 0 or due < best then best = due end
    end
  end
  return best
end

if guardMs > 0 and not redis.call('SET', prefix .. 'guard:promote', now, 'PX', guardMs, 'NX') then
  return { -1, nextDue() }
end

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

local promoted = 0
for _, key in ipairs(sets) do
  local due = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', key, id)
    local jobKey = prefix .. 'job:' .. id
    if redis.call('EXISTS', jobKey) == 1 then
      redis.call('HSET', jobKey, 'state', 'waiting')
      pushReady(id)
      promoted = promoted + 1
      local seq = redis.call('HINCRBY', jobKey, 'seq', 1)
      local event = cjson.encode({ event = 'waiting', id = id, queue = queue, state = 'waiting', at = now, seq = seq })
      redis.call('PUBLISH', prefix .. 'events', event)
      -- The job's own channel only while a reader follows it (watch.lua).
      if redis.call('ZSCORE', prefix .. 'watched', id) then redis.call('PUBLISH', prefix .. 'events:' .. id, event) end
    end
  end
end
if promoted > 0 and redis.call('LLEN', prefix .. 'wake') == 0 then
  redis.call('LPUSH', prefix .. 'wake', '1')
end
return { promoted, nextDue() }
