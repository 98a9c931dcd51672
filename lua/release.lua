-- release: hand an active job back to the front of the waiting list without
-- counting the attempt, because its worker is shutting down (not failing).
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:job:<id>  hash   state -> waiting, attempts - 1, token and lease_until removed, seq
--   P:{Q}:leases    zset   ZREM the id (the active place)
--   P:{Q}:waiting   list   RPUSH the id (claimed next)
--   P:{Q}:wake      list   re-armed, so an idle worker takes it at once
--   P:{Q}:watched   zset   read: whether a job's own channel P:{Q}:events:<id> has
--                          readers (watch.lua); published to only then
-- ARGV[1] -> job id
-- ARGV[2] -> lease token from claim
-- ARGV[3] -> now, Unix time in ms
-- ARGV[4] -> why (for the event), e.g. "worker shutting down"
-- Returns: 1 released; -1 job missing; -2 not active; -3 token mismatch (the
--          lease was already reaped and given to another claim); -8 now is not
--          a whole number (nothing changed).
-- Keeps: invariants 1 and 4 (the job goes straight back, in one step).

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else. Lua's tonumber also takes "nan", "inf", "0x1f", "1e3" and
-- spaces: a NaN "now" passes every lease check (deadline < NaN is false).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local id = ARGV[1]
local token = ARGV[2]
local now = whole(ARGV[3])
local why = ARGV[4] or ''
if not now then return -8 end

local jobKey = prefix .. 'job:' .. id
local queue = string.match(prefix, '{([^}]*)}:$')

local job = redis.call('HMGET', jobKey, 'state', 'token', 'attempts')
if not job[1] then return -1 end
if job[1] ~= 'active' then return -2 end
if job[2] ~= token then return -3 end

redis.call('ZREM', prefix .. 'leases', id)
redis.call('HDEL', jobKey, 'token', 'lease_until')
local attempts = math.max(0, (tonumber(job[3]) or 1) - 1)
redis.call('HSET', jobKey, 'state', 'waiting', 'attempts', attempts)
redis.call('RPUSH', prefix .. 'waiting', id)
if redis.call('LLEN', prefix .. 'wake') == 0 then
  redis.call('LPUSH', prefix .. 'wake', '1')
end
local seq = redis.call('HINCRBY', jobKey, 'seq', 1)
local event = cjson.encode({ event = 'released', id = id, queue = queue, state = 'waiting',
                             attempt = attempts, message = why ~= '' and why or nil, at = now, seq = seq })
redis.call('PUBLISH', prefix .. 'events', event)
-- The job's own channel only while a reader follows it (watch.lua).
if redis.call('ZSCORE', prefix .. 'watched', id) then redis.call('PUBLISH', prefix .. 'events:' .. id, event) end
return 1
