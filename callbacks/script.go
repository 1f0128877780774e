package callbacks

import (
	"github.com/redoxygen/roxd/internal/store"
)

// storeScript stores one callback in one round trip.
//
// KEYS[1] dedup marker {P}:cb:seen:<event_id>
// KEYS[2] SMSId map   {P}:sms:<smsid>
// KEYS[3] stream (receipts or replies)
// KEYS[4] suppression set {P}:suppressed
// KEYS[5] deferred callbacks {P}:cb:deferred (zset: event JSON → due ms)
// KEYS[6] (optional) the outbox {P}:cb:outbox: given when the stream lives
// in another Redis Cluster slot than {P} (a script cannot XADD there): the
// entry's XADD fields then go into this hash (event id → JSON) instead of
// the stream, and pushScript appends them to the stream in a second call
// (outbox.go)
// ARGV[1] key base "{P}:"   ARGV[2] dedup TTL ms   ARGV[3] MAXLEN (<=0: none)
// ARGV[4] kind   ARGV[5] receipt status (delivered|failed) or ""
// ARGV[6] opt-out action (stop|start|"")   ARGV[7] E.164 number for the
//
//	opt-out ("": the record's `to` once the SMSId is known)
//
// ARGV[8] now (unix ms)   ARGV[9] event_id   ARGV[10] err text for failed
// ARGV[11] defer until (unix ms; 0: push even when the SMSId is unknown,
// unless a recipient is in flight to the callback's number: then it waits
// 30 s more, see store.ReconcileLua)
// ARGV[12] attempt number written into a deferred member
// ARGV[13] the deferred member being resolved ("" for a new callback)
// ARGV[14] "1" when the opt-out was applied already (when the callback was
//
//	deferred): ARGV[6] and ARGV[7] then say what was done
//
// ARGV[15..] the event's own stream fields, name then value
//
// Returns {code, stream entry id, moved (1 = the record's status moved
// forward)}; code is 0 duplicate, 1 stored, 2 deferred, 3 gone (the member
// was resolved by another receiver already), 4 stored with the stream entry
// in the outbox (KEYS[6]; the second element is then the outbox JSON).
//
// Opt-out: STOP adds the number to KEYS[4]; START removes it unless an
// operator suppressed it ({P}:suppressed:operator). A reply's entry gets
// optout (stop | start | "": what was done to the list) and optout_number.
// A receipt's entry gets status_after: the message's (public) status after
// it, "" when the SMSId is unknown; a receipt moves the record by
// roxd_can (failed → delivered included: a delivery receipt is proof).
//
// An unknown SMSId with ARGV[11] > 0 is not pushed: the event is added to
// KEYS[5] (the spool's JSON of the event plus "attempt") due at ARGV[11],
// without a dedup marker, so that the resolver can correlate it once the
// worker has recorded the SMSId. Its opt-out action is applied at once
// when the number is known, and the member says so (optout_done: it is
// never applied twice); when ReplyFrom is no phone number the action stays
// in the member and is applied to the record's `to` once the SMSId is.
//
// Writes come before the dedup marker: Redis does not roll a script back,
// so a script that fails half-way leaves no marker and a retry (or spool
// replay) stores the callback again instead of dropping it as a duplicate.
// For the same reason a resolved member is removed last, after the writes
// it stands for: the script is atomic, so checking it first (ZSCORE) and
// removing it at the end claims it exactly like removing it first would,
// but an error half-way leaves it in place to be retried rather than lost.
// The message record is addressed from the SMSId map; it shares the {P}
// hash tag with every declared key.
var storeScript = store.NewScript("callbacks.store", store.TransitionLua+store.ReconcileLua+`
local member = ARGV[13]
if member ~= '' and not redis.call('ZSCORE', KEYS[5], member) then
  return {3, '', 0}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if member ~= '' then redis.call('ZREM', KEYS[5], member) end
  return {0, '', 0}
end
local base = ARGV[1]
local kind = ARGV[4]
local mid = redis.call('GET', KEYS[2])
local mkey = ''
if mid then mkey = base .. 'msg:' .. mid end
local action, num = ARGV[6], ARGV[7]
local optout, optnum = '', ''
if ARGV[14] == '1' then
  optout, optnum = action, num
elseif action ~= '' then
  if num == '' and mid then num = redis.call('HGET', mkey, 'to') or '' end
  if num ~= '' then
    optnum = num
    if action == 'stop' then
      redis.call('SADD', KEYS[4], num)
      optout = 'stop'
    elseif action == 'start' then
      if redis.call('SISMEMBER', base .. 'suppressed:operator', num) == 0 then
        redis.call('SREM', KEYS[4], num)
        optout = 'start'
      end
    end
  end
end
local du = tonumber(ARGV[11])
if not mid then
  -- reconcile (internal/store/reconcile.go): evidence for a recipient
  -- whose request was never answered, or kept while one is in flight
  local sf = {}
  for i = 15, #ARGV - 1, 2 do sf[ARGV[i]] = ARGV[i + 1] end
  local rcid, inflight = roxd_rc_callback(base, kind, sf, ARGV[9], tonumber(ARGV[8]), ARGV[10], string.sub(KEYS[2], #base + 5))
  if rcid then
    mid = rcid
    mkey = base .. 'msg:' .. mid
  elseif inflight and du <= 0 then
    local t = redis.call('TIME')
    du = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + 30000
  end
end
if not mid and du > 0 then
  local ev = {kind = kind, event_id = ARGV[9], attempt = tonumber(ARGV[12])}
  for i = 15, #ARGV, 2 do ev[ARGV[i]] = ARGV[i + 1] end
  if ARGV[14] == '1' or optnum ~= '' then
    if optout ~= '' then ev.optout = optout end
    if optnum ~= '' then ev.optout_number = optnum end
    ev.optout_done = true
  elseif action ~= '' then
    ev.optout = action
  end
  local j = cjson.encode(ev)
  j = string.sub(j, 1, -2) .. ',"received_ms":' .. ARGV[8] .. '}'
  redis.call('ZADD', KEYS[5], du, j)
  -- a member deferred again past its last delay is the same JSON: ZADD
  -- moved it, removing it would lose it
  if member ~= '' and member ~= j then redis.call('ZREM', KEYS[5], member) end
  return {2, '', 0}
end
local meta = '{}'
local moved = 0
local after = ''
if mid then
  local rec = redis.call('HMGET', mkey, 'meta', 'status')
  if rec[1] then meta = rec[1] end
  if kind == 'receipt' and rec[2] then
    local s = rec[2]
    local st = ARGV[5]
    after = s
    if roxd_can(s, st) then
      if st == 'failed' then
        redis.call('HSET', mkey, 'status', st, 't_' .. st, ARGV[8], 'err', ARGV[10])
      elseif s == 'failed' then
        redis.call('HSET', mkey, 'status', st, 't_' .. st, ARGV[8], 'err', '')
      else
        redis.call('HSET', mkey, 'status', st, 't_' .. st, ARGV[8])
      end
      moved = 1
      after = st
    end
    if after == 'sending' then after = 'queued' end
  end
else
  mid = ''
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
for i = 15, #ARGV do args[#args+1] = ARGV[i] end
if kind == 'reply' then
  args[#args+1] = 'optout'
  args[#args+1] = optout
  args[#args+1] = 'optout_number'
  args[#args+1] = optnum
else
  args[#args+1] = 'status_after'
  args[#args+1] = after
end
args[#args+1] = 'metadata'
args[#args+1] = meta
local code, id = 1, ''
if KEYS[6] then
  -- the stream is in another slot: keep the entry's fields (after '*')
  -- for pushScript; the outbox is drained by the receivers
  local f = {}
  local start = 4
  if maxlen > 0 then start = 7 end
  for i = start, #args do f[#f + 1] = args[i] end
  id = cjson.encode({t = tonumber(ARGV[8]), k = kind, f = f})
  redis.call('HSET', KEYS[6], ARGV[9], id)
  code = 4
else
  id = redis.call(unpack(args))
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
if member ~= '' then redis.call('ZREM', KEYS[5], member) end
return {code, id, moved}
`)

// pushScript appends an outbox entry to its stream, once.
//
// KEYS[1] the stream   KEYS[2] its push marker {<stream's hash tag>}:x:<event id>
// (same slot as the stream)
// ARGV[1] marker TTL ms   ARGV[2] MAXLEN (<=0: none)   ARGV[3..] the fields
//
// Returns the entry id, or "" when the marker says it was pushed already.
var pushScript = store.NewScript("callbacks.push", `
if redis.call('EXISTS', KEYS[2]) == 1 then return '' end
local args = {'XADD', KEYS[1]}
local maxlen = tonumber(ARGV[2])
if maxlen > 0 then
  args[#args+1] = 'MAXLEN'
  args[#args+1] = '~'
  args[#args+1] = maxlen
end
args[#args+1] = '*'
for i = 3, #ARGV do args[#args+1] = ARGV[i] end
local id = redis.call(unpack(args))
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return id
`)

// scriptFixedArgs is the number of ARGV before the stream fields.
const scriptFixedArgs = 14
