-- fail: record a failed attempt of an active job, if the caller still holds
-- the lease; schedule a retry with capped exponential backoff and jitter, or
-- make the job dead when it is out of attempts or the error is not retryable.
-- A job with a cancel request pending (cancel_requested) that would be
-- retried ends cancelled instead: it was asked not to run again.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:job:<id>  hash   state, errors (JSON array), last_error, run_at / finished_at;
--                          token and lease_until removed (read: lease_until)
--   P:{Q}:leases    zset   ZREM the id (the active place)
--   P:{Q}:retry     zset   id -> run_at (ms), jobs in state "failed"
--   P:{Q}:dead      zset   id -> finished_at (ms)
--   P:{Q}:cancelled zset   id -> finished_at (ms), for a retry cut short by a cancel request
--   P:{Q}:stats     hash   failed / dead / cancelled counters
--   P:{Q}:unique:<key> string on dead or cancelled: its idempotency key expires after key_ttl_ms
--   P:{Q}:job:<id>-cb<n> hash on dead: a delivery job (type spool.callback) when the job has a callback
--   P:{Q}:waiting   list   LPUSH that delivery job
--   P:{Q}:watched   zset   read: whether a job's own channel P:{Q}:events:<id> has
--                          readers (watch.lua); published to only then
-- ARGV[1] -> job id
-- ARGV[2] -> lease token from claim
-- ARGV[3] -> now, Unix time in ms
-- ARGV[4] -> error message of this attempt
-- ARGV[5] -> 1 if the error may be retried, 0 if not
-- ARGV[6] -> backoff base in ms (the job's backoff_base_ms field wins)
-- ARGV[7] -> backoff cap in ms (the job's backoff_cap_ms field wins)
-- ARGV[8] -> jitter, a random number in [0, 1) from the caller
-- ARGV[9] -> keep at most this many dead jobs (-1: no count limit)
-- Returns: {1, run_at} retry scheduled; {2, 0} dead; {3, 0} cancelled (a
--          retry was due but a cancel request is pending: the attempt's error
--          is kept in errors, last_error is the cancel's reason when it has
--          one, and a `cancelled` event is published); or -1 job missing,
--          -2 not active, -3 token mismatch, -4 lease expired; -8 (nothing
--          changed) when now, ARGV[6], ARGV[7] or ARGV[9] is not a whole number
--          or the jitter is not in [0, 1].
-- Backoff: d = min(cap, base * 2^(attempts-1)); delay = d/2 + d/2 * jitter.
-- Keeps: invariants 2, 4 and 5 (every attempt's error is kept).

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
local message = ARGV[4]
local retryable = ARGV[5] == '1'
local jitter = tonumber(ARGV[8] or '0')
local keepDead = whole(ARGV[9] or '-1')
-- Checked before anything is read or written: a bad value must not fail a write halfway.
if not now or type(message) ~= 'string' or not jitter or not (jitter >= 0 and jitter <= 1) or not keepDead
    or (ARGV[6] and not whole(ARGV[6])) or (ARGV[7] and not whole(ARGV[7])) then
  return -8
end

local jobKey = prefix .. 'job:' .. id
local queue = string.match(prefix, '{([^}]*)}:$')

local job = redis.call('HMGET', jobKey, 'state', 'token', 'attempts', 'max_attempts',
                       'errors', 'worker', 'backoff_base_ms', 'backoff_cap_ms', 'key', 'key_ttl_ms', 'callback', 'lease_until',
                       'cancel_requested', 'cancel_reason')
if not job[1] then return -1 end
if job[1] ~= 'active' then return -2 end
if job[2] ~= token then return -3 end
-- lease_until, or the leases set for a record claimed before that field existed.
local deadline = tonumber(job[12]) or tonumber(redis.call('ZSCORE', prefix .. 'leases', id))
if not deadline or deadline < now then return -4 end

-- A job with a callback URL gets a delivery job (type spool.callback) in the
-- same queue, made in this same step, so the POST survives crashes and retries.
local function scheduleCallback(url, finalState)
  -- <id>-cb<n> with the next n whose id is free: a producer may have taken
  -- one, or retention reset the count; no record is overwritten.
  local cbId
  repeat
    cbId = id .. '-cb' .. redis.call('HINCRBY', prefix .. 'job:' .. id, 'callbacks', 1)
  until redis.call('EXISTS', prefix .. 'job:' .. cbId) == 0
  redis.call('HSET', prefix .. 'job:' .. cbId, 'type', 'spool.callback',
             'payload', cjson.encode({ job = id, url = url, state = finalState }),
             'created_at', now, 'max_attempts', 10, 'backoff_base_ms', 1000, 'backoff_cap_ms', 300000,
             'seq', 1, 'state', 'waiting')
  redis.call('LPUSH', prefix .. 'waiting', cbId)
  if redis.call('LLEN', prefix .. 'wake') == 0 then redis.call('LPUSH', prefix .. 'wake', '1') end
end

local attempts = tonumber(job[3]) or 1
local maxAttempts = tonumber(job[4]) or 1
local errors = job[5] and cjson.decode(job[5]) or {}
errors[#errors + 1] = { attempt = attempts, error = message, at = now, worker = job[6] }
while #errors > 50 do table.remove(errors, 1) end

redis.call('ZREM', prefix .. 'leases', id)
redis.call('HDEL', jobKey, 'token', 'lease_until')
redis.call('HSET', jobKey, 'errors', cjson.encode(errors), 'last_error', message)

local event
local status, runAt, deadSeq
if retryable and attempts < maxAttempts and job[13] then
  -- Someone asked to cancel this running job: its next attempt would only be
  -- stopped at its first heartbeat. It ends cancelled now, as cancel.lua
  -- would have ended it had the worker confirmed the request.
  runAt = 0
  local reason = job[14] or ''
  redis.call('HSET', jobKey, 'state', 'cancelled', 'finished_at', now)
  if reason ~= '' then redis.call('HSET', jobKey, 'last_error', reason) end
  redis.call('ZADD', prefix .. 'cancelled', now, id)
  redis.call('HINCRBY', prefix .. 'stats', 'cancelled', 1)
  if job[9] then redis.call('PEXPIRE', prefix .. 'unique:' .. job[9], whole(job[10]) or 86400000) end
  status = 3
  event = { event = 'cancelled', id = id, queue = queue, state = 'cancelled',
            error = reason ~= '' and reason or nil, at = now }
elseif retryable and attempts < maxAttempts then
  local base = whole(job[7]) or whole(ARGV[6]) or 1000
  local cap = whole(job[8]) or whole(ARGV[7]) or 3600000
  local d = math.min(cap, base * 2 ^ (attempts - 1))
  runAt = math.floor(now + d / 2 + d / 2 * jitter)
  redis.call('HSET', jobKey, 'state', 'failed', 'run_at', runAt)
  redis.call('ZADD', prefix .. 'retry', runAt, id)
  redis.call('HINCRBY', prefix .. 'stats', 'failed', 1)
  status = 1
  event = { event = 'failed', id = id, queue = queue, state = 'failed', attempt = attempts,
            error = message, run_at = runAt, at = now }
else
  runAt = 0
  local deadKey = prefix .. 'dead'
  -- seq first: the count trim below may delete this very record (keep 0).
  deadSeq = redis.call('HINCRBY', jobKey, 'seq', 1)
  redis.call('HSET', jobKey, 'state', 'dead', 'finished_at', now)
  redis.call('ZADD', deadKey, now, id)
  redis.call('HINCRBY', prefix .. 'stats', 'dead', 1)
  if job[9] then redis.call('PEXPIRE', prefix .. 'unique:' .. job[9], whole(job[10]) or 86400000) end
  if job[11] then scheduleCallback(job[11], 'dead') end
  if keepDead >= 0 then
    local excess = redis.call('ZCARD', deadKey) - keepDead
    if excess > 0 then
      local old = redis.call('ZPOPMIN', deadKey, math.min(excess, 100))
      for i = 1, #old, 2 do redis.call('DEL', prefix .. 'job:' .. old[i]) end
    end
  end
  status = 2
  event = { event = 'dead', id = id, queue = queue, state = 'dead', attempt = attempts,
            error = message, at = now }
end
event.seq = deadSeq or redis.call('HINCRBY', jobKey, 'seq', 1)
event = cjson.encode(event)
redis.call('PUBLISH', prefix .. 'events', event)
-- The job's own channel only while a reader follows it (watch.lua).
if redis.call('ZSCORE', prefix .. 'watched', id) then redis.call('PUBLISH', prefix .. 'events:' .. id, event) end
return { status, runAt }
