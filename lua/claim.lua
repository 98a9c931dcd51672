-- claim: take the next waiting jobs, up to ARGV[8] of them (higher priorities
-- first, then the FIFO list of priority 0, then lower priorities), and make
-- each active by stamping a lease on it (deadline + token) in one step, so no
-- job is ever active without a lease: the leases set is the active place. A
-- per-queue rate limit is enforced here, across all workers.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:waiting   list   RPOP the oldest id of priority 0
--   P:{Q}:prioritized zset ZRANGE/ZREM its first id (score order)
--   P:{Q}:rate      zset   claim times (ms, Redis server time) within the rate window
--   P:{Q}:leases    zset   the active jobs: id -> lease deadline (ms)
--   P:{Q}:job:<id>  hash   state, attempts, worker, token, lease_until, started_at,
--                          seq; progress and progress_message cleared
--   P:{Q}:paused    string present while the queue is paused (read with
--                          P:{Q}:prioritized and P:{Q}:watched in one EXISTS)
--   P:{Q}:wake      list   re-armed while jobs remain (see ARGV[7])
--   P:{Q}:watched   zset   read: the jobs whose own channel has readers (watch.lua);
--                          ZSCORE per job only when the EXISTS above finds it
-- ARGV[1] -> now, Unix time in ms
-- ARGV[2] -> worker id (for the record and logs)
-- ARGV[3] -> lease token, unique per call (fences every later call on the job):
--            the first job gets it as is, the i-th (i >= 2) ARGV[3] .. '.' .. i
-- ARGV[4] -> lease length in ms (the visibility timeout)
-- ARGV[5] -> rate limit: at most this many claims per window; 0 or absent: none
-- ARGV[6] -> rate window in ms, measured on the Redis server's clock (TIME), not
--            ARGV[1]: a worker descheduled between reading its clock and
--            sending the script must not widen the window
-- ARGV[7] -> "1" (or absent): the caller woke on a wake token, so pass the
--            token on to the next idle worker while jobs remain; "0": the
--            caller is a busy worker claiming right after finishing a job, and
--            idle workers were already woken when the jobs arrived
-- ARGV[8] -> the most jobs to claim (1 when absent, at most 1000); fewer when
--            fewer wait or the rate limit leaves room for fewer
-- Returns: a list of the jobs claimed, oldest first, each
--          {id, type, payload, attempts, max_attempts, timeout_ms, lease_deadline, token};
--          0 when nothing is waiting; -7 when the queue is paused;
--          {-10, wait_ms} when the rate limit is reached (try again in wait_ms);
--          -8 when now, the lease length or the rate arguments are not whole
--          numbers (nothing changed).
-- Publishes: {"event":"active",...} per job claimed: all of them in one message on
--            P:{Q}:events, one per line, in order; each also alone on
--            P:{Q}:events:<id> when the id is in P:{Q}:watched.
-- Keeps: invariants 2 (one fenced lease) and 4 (waiting -> active atomically).

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else. Lua's tonumber also takes "nan", "inf", "0x1f", "1e3" and
-- spaces: a NaN "now" passes every lease check (deadline < NaN is false).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local now = whole(ARGV[1])
local worker = ARGV[2]
local token = ARGV[3]
local leaseMs = whole(ARGV[4])
local rateLimit = whole(ARGV[5] or '0')
local rateWindow = whole(ARGV[6] or '1000')
local rearm = ARGV[7] ~= '0'
local most = math.min(1000, math.max(1, math.floor(tonumber(ARGV[8]) or 1)))
if not now or not leaseMs or leaseMs < 1 or not rateLimit or not rateWindow or rateWindow < 1
    or type(worker) ~= 'string' or type(token) ~= 'string' then
  return -8
end
-- Numbers go to Redis and into events as text made once with %d: Lua's own
-- number-to-text conversion is printf's %.14g, a visible share of the CPU.
local function int(n) return string.format('%d', n) end

-- One call answers the usual case: not paused, no jobs at other priorities,
-- nobody following a job (P:{Q}:watched, see publishToJob). When it counts a
-- key, a second asks about the pause and the watched set together, so a queue
-- with prioritized jobs pays one more call; only when that one counts a key
-- is the pause asked about alone.
local pausedKey, watchedKey = prefix .. 'paused', prefix .. 'watched'
local flags = redis.call('EXISTS', pausedKey, prefix .. 'prioritized', watchedKey)
local flagged, watching = false, false
if flags > 0 then
  local others = redis.call('EXISTS', pausedKey, watchedKey)
  if others > 0 then
    if redis.call('EXISTS', pausedKey) == 1 then return -7 end
    watching = true
  end
  flagged = flags > others
end

local rateKey = prefix .. 'rate'
local serverNow = now
if rateLimit > 0 then
  local t = redis.call('TIME')
  serverNow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', rateKey, '-inf', serverNow - rateWindow)
  local room = rateLimit - redis.call('ZCARD', rateKey)
  if room <= 0 then
    local oldest = redis.call('ZRANGE', rateKey, 0, 0, 'WITHSCORES')
    return { -10, math.max(1, tonumber(oldest[2]) + rateWindow - serverNow) }
  end
  most = math.min(most, room)
end

-- The next ids, up to `want`. Scores below 100 * 2^40 are priorities above 0;
-- without prioritized jobs one RPOP with a count takes them all.
local waitingKey = prefix .. 'waiting'
local prioritizedKey = prefix .. 'prioritized'
local normal = 100 * 1099511627776
local function popNext()
  local top = redis.call('ZRANGE', prioritizedKey, 0, 0, 'WITHSCORES')
  if top[1] and tonumber(top[2]) < normal then
    redis.call('ZREM', prioritizedKey, top[1])
    return top[1]
  end
  local id = redis.call('RPOP', waitingKey)
  if id then return id end
  if top[1] then
    redis.call('ZREM', prioritizedKey, top[1])
    return top[1]
  end
  return nil
end
local function pop(want)
  if not flagged then return redis.call('RPOP', waitingKey, want) or {} end
  local ids = {}
  for _ = 1, want do
    local id = popNext()
    if not id then break end
    ids[#ids + 1] = id
  end
  return ids
end

-- JSON text of an id or a name, quotes included (C code: cheaper than a
-- Lua pattern test for the characters that need escaping).
local quote = cjson.encode
local queueText = quote(string.match(prefix, '{([^}]*)}:$'))
local workerText = quote(worker)
local deadline = now + leaseMs
local deadlineText = int(deadline)
local startedText = rateLimit > 0 and int(serverNow) or ARGV[1]

-- The job's own channel only while a reader follows the job (watch.lua lists
-- it in P:{Q}:watched): a ZSCORE per job only when somebody follows a job of
-- this queue (`watching`, asked above).
local function publishToJob(id, event)
  if watching and redis.call('ZSCORE', watchedKey, id) then
    redis.call('PUBLISH', prefix .. 'events:' .. id, event)
  end
end

-- An id whose record is gone (deleted by hand) is dropped rather than claimed;
-- up to 100 of them are passed over in one call.
local claimed, leases, queueEvents = {}, {}, {}
local popped = 0
while #claimed < most and popped < most + 100 do
  local ids = pop(most - #claimed)
  if #ids == 0 then break end
  popped = popped + #ids
  for _, id in ipairs(ids) do
    local jobKey = prefix .. 'job:' .. id
    local job = redis.call('HMGET', jobKey, 'type', 'payload', 'max_attempts', 'timeout_ms',
                           'attempts', 'seq', 'progress')
    if job[1] then
      local n = #claimed + 1
      local jobToken = n == 1 and token or token .. '.' .. n
      local attempts = (tonumber(job[5]) or 0) + 1
      local attemptsText, seqText = int(attempts), int((tonumber(job[6]) or 0) + 1)
      leases[#leases + 1] = deadlineText
      leases[#leases + 1] = id
      -- Under a rate limit, started_at is the server time the limit counted.
      redis.call('HSET', jobKey, 'state', 'active', 'attempts', attemptsText, 'seq', seqText,
                 'started_at', startedText, 'worker', worker, 'token', jobToken, 'lease_until', deadlineText)
      -- A new attempt starts from nothing, not from the last attempt's progress.
      if job[7] then redis.call('HDEL', jobKey, 'progress', 'progress_message') end
      -- The member is the claim's token, unique per claim: an id with its
      -- attempt is not (a released job is claimed again at the same attempt).
      if rateLimit > 0 then redis.call('ZADD', rateKey, startedText, jobToken) end
      local event = '{"event":"active","id":' .. quote(id) .. ',"queue":' .. queueText
        .. ',"state":"active","attempt":' .. attemptsText .. ',"worker":' .. workerText .. ',"at":' .. ARGV[1]
        .. ',"seq":' .. seqText .. '}'
      queueEvents[n] = event
      publishToJob(id, event)
      claimed[n] = { id, job[1], job[2] or 'null', attempts, tonumber(job[3]) or 1, tonumber(job[4]) or 0,
                     deadline, jobToken }
    end
  end
end
if #claimed == 0 then return 0 end

-- One write for every lease of the call, one message for its events.
redis.call('ZADD', prefix .. 'leases', unpack(leases))
redis.call('PUBLISH', prefix .. 'events', table.concat(queueEvents, '\n'))
if rateLimit > 0 then redis.call('PEXPIRE', rateKey, rateWindow) end
if rearm and (redis.call('LLEN', waitingKey) > 0 or redis.call('ZCARD', prioritizedKey) > 0)
    and redis.call('LLEN', prefix .. 'wake') == 0 then
  redis.call('LPUSH', prefix .. 'wake', '1')
end
return claimed
