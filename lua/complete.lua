-- complete: finish an active job with its result, if the caller still holds
-- the lease.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:job:<id>   hash   state -> completed, result, finished_at, seq (read: token,
--                           lease_until, the deadline)
--   P:{Q}:leases     zset   ZREM the id (the active place)
--   P:{Q}:completed  zset   id -> finished_at (ms)
--   P:{Q}:stats      hash   completed counter
--   P:{Q}:unique:<key> string its idempotency key, if any, now expires after key_ttl_ms
--   P:{Q}:job:<id>-cb<n> hash a delivery job (type spool.callback) when the job has a callback
--   P:{Q}:waiting    list   LPUSH that delivery job
-- ARGV[1] -> job id
-- ARGV[2] -> lease token from claim
-- ARGV[3] -> now, Unix time in ms
-- ARGV[4] -> result (JSON text)
-- ARGV[5] -> keep at most this many completed jobs (-1: no count limit); the
--            oldest beyond it are deleted with their records, in batches: with
--            keep >= 64, checked every 16th completion and up to keep/64 + 16
--            more may wait for the next batch (none when keep < 64)
-- Returns: 1 on success; -1 job missing; -2 job not active; -3 lease token
--          does not match (another claim owns it); -4 lease expired.
-- Publishes: {"event":"completed",...} on P:{Q}:events and P:{Q}:events:<id>.
-- Keeps: invariant 2 (fenced), 4 (active -> completed atomically), 6 (count bound).

local prefix = KEYS[1]
local id = ARGV[1]
local token = ARGV[2]
local now = tonumber(ARGV[3])
local result = ARGV[4]
local keep = tonumber(ARGV[5]) or -1

local jobKey = prefix .. 'job:' .. id
local queue = string.match(prefix, '{([^}]*)}:$')

local job = redis.call('HMGET', jobKey, 'state', 'token', 'attempts', 'key', 'key_ttl_ms', 'callback',
                       'lease_until', 'seq')
if not job[1] then return -1 end
if job[1] ~= 'active' then return -2 end
if job[2] ~= token then return -3 end
-- lease_until, or the leases set for a record claimed before that field existed.
local deadline = tonumber(job[7]) or tonumber(redis.call('ZSCORE', prefix .. 'leases', id))
if not deadline or deadline < now then return -4 end

-- A job with a callback URL gets a delivery job (type spool.callback) in the
-- same queue, made in this same step, so the POST survives crashes and retries.
local function scheduleCallback(url, finalState)
  local seq = redis.call('HINCRBY', prefix .. 'job:' .. id, 'callbacks', 1)
  local cbId = id .. '-cb' .. seq
  redis.call('HSET', prefix .. 'job:' .. cbId, 'type', 'spool.callback',
             'payload', cjson.encode({ job = id, url = url, state = finalState }),
             'created_at', now, 'max_attempts', 10, 'backoff_base_ms', 1000, 'backoff_cap_ms', 300000,
             'seq', 1, 'state', 'waiting')
  redis.call('LPUSH', prefix .. 'waiting', cbId)
  if redis.call('LLEN', prefix .. 'wake') == 0 then redis.call('LPUSH', prefix .. 'wake', '1') end
end

-- seq is written before the count trim below, which may delete this very record (keep 0).
local seq = string.format('%d', (tonumber(job[8]) or 0) + 1)
redis.call('ZREM', prefix .. 'leases', id)
-- token and lease_until stay: every fenced script checks state = active first.
-- ARGV[3] as given: Lua's number-to-text conversion (printf %.14g) is costly.
redis.call('HSET', jobKey, 'state', 'completed', 'result', result, 'finished_at', ARGV[3], 'seq', seq)
local completedKey = prefix .. 'completed'
redis.call('ZADD', completedKey, ARGV[3], id)
local total = redis.call('HINCRBY', prefix .. 'stats', 'completed', 1)
if job[4] then redis.call('PEXPIRE', prefix .. 'unique:' .. job[4], tonumber(job[5]) or 86400000) end
if job[6] then scheduleCallback(job[6], 'completed') end

-- The count bound is checked on every completion when keep < 64, else on
-- every 16th (by the completed counter) and with keep/64 of slack.
if keep >= 0 and (keep < 64 or total % 16 == 0) then
  local excess = redis.call('ZCARD', completedKey) - keep
  if excess > math.floor(keep / 64) then
    local old = redis.call('ZPOPMIN', completedKey, math.min(excess, 100))
    local doomed = {}
    for i = 1, #old, 2 do doomed[#doomed + 1] = prefix .. 'job:' .. old[i] end
    redis.call('DEL', unpack(doomed))
  end
end

-- JSON text of an id or a name, quotes included (C code: cheaper than a
-- Lua pattern test for the characters that need escaping).
local quote = cjson.encode
local event = '{"event":"completed","id":' .. quote(id) .. ',"queue":' .. quote(queue)
  .. ',"state":"completed","attempt":' .. (job[3] or '0') .. ',"at":' .. ARGV[3] .. ',"seq":' .. seq .. '}'
redis.call('PUBLISH', prefix .. 'events', event)
redis.call('PUBLISH', prefix .. 'events:' .. id, event)
return 1
