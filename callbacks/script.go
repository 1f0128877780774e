package callbacks

import "github.com/redis/go-redis/v9"

// storeScript stores one callback in one round trip.
//
// KEYS[1] dedup marker {P}:cb:seen:<event_id>
// KEYS[2] SMSId map   {P}:sms:<smsid>
// KEYS[3] stream (receipts or replies)
// KEYS[4] suppression set {P}:suppressed
// ARGV[1] key base "{P}:"   ARGV[2] dedup TTL ms   ARGV[3] MAXLEN (<=0: none)
// ARGV[4] kind   ARGV[5] receipt status (delivered|failed) or ""
// ARGV[6] opt-out action (stop|start|"")   ARGV[7] number for opt-out
// ARGV[8] now (unix ms)   ARGV[9] event_id   ARGV[10] err text for failed
// ARGV[11..] the event's own stream fields, name then value
//
// Returns {stored (0 = duplicate), stream entry id, moved (1 = the record's
// status moved forward)}.
//
// Writes come before the dedup marker: Redis does not roll a script back,
// so a script that fails half-way leaves no marker and a retry (or spool
// replay) stores the callback again instead of dropping it as a duplicate.
// The message record is addressed from the SMSId map; it shares the {P}
// hash tag with every declared key.
var storeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, '', 0}
end
local base = ARGV[1]
local kind = ARGV[4]
local mid = redis.call('GET', KEYS[2])
local meta = '{}'
local moved = 0
if mid then
  local mkey = base .. 'msg:' .. mid
  local rec = redis.call('HMGET', mkey, 'meta', 'status')
  if rec[1] then meta = rec[1] end
  if kind == 'receipt' and rec[2] then
    local s = rec[2]
    if s == 'queued' or s == 'scheduled' or s == 'sending' or s == 'submitted' then
      local st = ARGV[5]
      if st == 'failed' then
        redis.call('HSET', mkey, 'status', st, 't_' .. st, ARGV[8], 'err', ARGV[10])
      else
        redis.call('HSET', mkey, 'status', st, 't_' .. st, ARGV[8])
      end
      moved = 1
    end
  end
else
  mid = ''
end
if ARGV[6] == 'stop' and ARGV[7] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[7])
elseif ARGV[6] == 'start' and ARGV[7] ~= '' then
  redis.call('SREM', KEYS[4], ARGV[7])
end
local args = {'XADD', KEYS[3]}
local maxlen = tonumber(ARGV[3])
if maxlen > 0 then
  args[#args+1] = 'MAXLEN'
  args[#args+1] = '~'
  args[#args+1] = maxlen
end
args[#args+1] = '*'
args[#args+1] = 'event_id'
args[#args+1] = ARGV[9]
args[#args+1] = 'kind'
args[#args+1] = kind
args[#args+1] = 'message_id'
args[#args+1] = mid
for i = 11, #ARGV do args[#args+1] = ARGV[i] end
args[#args+1] = 'metadata'
args[#args+1] = meta
local id = redis.call(unpack(args))
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return {1, id, moved}
`)
