-- enqueue: create a job and put it in the waiting list, or in the delayed set
-- when it should run later.
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
-- ARGV[1] -> job id, "<queue>.<suffix>" (suffix [0-9A-Za-z_-]{1,64}); the caller makes it
-- ARGV[2] -> job type (handler name)
-- ARGV[3] -> payload (JSON text)
-- ARGV[4] -> now, Unix time in ms
-- ARGV[5] -> run_at in ms; 0 or <= now means run now
-- ARGV[6] -> max attempts (>= 1)
-- ARGV[7..] -> optional field/value pairs stored on the job: timeout_ms,
--             priority (integer -100..100, default 0; higher runs first),
--             backoff_base_ms, backoff_cap_ms, callback, key (idempotency key),
--             key_ttl_ms (how long the key outlives the finished job)
-- Returns: the job id; with a `key` that names a job that still exists, that
--          job's id (nothing is created); -5 when a job with this id already
--          exists; -8 on a bad argument.
-- Publishes: {"event":"enqueued",...} on P:{Q}:events and P:{Q}:events:<id>.
-- Keeps: invariant 4 (the id lands in exactly one of waiting / delayed).

local prefix = KEYS[1]
local id = ARGV[1]
local jobType = ARGV[2]
local payload = ARGV[3]
local now = tonumber(ARGV[4])
local runAt = tonumber(ARGV[5]) or 0
local maxAttempts = tonumber(ARGV[6])

local jobKey = prefix .. 'job:' .. id
local queue = string.match(prefix, '{([^}]*)}:$')

if not now or not maxAttempts or maxAttempts < 1 or not queue then return -8 end
if redis.call('EXISTS', jobKey) == 1 then return -5 end

-- Times and counts as the caller sent them: Lua's number-to-text conversion
-- (printf %.14g) is a visible share of the CPU.
local fields = { 'type', jobType, 'payload', payload, 'created_at', ARGV[4],
                 'max_attempts', ARGV[6], 'seq', '1' }
local priority, key = 0, nil
if #ARGV > 6 then
  local allowed = { timeout_ms = true, priority = true, backoff_base_ms = true,
                    backoff_cap_ms = true, callback = true, key = true, key_ttl_ms = true }
  for i = 7, #ARGV, 2 do
    if not allowed[ARGV[i]] or ARGV[i + 1] == nil then return -8 end
    if ARGV[i] == 'priority' then
      priority = tonumber(ARGV[i + 1])
      if not priority or priority ~= math.floor(priority) or priority < -100 or priority > 100 then return -8 end
    elseif ARGV[i] == 'key' then
      key = ARGV[i + 1]
    end
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
  end
end

-- Idempotency: the key names the job it made while that job is kept; until it
-- finishes the key has no expiry, then it lasts key_ttl_ms (set by the script
-- that finishes the job).
if key then
  local uniqueKey = prefix .. 'unique:' .. key
  local existing = redis.call('GET', uniqueKey)
  if existing and redis.call('EXISTS', prefix .. 'job:' .. existing) == 1 then return existing end
  redis.call('SET', uniqueKey, id)
end

local state
if runAt > now then
  state = 'delayed'
  fields[#fields + 1] = 'run_at'
  fields[#fields + 1] = ARGV[5]
  redis.call('ZADD', prefix .. 'delayed', ARGV[5], id)
else
  state = 'waiting'
  -- A wake token only when the ready set was empty: with jobs already waiting,
  -- either a token is there or a worker that took one is claiming, and that
  -- claim passes the token on while jobs remain (claim.lua, ARGV[7]).
  local first
  if priority == 0 then
    first = redis.call('LPUSH', prefix .. 'waiting', id) == 1
  else
    local order = redis.call('INCR', prefix .. 'pseq') % 1099511627776
    redis.call('ZADD', prefix .. 'prioritized', (100 - priority) * 1099511627776 + order, id)
    first = true
  end
  if first and redis.call('LLEN', prefix .. 'wake') == 0 then
    redis.call('LPUSH', prefix .. 'wake', '1')
  end
end
fields[#fields + 1] = 'state'
fields[#fields + 1] = state
redis.call('HSET', jobKey, unpack(fields))
redis.call('HINCRBY', prefix .. 'stats', 'enqueued', 1)

-- Event text for ids and names: quoted, escaped only when needed.
local function quote(s)
  if string.find(s, '[%c"\\]') then return cjson.encode(s) end
  return '"' .. s .. '"'
end
local event = '{"event":"enqueued","id":' .. quote(id) .. ',"queue":' .. quote(queue) .. ',"type":' .. quote(jobType)
  .. ',"state":"' .. state .. '","at":' .. ARGV[4] .. (runAt > now and (',"run_at":' .. ARGV[5]) or '') .. ',"seq":1}'
redis.call('PUBLISH', prefix .. 'events', event)
redis.call('PUBLISH', prefix .. 'events:' .. id, event)
return id
