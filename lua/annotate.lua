-- annotate: set informational fields on an existing job record (callback
-- delivery status), never creating a record that retention already deleted.
-- Not a state change: no event is published.
--
-- KEYS[1] -> queue prefix "P:{Q}:"
--   P:{Q}:job:<id>  hash  the fields below
-- ARGV[1] -> job id
-- ARGV[2..] -> field/value pairs; only callback_status, callback_error and
--              callback_at are accepted
-- Returns: 1 set; 0 the job no longer exists; -8 a field that is not accepted.

local prefix = KEYS[1]
local jobKey = prefix .. 'job:' .. ARGV[1]
local allowed = { callback_status = true, callback_error = true, callback_at = true }
local fields = {}
for i = 2, #ARGV, 2 do
  if not allowed[ARGV[i]] or ARGV[i + 1] == nil then return -8 end
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
end
if redis.call('EXISTS', jobKey) == 0 then return 0 end
if #fields > 0 then redis.call('HSET', jobKey, unpack(fields)) end
return 1
