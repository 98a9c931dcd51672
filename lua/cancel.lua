-- cancel: end a job as cancelled; it is never retried.
--   * waiting, delayed or failed (awaiting a retry): cancelled at once.
--   * active, asked by anyone (no token): the request is stored on the job and
--     published on the queue's cancel channel; the worker running it stops the
--     handler and calls this script again with its lease token.
--   * active, called with the job's lease token: cancelled now.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:job:<id>     hash  state -> cancelled, finished_at, cancel_requested, seq;
--                            token and lease_until removed (with the token)
--   P:{Q}:waiting      list  LREM the id (state waiting, priority 0)
--   P:{Q}:prioritized  zset  ZREM the id (state waiting, other priorities)
--   P:{Q}:delayed      zset  ZREM the id (state delayed)
--   P:{Q}:retry        zset  ZREM the id (state failed)
--   P:{Q}:leases       zset  ZREM the id (state active, with the token)
--   P:{Q}:cancelled    zset  id -> finished_at (ms)
--   P:{Q}:cancels      channel  the id, when a running job is asked to stop
--   P:{Q}:unique:<key> string its idempotency key, if any, expires after key_ttl_ms
--   P:{Q}:watched   zset   read: whether a job's own channel P:{Q}:events:<id> has
--                          readers (watch.lua); published to only then
-- ARGV[1] -> job id
-- ARGV[2] -> now, Unix time in ms
-- ARGV[3] -> reason, kept as last_error ("" for none)
-- ARGV[4] -> lease token when the worker running the job confirms; "" otherwise
-- Returns: 1 cancelled; 2 cancel requested from the running job's worker;
--          -1 job missing; -3 the token does not match the job's lease;
--          -6 the job has already finished; -8 now is not a whole number
--          (nothing changed).
-- Keeps: invariant 4 (the id moves to the cancelled set in the same step).

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else. Lua's tonumber also takes "nan", "inf", "0x1f", "1e3" and
-- spaces: a NaN "now" passes every lease check (deadline < NaN is false).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local id = ARGV[1]
local now = whole(ARGV[2])
local reason = ARGV[3] or ''
if not now then return -8 end
local token = ARGV[4] or ''

local jobKey = prefix .. 'job:' .. id
local queue = string.match(prefix, '{([^}]*)}:$')

local job = redis.call('HMGET', jobKey, 'state', 'token', 'key', 'key_ttl_ms', 'cancel_requested')
local state = job[1]
if not state then return -1 end

if state == 'active' then
  if token == '' then
    if not job[5] then
      redis.call('HSET', jobKey, 'cancel_requested', now)
      if reason ~= '' then redis.call('HSET', jobKey, 'cancel_reason', reason) end
    end
    redis.call('PUBLISH', prefix .. 'cancels', id)
    return 2
  end
  if job[2] ~= token then return -3 end
  redis.call('ZREM', prefix .. 'leases', id)
  redis.call('HDEL', jobKey, 'token', 'lease_until')
  if reason == '' then reason = redis.call('HGET', jobKey, 'cancel_reason') or '' end
elseif state == 'waiting' then
  if redis.call('LREM', prefix .. 'waiting', 1, id) == 0 then
    redis.call('ZREM', prefix .. 'prioritized', id)
  end
elseif state == 'delayed' then
  redis.call('ZREM', prefix .. 'delayed', id)
elseif state == 'failed' then
  redis.call('ZREM', prefix .. 'retry', id)
else
  return -6
end

redis.call('HSET', jobKey, 'state', 'cancelled', 'finished_at', now)
if reason ~= '' then redis.call('HSET', jobKey, 'last_error', reason) end
redis.call('ZADD', prefix .. 'cancelled', now, id)
redis.call('HINCRBY', prefix .. 'stats', 'cancelled', 1)
if job[3] then redis.call('PEXPIRE', prefix .. 'unique:' .. job[3], whole(job[4]) or 86400000) end
local seq = redis.call('HINCRBY', jobKey, 'seq', 1)
local event = cjson.encode({ event = 'cancelled', id = id, queue = queue, state = 'cancelled',
                             error = reason ~= '' and reason or nil, at = now, seq = seq })
redis.call('PUBLISH', prefix .. 'events', event)
-- The job's own channel only while a reader follows it (watch.lua).
if redis.call('ZSCORE', prefix .. 'watched', id) then redis.call('PUBLISH', prefix .. 'events:' .. id, event) end
return 1
