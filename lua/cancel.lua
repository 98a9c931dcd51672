-- cancel: end a job that has not started (waiting, delayed, or failed and
-- waiting for its retry) as cancelled. It is never retried.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:job:<id>   hash  state -> cancelled, finished_at, seq
--   P:{Q}:waiting    list  LREM the id (state waiting)
--   P:{Q}:delayed    zset  ZREM the id (state delayed)
--   P:{Q}:retry      zset  ZREM the id (state failed)
--   P:{Q}:cancelled  zset  id -> finished_at (ms)
-- ARGV[1] -> job id
-- ARGV[2] -> now, Unix time in ms
-- ARGV[3] -> reason, kept as last_error ("" for none)
-- Returns: 1 cancelled; -1 job missing; -2 the job is active (running jobs are
--          cancelled through their worker); -6 the job has already finished.
-- Keeps: invariant 4 (the id moves to the cancelled set in the same step).

local prefix = KEYS[1]
local id = ARGV[1]
local now = tonumber(ARGV[2])
local reason = ARGV[3]

local jobKey = prefix .. 'job:' .. id
local queue = string.match(prefix, '{([^}]*)}:$')

local state = redis.call('HGET', jobKey, 'state')
if not state then return -1 end
if state == 'active' then return -2 end
local places = { waiting = 'list', delayed = 'delayed', failed = 'retry' }
local place = places[state]
if not place then return -6 end
if place == 'list' then
  redis.call('LREM', prefix .. 'waiting', 1, id)
else
  redis.call('ZREM', prefix .. place, id)
end
redis.call('HSET', jobKey, 'state', 'cancelled', 'finished_at', now)
if reason ~= '' then redis.call('HSET', jobKey, 'last_error', reason) end
redis.call('ZADD', prefix .. 'cancelled', now, id)
redis.call('HINCRBY', prefix .. 'stats', 'cancelled', 1)
local seq = redis.call('HINCRBY', jobKey, 'seq', 1)
local event = cjson.encode({ event = 'cancelled', id = id, queue = queue, state = 'cancelled',
                             error = reason ~= '' and reason or nil, at = now, seq = seq })
redis.call('PUBLISH', prefix .. 'events', event)
redis.call('PUBLISH', prefix .. 'events:' .. id, event)
return 1
