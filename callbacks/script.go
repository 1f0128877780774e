package callbacks

import (
	"github.com/redoxygen/roxd/internal/store"
)

// storeScript stores a group of callbacks (all of one shard) in one call:
// the batcher's concurrent callbacks share one EVALSHA (group commit).
//
// KEYS[1] suppression set {P}:suppressed
// KEYS[2] deferred callbacks {P}:cb:deferred (zset: event JSON -> due ms)
// KEYS[3] receipts stream   KEYS[4] replies stream
// KEYS[5] (only when ARGV[1] is 5) the outbox {P}:cb:outbox: given when the
// streams live in another Redis Cluster slot than {P} (a script cannot
// XADD there): KEYS[3] and KEYS[4] are then the outbox too (not touched
// as streams), and an entry's XADD fields go into the outbox hash (event
// id -> JSON) for pushScript to append in a second call (outbox.go)
// KEYS[c+2i-1], KEYS[c+2i] (c = ARGV[1], i = 1..N): event i's dedup marker
// {P}:cb:seen:<event_id> and SMSId map {P}:sms:<smsid>
//
// ARGV[1] c, the number of shared KEYS (4, or 5 with the outbox)
// ARGV[2] key base "{P}:"   ARGV[3] dedup TTL ms   ARGV[4] MAXLEN (<=0: none)
// ARGV[5] N, the number of events   ARGV[6] status TTL ms (ROXD_STATUS_TTL:
// a record this call ends gets it); then per event its argument count n
// and n arguments:
//
//	kind, receipt status (delivered|failed|unknown: unknown moves no
//	record, roxd_can knows no such status) or "",
//	opt-out action (stop|start|""), E.164 number for the opt-out ("": the
//	record's `to` once the SMSId is known), now (unix ms), event_id,
//	err text for failed, defer until (unix ms; 0: push even when the SMSId
//	is unknown, unless a recipient is in flight to the callback's number:
//	then it waits 30 s more, see store.ReconcileLua), attempt number
//	written into a deferred member, the deferred member being resolved (""
//	for a new callback), "1" when the opt-out was applied already (when
//	the callback was deferred: the action and number then say what was
//	done), then the values of the event's own stream fields, in the order
//	of receiptFields or replyFields (event.go), the script's rfields and
//	pfields: the names are the script's, not sent with each callback
//
// Inside, each event is stored by roxd_cb_store (reading its arguments in
// place: ARGV[o] kind ... ARGV[o+10] done, ARGV[o+11..last] the fields' values), under
// pcall: an event whose command fails answers its own error and the
// others of the group are stored. One MGET reads every marker and SMSId
// map of the group first; a marker set earlier in the same call counts
// (the same callback twice in one group is stored once), and an SMSId map
// read as nil is read again with GET (the reconcile of an earlier event may
// have written it, and a key of another type still answers WRONGTYPE).
//
// Returns 3 values per event, in order: {code, stream entry id, moved (1 =
// the record's status moved forward)}; code is 0 duplicate, 1 stored, 2
// deferred, 3 gone (the member was resolved by another receiver already),
// 4 stored with the stream entry in the outbox (the second value is then
// the outbox JSON), -1 error (the second value is the error text).
//
// Opt-out: STOP adds the number to the suppression set; START removes it
// unless an operator suppressed it ({P}:suppressed:operator). A reply's
// entry gets optout (stop | start | "": what was done to the list) and
// optout_number. A receipt's entry gets status_after: the message's
// (public) status after it, "" when the SMSId is unknown; a receipt moves
// the record by roxd_can (failed -> delivered included: a delivery receipt
// is proof).
//
// An unknown SMSId with a defer time > 0 is not pushed: the event is added
// to the deferred zset (the spool's JSON of the event plus "attempt") due
// then, without a dedup marker, so that the resolver can correlate it once
// the worker has recorded the SMSId. Its opt-out action is applied at once
// when the number is known, and the member says so (optout_done: it is
// never applied twice); when ReplyFrom is no phone number the action stays
// in the member and is applied to the record's `to` once the SMSId is.
//
// Writes come before the dedup marker: Redis does not roll a script back,
// so an event that fails half-way leaves no marker and a retry (or spool
// replay) stores the callback again instead of dropping it as a duplicate.
// For the same reason a resolved member is removed last, after the writes
// it stands for: the script is atomic, so checking it first (ZSCORE) and
// removing it at the end claims it exactly like removing it first would,
// but an error half-way leaves it in place to be retried rather than lost.
// The message record is addressed from the SMSId map; it shares the {P}
// hash tag with every declared key.
var storeScript = store.NewScript("callbacks.store", store.TransitionLua+store.ReconcileLua+`
local ARGV, KEYS = ARGV, KEYS
local rcall = redis.call
local c = tonumber(ARGV[1])
local base = ARGV[2]
local outbox = nil
if c == 5 then outbox = KEYS[5] end
local maxlen = tonumber(ARGV[4])
-- the stream fields' names, in the order of their values (event.go)
local rfields = {'sms_id', 'request_id', 'account_id', 'timestamp', 'dest_tn', 'result', 'result_text', 'status'}
local pfields = {'sms_id', 'request_id', 'account_id', 'timestamp', 'reply_from', 'reply_text', 'sms_text', 'keyword'}
local function roxd_cb_store(o, last, mk, sk, stream, seen, pmid)
  local member = ARGV[o + 9]
  if member ~= '' and not rcall('ZSCORE', KEYS[2], member) then
    return 3, '', 0
  end
  if seen then
    if member ~= '' then rcall('ZREM', KEYS[2], member) end
    return 0, '', 0
  end
  local kind = ARGV[o]
  local names = rfields
  if kind == 'reply' then names = pfields end
  -- values given (8; fewer from a caller that sends fewer: never read past
  -- this event's arguments)
  local nv = last - o - 10
  if nv > 8 then nv = 8 end
  local mid = pmid
  if not mid then mid = rcall('GET', sk) end
  local mkey = ''
  if mid then mkey = base .. 'msg:' .. mid end
  local action, num = ARGV[o + 2], ARGV[o + 3]
  local optout, optnum = '', ''
  if ARGV[o + 10] == '1' then
    optout, optnum = action, num
  elseif action ~= '' then
    if num == '' and mid then num = rcall('HGET', mkey, 'to') or '' end
    if num ~= '' then
      optnum = num
      if action == 'stop' then
        rcall('SADD', KEYS[1], num)
        optout = 'stop'
      elseif action == 'start' then
        if rcall('SISMEMBER', base .. 'suppressed:operator', num) == 0 then
          rcall('SREM', KEYS[1], num)
          optout = 'start'
        end
      end
    end
  end
  -- '0' (most callbacks) without tonumber: strtod per call
  local du = 0
  if ARGV[o + 7] ~= '0' then du = tonumber(ARGV[o + 7]) end
  if not mid then
    -- reconcile (internal/store/reconcile.go): evidence for a recipient
    -- whose request was never answered, or kept while one is in flight
    local sf = {}
    for j = 1, nv do sf[names[j]] = ARGV[o + 10 + j] end
    local rcid, inflight = roxd_rc_callback(base, kind, sf, ARGV[o + 5], tonumber(ARGV[o + 4]), ARGV[o + 6], string.sub(sk, #base + 5), ARGV[6])
    if rcid then
      mid = rcid
      mkey = base .. 'msg:' .. mid
    elseif inflight and du <= 0 then
      local t = rcall('TIME')
      du = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + 30000
    end
  end
  if not mid and du > 0 then
    local ev = {kind = kind, event_id = ARGV[o + 5], attempt = tonumber(ARGV[o + 8])}
    for j = 1, nv do ev[names[j]] = ARGV[o + 10 + j] end
    if ARGV[o + 10] == '1' or optnum ~= '' then
      if optout ~= '' then ev.optout = optout end
      if optnum ~= '' then ev.optout_number = optnum end
      ev.optout_done = true
    elseif action ~= '' then
      ev.optout = action
    end
    local j = cjson.encode(ev)
    j = string.sub(j, 1, -2) .. ',"received_ms":' .. ARGV[o + 4] .. '}'
    rcall('ZADD', KEYS[2], du, j)
    -- a member deferred again past its last delay is the same JSON: ZADD
    -- moved it, removing it would lose it
    if member ~= '' and member ~= j then rcall('ZREM', KEYS[2], member) end
    return 2, '', 0
  end
  local meta = '{}'
  local moved = 0
  local after = ''
  if mid then
    local rec = rcall('HMGET', mkey, 'meta', 'status')
    if rec[1] then meta = rec[1] end
    if kind == 'receipt' and rec[2] then
      local s = rec[2]
      local st = ARGV[o + 1]
      after = s
      if roxd_can(s, st) then
        if st == 'failed' then
          rcall('HSET', mkey, 'status', st, 't_' .. st, ARGV[o + 4], 'err', ARGV[o + 6])
        elseif s == 'failed' then
          rcall('HSET', mkey, 'status', st, 't_' .. st, ARGV[o + 4], 'err', '')
        else
          rcall('HSET', mkey, 'status', st, 't_' .. st, ARGV[o + 4])
        end
        moved = 1
        after = st
        -- a message not ended before (no TTL while it could be sent) has
        -- ended now: readable StatusTTL from now (docs/LIFECYCLE.md)
        if roxd_rank[s] < 2 then rcall('PEXPIRE', mkey, ARGV[6]) end
      end
      if after == 'sending' then after = 'queued' end
    end
  else
    mid = ''
  end
  -- the entry's arguments in one table constructor (sized at once) when
  -- the event brought its 8 values, as the receiver always sends; the
  -- loop for a caller that sends fewer
  local args
  local v = o + 10
  if nv == 8 and kind == 'reply' then
    args = {'XADD', stream, 'MAXLEN', '~', ARGV[4], '*', 'event_id', ARGV[o + 5], 'kind', kind, 'message_id', mid,
      'sms_id', ARGV[v + 1], 'request_id', ARGV[v + 2], 'account_id', ARGV[v + 3], 'timestamp', ARGV[v + 4],
      'reply_from', ARGV[v + 5], 'reply_text', ARGV[v + 6], 'sms_text', ARGV[v + 7], 'keyword', ARGV[v + 8],
      'optout', optout, 'optout_number', optnum, 'metadata', meta}
  elseif nv == 8 then
    args = {'XADD', stream, 'MAXLEN', '~', ARGV[4], '*', 'event_id', ARGV[o + 5], 'kind', kind, 'message_id', mid,
      'sms_id', ARGV[v + 1], 'request_id', ARGV[v + 2], 'account_id', ARGV[v + 3], 'timestamp', ARGV[v + 4],
      'dest_tn', ARGV[v + 5], 'result', ARGV[v + 6], 'result_text', ARGV[v + 7], 'status', ARGV[v + 8],
      'status_after', after, 'metadata', meta}
  else
    args = {'XADD', stream, 'MAXLEN', '~', ARGV[4], '*', 'event_id', ARGV[o + 5], 'kind', kind, 'message_id', mid}
    local na = #args
    for j = 1, nv do
      args[na + 1] = names[j]
      args[na + 2] = ARGV[v + j]
      na = na + 2
    end
    if kind == 'reply' then
      args[na + 1] = 'optout'
      args[na + 2] = optout
      args[na + 3] = 'optout_number'
      args[na + 4] = optnum
      na = na + 4
    else
      args[na + 1] = 'status_after'
      args[na + 2] = after
      na = na + 2
    end
    args[na + 1] = 'metadata'
    args[na + 2] = meta
  end
  -- ARGV[4] as sent: a Lua number would be formatted (sprintf) per call;
  -- no trimming: without MAXLEN ~ n
  if maxlen <= 0 then
    table.remove(args, 3)
    table.remove(args, 3)
    table.remove(args, 3)
  end
  local code, id = 1, ''
  if outbox then
    -- the stream is in another slot: keep the entry's fields (after '*')
    -- for pushScript; the outbox is drained by the receivers
    local f = {}
    local start = 4
    if maxlen > 0 then start = 7 end
    for i = start, #args do f[#f + 1] = args[i] end
    id = cjson.encode({t = tonumber(ARGV[o + 4]), k = kind, f = f})
    rcall('HSET', outbox, ARGV[o + 5], id)
    code = 4
  else
    id = rcall(unpack(args))
  end
  rcall('SET', mk, '1', 'PX', ARGV[3])
  if member ~= '' then rcall('ZREM', KEYS[2], member) end
  return code, id, moved
end

local n = tonumber(ARGV[5])
local pre = {}
if n > 0 then pre = rcall('MGET', unpack(KEYS, c + 1, c + 2 * n)) end
local marked = {}
local out = {}
local at = 7
for i = 1, n do
  local o = at + 1
  -- 19 arguments (8 values: what the receiver sends) without tonumber,
  -- whose strtod is ~1% of a receipt's instructions
  local last
  if ARGV[at] == '19' then last = at + 19 else last = at + tonumber(ARGV[at]) end
  at = last + 1
  local mk = KEYS[c + 2 * i - 1]
  local stream = KEYS[3]
  if ARGV[o] == 'reply' then stream = KEYS[4] end
  local seen = pre[2 * i - 1] or marked[mk]
  -- three values back, not a table per event
  local ok, code, id, moved = pcall(roxd_cb_store, o, last, mk, KEYS[c + 2 * i], stream, seen, pre[2 * i])
  if not ok then
    if type(code) == 'table' then code = code.err or 'script error' end
    out[3 * i - 2] = -1
    out[3 * i - 1] = tostring(code)
    out[3 * i] = 0
  else
    if code == 1 or code == 4 then marked[mk] = true end
    out[3 * i - 2] = code
    out[3 * i - 1] = id
    out[3 * i] = moved
  end
end
return out
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
  args[#args+1] = ARGV[2]
end
args[#args+1] = '*'
for i = 3, #ARGV do args[#args+1] = ARGV[i] end
local id = redis.call(unpack(args))
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return id
`)

// scriptFixedArgs is the number of an event's arguments before its stream
// fields (kind ... done).
const scriptFixedArgs = 11
