-- purge: delete the jobs of a queue in one state, with their records. Active
-- jobs cannot be purged (their workers hold leases); cancel them instead.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:waiting, P:{Q}:prioritized  list, zset  for state "waiting"
--   P:{Q}:delayed                     zset  for state "delayed"
--   P:{Q}:retry                       zset  for state "failed"
--   P:{Q}:completed / dead / cancelled zset for those states
--   P:{Q}:job:<id>                    hash  deleted
--   P:{Q}:unique:<key>                string deleted when it names a purged job
--   P:{Q}:watched                     zset  read: a purged job a reader follows
--                                     gets a `purged` event on its own channel
--                                     P:{Q}:events:<id> (not the queue's), so
--                                     the reader stops at once
-- ARGV[1] -> state: waiting, delayed, failed, completed, dead or cancelled
-- ARGV[2] -> at most this many per call (the caller calls again while the
--            return equals it)
-- Returns: the number of jobs deleted; -8 for a state that cannot be purged, or
--          a limit that is not a whole number of at least 1.
-- Keeps: invariant 4 (an id and its record go together).

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else (Lua's tonumber also takes "nan", "inf", "1e3", spaces).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local state = ARGV[1]
local limit = whole(ARGV[2] or '1000')
-- At least 1: LRANGE from -0 would take the whole list.
if not limit or limit < 1 then return -8 end

local sets = { delayed = 'delayed', failed = 'retry', completed = 'completed',
               dead = 'dead', cancelled = 'cancelled' }
local ids
if state == 'waiting' then
  local key = prefix .. 'waiting'
  ids = redis.call('LRANGE', key, -limit, -1)
  if #ids > 0 then redis.call('LTRIM', key, 0, -(#ids + 1)) end
  if #ids < limit then
    local popped = redis.call('ZPOPMIN', prefix .. 'prioritized', limit - #ids)
    for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  end
elseif sets[state] then
  ids = {}
  local popped = redis.call('ZPOPMIN', prefix .. sets[state], limit)
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
else
  return -8
end
local queue = string.match(prefix, '{([^}]*)}:$')
local watched = redis.call('EXISTS', prefix .. 'watched') == 1
for _, id in ipairs(ids) do
  local jobKey = prefix .. 'job:' .. id
  local job = redis.call('HMGET', jobKey, 'key', 'seq')
  if job[1] and redis.call('GET', prefix .. 'unique:' .. job[1]) == id then redis.call('DEL', prefix .. 'unique:' .. job[1]) end
  redis.call('DEL', jobKey)
  if watched and redis.call('ZSCORE', prefix .. 'watched', id) then
    redis.call('PUBLISH', prefix .. 'events:' .. id, cjson.encode({ event = 'purged', id = id,
      queue = queue, seq = (tonumber(job[2]) or 0) + 1 }))
  end
end
return #ids
