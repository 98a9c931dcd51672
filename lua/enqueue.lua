-- enqueue: create jobs and put each in the waiting list, or in the delayed set
-- when it should run later. One call takes one job or a batch of them.
--
-- KEYS[1] -> queue prefix "P:{Q}:" (string prefix; every key below is derived
--            from it, so the script touches one hash slot)
--   P:{Q}:job:<id>  hash   the job record
--   P:{Q}:waiting   list   ids ready to run at priority 0 (LPUSH here, claim RPOPs)
--   P:{Q}:prioritized zset id -> (100 - priority) * 2^40 + P:{Q}:pseq, for priority != 0
--   P:{Q}:pseq      string counter that keeps equal priorities in FIFO order
--   P:{Q}:unique:<key> string the id of the job enqueued with idempotency key <key>
--   P:{Q}:delayed   zset   id -> run_at (ms)
--   P:{Q}:wake      list   0 or 1 token; idle workers block on it; pushed when the
--                          ready set was empty
--   P:{Q}:stats     hash   counters
--   P:{Q}:watched   zset   read: the jobs whose own channel has readers (watch.lua)
-- ARGV[1] -> now, Unix time in ms
-- ARGV[2..] -> the jobs, one after another, each as:
--   id           "<queue>.<suffix>" (suffix [0-9A-Za-z_-]{1,64}); the caller makes it
--   type         job type (handler name)
--   payload      JSON text
--   run_at       ms; 0 or <= now means run now
--   max_attempts >= 1
--   n            how many arguments follow for this job (an even number, often 0)
--   n arguments  optional field/value pairs stored on the job, each name at most
--                once: timeout_ms, priority (integer -100..100, default 0; higher
--                runs first), backoff_base_ms, backoff_cap_ms, callback, key
--                (idempotency key), key_ttl_ms (how long the key outlives the
--                finished job)
-- Numbers (now, run_at, max_attempts and the *_ms and priority values) are
-- whole numbers in decimal text of at most 16 characters, priority and run_at may
-- be negative; anything else ("1.5", "1e3", "nan", " 5") is a bad argument.
-- Returns: one reply per job, in order: the job id; with a `key` that names a
--          job that still exists, that job's id (nothing is created); -5 when a
--          job with this id already exists; -8 on a bad argument. A job's error
--          does not stop the others. -8 alone (not in a list) when now is not
--          a whole number, the prefix has no {Q}, or the arguments do not split
--          into jobs (nothing is created).
-- Publishes: {"event":"enqueued",...} per job created: all of them in one message on
--            P:{Q}:events, one per line, in order; each also alone on
--            P:{Q}:events:<id> when the id is in P:{Q}:watched.
-- Keeps: invariant 4 (the id lands in exactly one of waiting / prioritized / delayed).

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else. Lua's tonumber also takes "nan", "inf", "0x1f", "1e3" and
-- spaces, which would pass every comparison and then fail a write halfway.
-- The jobs of a batch mostly share their texts ("0", "3"): each is checked once.
local find, wholes = string.find, {}
local function whole(text)
  if text == nil then return nil end
  local n = wholes[text]
  if n == nil then
    n = #text <= 16 and find(text, '^%-?%d+$') and tonumber(text) or false
    wholes[text] = n
  end
  return n or nil
end

local prefix = KEYS[1]
local nowText = ARGV[1]
local now = whole(nowText)
local queue = string.match(prefix, '{([^}]*)}:$')
if not now or not queue then return -8 end

-- The jobs' boundaries first: a malformed list creates nothing.
local starts = {}
local i = 2
while i <= #ARGV do
  local n = whole(ARGV[i + 5])
  if not n or n < 0 or n % 2 ~= 0 or i + 5 + n > #ARGV then return -8 end
  starts[#starts + 1] = i
  i = i + 6 + n
end

-- JSON text of an id or a name, quotes included (C code: cheaper than a
-- Lua pattern test for the characters that need escaping).
local quote = cjson.encode
-- The optional fields, and for the numeric ones the least value accepted.
local allowed = { timeout_ms = 0, priority = -100, backoff_base_ms = 0,
                  backoff_cap_ms = 0, callback = true, key = true, key_ttl_ms = 0 }
local eventsKey = prefix .. 'events'
local queueText = quote(queue)
-- This call's events for the queue's channel, sent at the end in one message.
local queueEvents = {}

-- The job's own channel only while a reader follows the job (watch.lua lists
-- it in P:{Q}:watched): a ZSCORE per job only when somebody follows a job of
-- this queue (`watching`, asked below).
local watchedKey = prefix .. 'watched'
local watching = false
local function publishToJob(id, event)
  if watching and redis.call('ZSCORE', watchedKey, id) then
    redis.call('PUBLISH', prefix .. 'events:' .. id, event)
  end
end

-- Whether any id of the batch is taken and whether anybody follows a job,
-- asked in one EXISTS: the usual answer is no to both, and then no job needs
-- a call of its own for it (an id given twice in the batch is caught by
-- `made`). Only a count above 0 asks about the watched set alone. A batch too
-- long to unpack asks both per job.
local jobKeys = {}
for j = 1, #starts do jobKeys[j] = prefix .. 'job:' .. ARGV[starts[j]] end
local anyTaken = true
if #starts <= 1000 then
  local found = redis.call('EXISTS', watchedKey, unpack(jobKeys))
  if found > 0 then watching = redis.call('EXISTS', watchedKey) == 1 end
  anyTaken = found > (watching and 1 or 0)
else
  watching = redis.call('EXISTS', watchedKey) == 1
end

local replies, ready, made = {}, {}, {}
local created, wake = 0, false
for j = 1, #starts do
  local at = starts[j]
  local id, jobType, payload, runAtText, attemptsText = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
  local last = at + 5 + whole(ARGV[at + 5])
  local runAt = whole(runAtText)
  local maxAttempts = whole(attemptsText)
  local jobKey = jobKeys[j]
  -- Times and counts as the caller sent them: Lua's number-to-text conversion
  -- (printf %.14g) is a visible share of the CPU.
  local fields = { 'type', jobType, 'payload', payload, 'created_at', nowText,
                   'max_attempts', attemptsText, 'seq', '1' }
  local priority, key, reply = 0, nil, nil
  if not runAt or not maxAttempts or maxAttempts < 1 then reply = -8 end
  local seen = last > at + 5 and {} or nil
  for f = at + 6, last, 2 do
    if reply then break end
    local name, value = ARGV[f], ARGV[f + 1]
    local least = allowed[name]
    if not least or seen[name] then reply = -8 break end
    seen[name] = true
    if least ~= true then
      local n = whole(value)
      if not n or n < least or (name == 'priority' and n > 100) then reply = -8 break end
      if name == 'priority' then priority = n end
    elseif name == 'key' then
      key = value
    end
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  if not reply and (made[id] or (anyTaken and redis.call('EXISTS', jobKey) == 1)) then reply = -5 end

  -- Idempotency: the key names the job it made while that job is kept; until it
  -- finishes the key has no expiry, then it lasts key_ttl_ms (set by the script
  -- that finishes the job).
  if not reply and key then
    local uniqueKey = prefix .. 'unique:' .. key
    local existing = redis.call('GET', uniqueKey)
    if existing and redis.call('EXISTS', prefix .. 'job:' .. existing) == 1 then
      reply = existing
    else
      redis.call('SET', uniqueKey, id)
    end
  end

  if not reply then
    local state
    if runAt > now then
      state = 'delayed'
      fields[#fields + 1] = 'run_at'
      fields[#fields + 1] = runAtText
      redis.call('ZADD', prefix .. 'delayed', runAtText, id)
    else
      state = 'waiting'
      if priority == 0 then
        ready[#ready + 1] = id
      else
        local order = redis.call('INCR', prefix .. 'pseq') % 1099511627776
        redis.call('ZADD', prefix .. 'prioritized', (100 - priority) * 1099511627776 + order, id)
        wake = true
      end
    end
    fields[#fields + 1] = 'state'
    fields[#fields + 1] = state
    redis.call('HSET', jobKey, unpack(fields))
    local event = '{"event":"enqueued","id":' .. quote(id) .. ',"queue":' .. queueText .. ',"type":' .. quote(jobType)
      .. ',"state":"' .. state .. '","at":' .. nowText .. (state == 'delayed' and (',"run_at":' .. runAtText) or '') .. ',"seq":1}'
    queueEvents[#queueEvents + 1] = event
    publishToJob(id, event)
    created = created + 1
    made[id] = true
    reply = id
  end
  replies[j] = reply
end

-- The ready ids, oldest first at the tail, in pushes of at most 1000 (unpack's
-- limit is near 8000). A wake token only when the ready set was empty (the
-- list then holds just the ids pushed so far): with jobs already waiting,
-- either a token is there or a worker that took one is claiming, and that
-- claim passes the token on while jobs remain (claim.lua, ARGV[7]).
for first = 1, #ready, 1000 do
  local last = math.min(#ready, first + 999)
  if redis.call('LPUSH', prefix .. 'waiting', unpack(ready, first, last)) == last then wake = true end
end
if wake and redis.call('LLEN', prefix .. 'wake') == 0 then redis.call('LPUSH', prefix .. 'wake', '1') end
if created > 0 then redis.call('HINCRBY', prefix .. 'stats', 'enqueued', created) end
if #queueEvents > 0 then redis.call('PUBLISH', eventsKey, table.concat(queueEvents, '\n')) end
return replies
