-- progress: store an active job's progress and publish it, if the caller still
-- holds the lease (a worker whose lease expired cannot report any more).
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:job:<id>  hash   progress (0-100), progress_message, seq (read: state,
--                          token, lease_until)
--   P:{Q}:leases    zset   read: the deadline of a record claimed before lease_until
--                          existed (protocol version 1)
--   P:{Q}:watched   zset   read: whether a job's own channel P:{Q}:events:<id> has
--                          readers (watch.lua); published to only then
-- ARGV[1] -> job id
-- ARGV[2] -> lease token from claim
-- ARGV[3] -> now, Unix time in ms
-- ARGV[4] -> percent done, a number from 0 to 100
-- ARGV[5] -> message ("" for none)
-- Returns: 1 stored and published; -1 job missing; -2 not active; -3 token
--          mismatch; -4 lease expired; -8 (nothing changed) percent is not a
--          number in 0..100 or now is not a whole number.
-- Publishes: {"event":"progress","percent":…,"message":…} on the queue's channel,
--            and on the job's while the job is in P:{Q}:watched.
-- Keeps: invariant 2 (progress is fenced like every other report).

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
local percent = tonumber(ARGV[4])
local message = ARGV[5]

local jobKey = prefix .. 'job:' .. id
local queue = string.match(prefix, '{([^}]*)}:$')

if not now or not percent or percent ~= percent or percent < 0 or percent > 100 then return -8 end
local job = redis.call('HMGET', jobKey, 'state', 'token', 'attempts', 'lease_until')
if not job[1] then return -1 end
if job[1] ~= 'active' then return -2 end
if job[2] ~= token then return -3 end
-- lease_until, or the leases set for a record claimed before that field existed.
local deadline = tonumber(job[4]) or tonumber(redis.call('ZSCORE', prefix .. 'leases', id))
if not deadline or deadline < now then return -4 end

redis.call('HSET', jobKey, 'progress', percent, 'progress_message', message)
local seq = redis.call('HINCRBY', jobKey, 'seq', 1)
local event = cjson.encode({ event = 'progress', id = id, queue = queue, state = 'active',
                             attempt = tonumber(job[3]), percent = percent,
                             message = message ~= '' and message or nil, at = now, seq = seq })
redis.call('PUBLISH', prefix .. 'events', event)
-- The job's own channel only while a reader follows it (watch.lua).
if redis.call('ZSCORE', prefix .. 'watched', id) then redis.call('PUBLISH', prefix .. 'events:' .. id, event) end
return 1
