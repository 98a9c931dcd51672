-- trim: delete finished jobs (completed, dead, cancelled) older than their
-- retention age or beyond their retention count, with their records.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:guard:trim  string  SET NX PX <interval>: the sweep's ticket
--   P:{Q}:completed   zset    id -> finished_at (ms)
--   P:{Q}:dead        zset    id -> finished_at (ms)
--   P:{Q}:cancelled   zset    id -> finished_at (ms)
--   P:{Q}:job:<id>    hash    deleted with its id
-- ARGV[1] -> now, Unix time in ms
-- ARGV[2] -> guard interval in ms; 0 trims unconditionally
-- ARGV[3] -> at most this many deletions per call
-- ARGV[4], ARGV[5] -> completed: keep count (-1 none), keep age in ms (-1 none)
-- ARGV[6], ARGV[7] -> dead: keep count, keep age in ms
-- ARGV[8], ARGV[9] -> cancelled: keep count, keep age in ms
-- Returns: the number of jobs deleted (the caller calls again, with guard 0,
--          while it equals the limit); -1 when another trim ran within the interval;
--          -8 when an argument is not a whole number or the limit is below 1.
-- Keeps: invariant 6 (bounded memory).

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else (Lua's tonumber also takes "nan", "inf", "1e3", spaces).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local now = whole(ARGV[1])
local guardMs = whole(ARGV[2] or '0')
local budget = whole(ARGV[3] or '1000')
if not now or not guardMs or not budget or budget < 1 then return -8 end
for i = 4, 9 do
  if ARGV[i] and not whole(ARGV[i]) then return -8 end
end

if guardMs > 0 and not redis.call('SET', prefix .. 'guard:trim', now, 'PX', guardMs, 'NX') then
  return -1
end

local removed = 0
local function drop(key, ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', key, id)
    redis.call('DEL', prefix .. 'job:' .. id)
    removed = removed + 1
  end
end

local sets = { { 'completed', 4 }, { 'dead', 6 }, { 'cancelled', 8 } }
for _, set in ipairs(sets) do
  local key = prefix .. set[1]
  local keepCount = whole(ARGV[set[2]]) or -1
  local keepAge = whole(ARGV[set[2] + 1]) or -1
  if keepAge >= 0 and budget - removed > 0 then
    drop(key, redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. (now - keepAge), 'LIMIT', 0, budget - removed))
  end
  if keepCount >= 0 and budget - removed > 0 then
    local excess = redis.call('ZCARD', key) - keepCount
    if excess > 0 then
      drop(key, redis.call('ZRANGE', key, 0, math.min(excess, budget - removed) - 1))
    end
  end
end
return removed
