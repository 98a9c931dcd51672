-- complete: finish active jobs with their results, each only if the caller
-- still holds its lease. One call takes one job or a batch of them.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:job:<id>   hash   state -> completed, result, finished_at, seq (read: token,
--                           lease_until, the deadline)
--   P:{Q}:leases     zset   ZREM the ids (the active place)
--   P:{Q}:completed  zset   id -> finished_at (ms)
--   P:{Q}:stats      hash   completed counter
--   P:{Q}:unique:<key> string its idempotency key, if any, now expires after key_ttl_ms
--   P:{Q}:job:<id>-cb<n> hash a delivery job (type spool.callback) when the job has a callback
--   P:{Q}:waiting    list   LPUSH that delivery job
--   P:{Q}:watched    zset   read: the jobs whose own channel has readers (watch.lua)
-- ARGV[1] -> now, Unix time in ms
-- ARGV[2] -> keep at most this many completed jobs (-1: no count limit); the
--            oldest beyond it are deleted with their records, in batches: with
--            keep >= 64, checked whenever the completed counter passes a
--            multiple of 16, and up to keep/64 + 16 more may wait for the next
--            batch (none when keep < 64: checked on every call)
-- ARGV[3..] -> the jobs, three arguments each: id, lease token from claim,
--            result (JSON text); at most 1000 jobs per call
-- Returns: a list with one code per job, in order: 1 completed; -1 job missing;
--          -2 job not active (a job given twice: the second); -3 lease token
--          does not match (another claim owns it); -4 lease expired.
--          -8 alone (not in a list) when the arguments do not split into at most
--          1000 jobs, or now or keep is not a whole number (nothing is changed).
-- Publishes: {"event":"completed",...} per job completed: all of them in one message on
--            P:{Q}:events, one per line, in order; each also alone on
--            P:{Q}:events:<id> when the id is in P:{Q}:watched.
-- Keeps: invariant 2 (fenced), 4 (active -> completed atomically), 6 (count bound).

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else. Lua's tonumber also takes "nan", "inf", "0x1f", "1e3" and
-- spaces: a NaN "now" passes every lease check (deadline < NaN is false).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local nowText = ARGV[1]
local now = whole(nowText)
local keep = whole(ARGV[2])
if not now or not keep or (#ARGV - 2) % 3 ~= 0 or #ARGV > 3002 then return -8 end

local queue = string.match(prefix, '{([^}]*)}:$')
-- JSON text of an id or a name, quotes included (C code: cheaper than a
-- Lua pattern test for the characters that need escaping).
local quote = cjson.encode
local queueText = quote(queue)
local leasesKey = prefix .. 'leases'

-- The job's own channel only while a reader follows the job (watch.lua lists
-- it in P:{Q}:watched): one EXISTS per call, and a ZSCORE per job only when
-- somebody follows a job of this queue.
local watchedKey = prefix .. 'watched'
local watching
local function publishToJob(id, event)
  if watching == nil then watching = redis.call('EXISTS', watchedKey) == 1 end
  if watching and redis.call('ZSCORE', watchedKey, id) then
    redis.call('PUBLISH', prefix .. 'events:' .. id, event)
  end
end

-- A job with a callback URL gets a delivery job (type spool.callback) in the
-- same queue, made in this same step, so the POST survives crashes and retries.
local function scheduleCallback(id, url, finalState)
  -- <id>-cb<n> with the next n whose id is free: a producer may have taken
  -- one, or retention reset the count; no record is overwritten.
  local cbId
  repeat
    cbId = id .. '-cb' .. redis.call('HINCRBY', prefix .. 'job:' .. id, 'callbacks', 1)
  until redis.call('EXISTS', prefix .. 'job:' .. cbId) == 0
  redis.call('HSET', prefix .. 'job:' .. cbId, 'type', 'spool.callback',
             'payload', cjson.encode({ job = id, url = url, state = finalState }),
             'created_at', nowText, 'max_attempts', 10, 'backoff_base_ms', 1000, 'backoff_cap_ms', 300000,
             'seq', 1, 'state', 'waiting')
  redis.call('LPUSH', prefix .. 'waiting', cbId)
  if redis.call('LLEN', prefix .. 'wake') == 0 then redis.call('LPUSH', prefix .. 'wake', '1') end
end

local codes, doneIds, doneScores, queueEvents = {}, {}, {}, {}
for i = 3, #ARGV, 3 do
  local id, token = ARGV[i], ARGV[i + 1]
  local jobKey = prefix .. 'job:' .. id
  local job = redis.call('HMGET', jobKey, 'state', 'token', 'attempts', 'key', 'key_ttl_ms', 'callback',
                         'lease_until', 'seq')
  local code = 1
  if not job[1] then code = -1
  elseif job[1] ~= 'active' then code = -2
  elseif job[2] ~= token then code = -3
  else
    -- lease_until, or the leases set for a record claimed before that field existed.
    local deadline = tonumber(job[7]) or tonumber(redis.call('ZSCORE', leasesKey, id))
    if not deadline or deadline < now then code = -4 end
  end
  codes[#codes + 1] = code
  if code == 1 then
    local seq = string.format('%d', (tonumber(job[8]) or 0) + 1)
    -- token and lease_until stay: every fenced script checks state = active first.
    -- nowText as given: Lua's number-to-text conversion (printf %.14g) is costly.
    redis.call('HSET', jobKey, 'state', 'completed', 'result', ARGV[i + 2], 'finished_at', nowText, 'seq', seq)
    doneIds[#doneIds + 1] = id
    doneScores[#doneScores + 1] = nowText
    doneScores[#doneScores + 1] = id
    if job[4] then redis.call('PEXPIRE', prefix .. 'unique:' .. job[4], whole(job[5]) or 86400000) end
    if job[6] then scheduleCallback(id, job[6], 'completed') end
    local event = '{"event":"completed","id":' .. quote(id) .. ',"queue":' .. queueText
      .. ',"state":"completed","attempt":' .. (job[3] or '0') .. ',"at":' .. nowText .. ',"seq":' .. seq .. '}'
    queueEvents[#queueEvents + 1] = event
    publishToJob(id, event)
  end
end
if #doneIds == 0 then return codes end

-- One write each to the leases, the completed set and the counter for the
-- whole batch. Records' seq were written above, before the count trim below,
-- which may delete these very records (keep 0).
redis.call('ZREM', leasesKey, unpack(doneIds))
local completedKey = prefix .. 'completed'
redis.call('ZADD', completedKey, unpack(doneScores))
local total = redis.call('HINCRBY', prefix .. 'stats', 'completed', #doneIds)
redis.call('PUBLISH', prefix .. 'events', table.concat(queueEvents, '\n'))

-- The count bound is checked on every call when keep < 64, else when the
-- completed counter passes a multiple of 16, with keep/64 of slack.
if keep >= 0 and (keep < 64 or math.floor(total / 16) ~= math.floor((total - #doneIds) / 16)) then
  local excess = redis.call('ZCARD', completedKey) - keep
  if excess > math.floor(keep / 64) then
    local old = redis.call('ZPOPMIN', completedKey, math.min(excess, 100))
    local doomed = {}
    for j = 1, #old, 2 do doomed[#doomed + 1] = prefix .. 'job:' .. old[j] end
    redis.call('DEL', unpack(doomed))
  end
end
return codes
