-- pause: pause or resume a queue. While paused, claim returns -7 and workers
-- claim nothing from it; jobs keep being enqueued; running jobs go on.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:paused   string  present while paused (value: when, in ms)
--   P:{Q}:wake     list    on resume, re-armed so idle workers look at once
-- ARGV[1] -> "1" to pause, "0" to resume
-- ARGV[2] -> now, Unix time in ms
-- Returns: 1 when the state changed, 0 when the queue already was so; -8 when
--          now is not a whole number.
-- Publishes: {"event":"paused"|"resumed","queue":…,"at":…} on the queue channel.

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else (Lua's tonumber also takes "nan", "inf", "1e3", spaces).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local pause = ARGV[1] == '1'
local now = whole(ARGV[2])
if not now then return -8 end

local queue = string.match(prefix, '{([^}]*)}:$')
local pausedKey = prefix .. 'paused'

local changed
if pause then
  changed = redis.call('SET', pausedKey, now, 'NX') and 1 or 0
else
  changed = redis.call('DEL', pausedKey)
  local ready = redis.call('LLEN', prefix .. 'waiting') + redis.call('ZCARD', prefix .. 'prioritized')
  if changed == 1 and ready > 0 and redis.call('LLEN', prefix .. 'wake') == 0 then
    redis.call('LPUSH', prefix .. 'wake', '1')
  end
end
if changed == 1 then
  redis.call('PUBLISH', prefix .. 'events', cjson.encode({ event = pause and 'paused' or 'resumed', queue = queue, at = now }))
end
return changed
