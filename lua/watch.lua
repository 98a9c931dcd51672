-- watch: say that a reader follows one job's own channel, P:{Q}:events:<id>.
-- Scripts publish a job's events there only while its id is listed in
-- P:{Q}:watched, so jobs nobody follows cost no second PUBLISH per event.
-- A reader calls it after SUBSCRIBE and before it reads the record (so no
-- change falls between the two), then again every third of ARGV[2] while it
-- reads. There is no unwatch: an entry lapses after ARGV[2], and a finished
-- job publishes nothing more anyway.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:watched  zset  job id -> until when it is followed (ms, Redis server
--                        time, TIME: readers' clocks may differ); entries past
--                        due are dropped here, and the key expires with its
--                        latest entry
-- ARGV[1] -> job id
-- ARGV[2] -> for how long, in ms: a whole number from 1 to 3600000
-- Returns: 1 when the id was listed already (a renewal in time); 2 when it
--          was not (a first call, or a listing that lapsed: events published
--          meanwhile did not reach the job's channel, so read the record
--          again); -8 when the id is empty or ARGV[2] is not a whole number
--          from 1 to 3600000 (nothing is changed).

-- A whole number sent as decimal text of at most 16 characters, as a number;
-- nil for anything else (Lua's tonumber also takes "nan", "1e3", spaces).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local id = ARGV[1]
local ttl = whole(ARGV[2])
if not id or id == '' or not ttl or ttl < 1 or ttl > 3600000 then return -8 end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = prefix .. 'watched'
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%d', now))
-- GT: a shorter request never cuts another reader's time short. ZADD counts
-- the ids it added: 1 when this one was not listed (any lapsed entry was
-- dropped just above).
local added = redis.call('ZADD', key, 'GT', string.format('%d', now + ttl), id)
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', key, last[2])
return 1 + added
