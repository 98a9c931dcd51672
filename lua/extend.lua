-- extend: renew the leases of several active jobs of one queue in one call
-- (a worker's heartbeat), each only if the caller still holds it.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:job:<id>  hash   read: state, token, cancel_requested; lease_until, the deadline,
--                          read and set to now + ARGV[2]
--   P:{Q}:leases    zset   id -> new deadline (ms)
-- ARGV[1] -> now, Unix time in ms
-- ARGV[2] -> lease length in ms; the new deadline is now + this
-- ARGV[3], ARGV[4] -> first job id and its lease token; more pairs may follow
-- Returns: an array with one code per pair, in order: 1 extended; 2 extended,
--          but a cancel was requested (stop the job: see cancel.lua); -1 job
--          missing; -2 not active; -3 token mismatch; -4 lease already expired.
--          -8 alone (not in a list) when now or the lease length is not a whole
--          number or the ids and tokens do not pair up (nothing changed).
-- Keeps: invariant 2 (an expired lease stays expired, so its holder is fenced out).

-- A whole number sent as decimal text of at most 16 characters, as a number; nil
-- for anything else. Lua's tonumber also takes "nan", "inf", "0x1f", "1e3" and
-- spaces: a NaN "now" passes every lease check (deadline < NaN is false).
local function whole(text)
  if type(text) == 'string' and #text <= 16 and string.find(text, '^%-?%d+$') then return tonumber(text) end
end

local prefix = KEYS[1]
local now = whole(ARGV[1])
local leaseMs = whole(ARGV[2])
if not now or not leaseMs or leaseMs < 1 or (#ARGV - 2) % 2 ~= 0 then return -8 end
local leasesKey = prefix .. 'leases'

local codes = {}
for i = 3, #ARGV - 1, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local jobKey = prefix .. 'job:' .. id
  local job = redis.call('HMGET', jobKey, 'state', 'token', 'cancel_requested', 'lease_until')
  local code
  if not job[1] then
    code = -1
  elseif job[1] ~= 'active' then
    code = -2
  elseif job[2] ~= token then
    code = -3
  else
    -- lease_until, or the leases set for a record claimed before that field existed.
    local deadline = tonumber(job[4]) or tonumber(redis.call('ZSCORE', leasesKey, id))
    if not deadline or deadline < now then
      code = -4
    else
      redis.call('ZADD', leasesKey, now + leaseMs, id)
      redis.call('HSET', jobKey, 'lease_until', now + leaseMs)
      code = job[3] and 2 or 1
    end
  end
  codes[#codes + 1] = code
end
return codes
