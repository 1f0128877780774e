package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Reconciling a batch whose outcome is unknown (docs/ARCHITECTURE.md,
// "Duplicate guard").
//
// Before each ROX request the claim script stamps every recipient sent with
// `flight` = the unix ms the request leaves, and adds it to the in-flight
// index of its number, {P}:flight:<digits> (hash: message id → that ms).
// The record script clears both once ROX's answer is written. A recipient
// still carrying `flight` without an sms_id when it is claimed again, or
// whose request ended in a timeout or a transport error, has an unknown
// outcome: ROX may have accepted it. What happens then is its policy
// (Ambiguous*):
//
//   - resend: it is sent again (the duplicate risk of earlier versions);
//   - fail: it ends `failed` with err `outcome_unknown`, never resent;
//   - reconcile (default): it waits in status `reconciling` until
//     ReconcileParams.Window has passed since the request left. Meanwhile a
//     receipt or reply whose SMSId is unknown and whose number (DestTn, or
//     ReplyFrom plus SMSText for a reply) points at exactly one recipient in
//     flight is that recipient's evidence: the recipient is recorded
//     `submitted` with that SMSId ({P}:sms:<smsid> written) and the receipt's
//     status applied. Callbacks that arrive while the request's run might
//     still answer (status `sending`) are kept as evidence in
//     {P}:ev:<digits> (hash: event id → JSON) and matched when the claim
//     finds the recipient ambiguous. When the window closes, recipients with
//     no evidence are sent again.
//
// Evidence that fits more than one recipient in flight to the same number
// (two batches at once) is never attributed: those recipients get no
// evidence from it and follow their policy when the window closes.

// Policies for a recipient whose ROX outcome is unknown (ROXD_AMBIGUOUS and
// the per-message on_ambiguous field).
const (
	AmbiguousResend    = "resend"
	AmbiguousReconcile = "reconcile"
	AmbiguousFail      = "fail"
)

// ReasonOutcomeUnknown is the err of a message failed by the `fail` policy
// (or whose attempts ran out while its outcome was unknown).
const ReasonOutcomeUnknown = "outcome_unknown"

// DefaultReconcileWindow is how long, from the moment its request left, an
// ambiguous recipient waits for evidence before it is sent again.
const DefaultReconcileWindow = 2 * time.Minute

// flightSlack is added to the window and the lock TTL for the lifetime of
// the in-flight index and the evidence kept for it: it bounds what a crash
// leaves behind, and covers asynq's crash recovery (60-120 s) plus a
// restart.
const flightSlack = 15 * time.Minute

// StatusReconciling is the status of a recipient whose outcome is unknown
// while it waits for evidence (rank 1, like sending; cancel answers 409).
const StatusReconciling Status = "reconciling"

// ValidAmbiguous reports whether p names a policy ("" is valid: the
// deployment's default).
func ValidAmbiguous(p string) bool {
	switch p {
	case "", AmbiguousResend, AmbiguousReconcile, AmbiguousFail:
		return true
	}
	return false
}

// ErrAmbiguousPolicy is wrapped when a policy name is not one of Ambiguous*.
var ErrAmbiguousPolicy = errors.New("store: want resend, reconcile or fail")

// ReconcileParams configure how the claim treats recipients whose outcome
// is unknown.
type ReconcileParams struct {
	// Window is how long after the request left evidence is awaited
	// (DefaultReconcileWindow when 0).
	Window time.Duration
	// Default is the policy of messages without on_ambiguous
	// (AmbiguousReconcile when "").
	Default string
	// MaxAttempts: a recipient whose outcome is unknown after this many
	// attempts ends failed outcome_unknown instead of being sent again by
	// the reconcile policy (0: no bound).
	MaxAttempts int
}

func (p ReconcileParams) withDefaults() ReconcileParams {
	if p.Window <= 0 {
		p.Window = DefaultReconcileWindow
	}
	if p.Default == "" {
		p.Default = AmbiguousReconcile
	}
	return p
}

// Validate reports an invalid field of p, naming it.
func (p ReconcileParams) Validate() error {
	if !ValidAmbiguous(p.Default) {
		return fmt.Errorf("store: reconcile: Default %q: %w", p.Default, ErrAmbiguousPolicy)
	}
	if p.Window < 0 {
		return fmt.Errorf("store: reconcile: Window is %s, want >= 0", p.Window)
	}
	return nil
}

// WithReconcile returns a copy of b whose Claim and Unknown apply p.
func (b *Batches) WithReconcile(p ReconcileParams) *Batches {
	c := *b
	c.rc = p.withDefaults()
	return &c
}

// reconcileArgs are the ARGV the claim and unknown scripts take after their
// own: window ms, default policy, max attempts, flight TTL ms, status TTL ms.
func (b *Batches) reconcileArgs(lockTTL time.Duration) []any {
	p := b.rc.withDefaults()
	return []any{p.Window.Milliseconds(), p.Default, p.MaxAttempts,
		(lockTTL + p.Window + flightSlack).Milliseconds(), b.ttl.Milliseconds()}
}

// ReconcileCounts say what a claim (or Unknown) did with recipients whose
// outcome was unknown.
type ReconcileCounts struct {
	// Entered: recipients that entered `reconciling` now.
	Entered int
	// Matched: recipients recorded from evidence (by this script, or by
	// the callbacks receiver since the batch was last claimed).
	Matched int
	// Waiting: recipients still `reconciling`, their window open; the
	// batch must be looked at again at Until.
	Waiting int
	Until   time.Time
	// Resent: recipients sent again with an unknown earlier outcome
	// (window closed without evidence, or policy resend).
	Resent int
	// Failed: recipients ended failed outcome_unknown.
	Failed int
	// AmbiguousEvidence: callbacks that fitted a waiting recipient but also
	// another recipient in flight to the same number, so were not used.
	AmbiguousEvidence int
}

func parseReconcileCounts(v any) (ReconcileCounts, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 7 {
		return ReconcileCounts{}, ErrBatchReply
	}
	var c ReconcileCounts
	c.Entered, c.Matched, c.Waiting = batchInt(a[0]), batchInt(a[1]), batchInt(a[2])
	if ms := int64(batchInt(a[3])); ms > 0 {
		c.Until = time.UnixMilli(ms)
	}
	c.Resent, c.Failed, c.AmbiguousEvidence = batchInt(a[4]), batchInt(a[5]), batchInt(a[6])
	return c, nil
}

// ReconcileLua defines the Lua functions of the reconcile protocol shared
// by the claim, record and unknown scripts and by the callbacks' store
// script (prepend it to the script's source).
//
//	roxd_tn(s)                       digits of a number, no 00 prefix
//	roxd_rc_land(base, k, id)        ROX answered: clear flight + index entry
//	roxd_rc_index(base, id, to, now, fttl) add a recipient to its
//	                                 number's in-flight index (the caller
//	                                 sets its flight field)
//	roxd_rc_unindex(base, id, to, tns) the record's form of roxd_rc_land
//	roxd_rc_evsweep(base, tns)       drop evidence of numbers no longer
//	                                 in flight (after roxd_rc_unindex)
//	roxd_inflight(base, tn, at, text) recipients in flight to tn that left
//	                                 at or before at (and carry text)
//	roxd_rc_attribute(base, id, ev, now, ttl, apply) record evidence ev
//	                                 for id (apply: also its receipt status)
//	roxd_rc_evidence(base, id, to, text, fl, now, ttl) scan {P}:ev for id
//	roxd_rc_decide(...)              one ambiguous recipient: policy
//	roxd_rc_callback(...)            a callback whose SMSId is unknown
const ReconcileLua = `
-- roxd_slack tolerates clock skew between the worker that stamped a request
-- and the receiver that timed a callback: a callback counts as evidence for
-- a request that left at most this long (ms) after the callback arrived.
local roxd_slack = 2000
local function roxd_tn(s)
  if not s then return '' end
  local d = string.gsub(s, '%D', '')
  if string.sub(d, 1, 2) == '00' then d = string.sub(d, 3) end
  return d
end
local function roxd_rc_land(base, k, id)
  local f = redis.call('HMGET', k, 'flight', 'to')
  if f[1] then
    redis.call('HDEL', k, 'flight')
    local fk = base .. 'flight:' .. roxd_tn(f[2])
    redis.call('HDEL', fk, id)
    if redis.call('EXISTS', fk) == 0 then redis.call('DEL', base .. 'ev:' .. roxd_tn(f[2])) end
  end
end
-- roxd_rc_index adds a recipient to the in-flight index of its number
-- (the claim writes its 'flight' field in the HSET of its status).
local function roxd_rc_index(base, id, to, now, fttl)
  local fk = base .. 'flight:' .. roxd_tn(to)
  redis.call('HSET', fk, id, now)
  redis.call('PEXPIRE', fk, fttl)
end
-- roxd_rc_unindex is the record's roxd_rc_land for fields it has read
-- (flight set, to): the recipient leaves its number's index; the caller
-- deletes the 'flight' field unless it records an sms_id (which makes the
-- stamp inert). tns collects the numbers for roxd_rc_evsweep.
local function roxd_rc_unindex(base, id, to, tns)
  local tn = roxd_tn(to)
  redis.call('HDEL', base .. 'flight:' .. tn, id)
  tns[#tns + 1] = tn
end
-- roxd_rc_evsweep deletes the evidence hash of each number in tns whose
-- in-flight index is gone (as roxd_rc_land does per recipient), with one
-- EXISTS over all evidence keys first: evidence is rare.
local function roxd_rc_evsweep(base, tns)
  for j = 1, #tns, 500 do
    local ks = {}
    for x = j, math.min(j + 499, #tns) do ks[#ks + 1] = base .. 'ev:' .. tns[x] end
    if redis.call('EXISTS', unpack(ks)) > 0 then
      for x = j, math.min(j + 499, #tns) do
        if redis.call('EXISTS', base .. 'flight:' .. tns[x]) == 0 then redis.call('DEL', base .. 'ev:' .. tns[x]) end
      end
    end
  end
end
local function roxd_inflight(base, tn, at, text)
  local fk = base .. 'flight:' .. tn
  local h = redis.call('HGETALL', fk)
  local out = {}
  for i = 1, #h, 2 do
    local id, ms = h[i], h[i + 1]
    local f = redis.call('HMGET', base .. 'msg:' .. id, 'status', 'sms_id', 'flight', 'text')
    if (f[1] == 'sending' or f[1] == 'reconciling') and not (f[2] and f[2] ~= '') and f[3] == ms then
      if tonumber(ms) <= at and (text == nil or text == '' or f[4] == text) then
        out[#out + 1] = {id, f[1]}
      end
    else
      redis.call('HDEL', fk, id)
    end
  end
  return out
end
local function roxd_rc_attribute(base, id, ev, now, ttl, apply)
  local k = base .. 'msg:' .. id
  local to = redis.call('HGET', k, 'to')
  redis.call('HSET', k, 'status', 'submitted', 'sms_id', ev.s, 'request_id', ev.q or '',
    't_submitted', now, 'err', '', 'rc', 'matched')
  roxd_rc_land(base, k, id)
  redis.call('PEXPIRE', k, ttl)
  redis.call('SET', base .. 'sms:' .. (ev.c or ev.s), id, 'PX', ttl)
  if apply and ev.k == 'receipt' and (ev.st == 'delivered' or ev.st == 'failed') then
    if ev.st == 'failed' then
      redis.call('HSET', k, 'status', 'failed', 't_failed', now, 'err', ev.x or '')
    else
      redis.call('HSET', k, 'status', 'delivered', 't_delivered', now)
    end
  end
end
local function roxd_rc_evidence(base, id, to, text, fl, now, ttl)
  local tn = roxd_tn(to)
  local evs = redis.call('HVALS', base .. 'ev:' .. tn)
  local amb = 0
  for _, j in ipairs(evs) do
    local ok, ev = pcall(cjson.decode, j)
    if ok and type(ev) == 'table' and ev.s and ev.s ~= '' and tonumber(ev.r)
      and tonumber(ev.r) + roxd_slack >= tonumber(fl)
      and redis.call('EXISTS', base .. 'sms:' .. (ev.c or ev.s)) == 0 then
      local t = nil
      if ev.k == 'reply' then t = ev.t end
      if t == nil or t == '' or t == text then
        local c = roxd_inflight(base, tn, tonumber(ev.r) + roxd_slack, t)
        if #c == 1 and c[1][1] == id then
          roxd_rc_attribute(base, id, ev, now, ttl, true)
          return 'matched', amb
        elseif #c > 1 then
          amb = amb + 1
        end
      end
    end
  end
  return nil, amb
end
local function roxd_rc_fail(base, k, id, now, ttl)
  redis.call('HSET', k, 'status', 'failed', 'err', 'outcome_unknown', 't_failed', now)
  roxd_rc_land(base, k, id)
  redis.call('PEXPIRE', k, ttl)
end
-- roxd_rc_decide settles one recipient whose outcome is unknown (status
-- sending or reconciling, flight fl, no sms_id). rc: {entered, matched,
-- waiting, until, resent, failed, ambiguous evidence}. Returns 'matched',
-- 'failed', 'wait' or 'resend'.
local function roxd_rc_decide(base, id, k, st, to, text, fl, pol, att, now, window, maxatt, fttl, ttl, rc)
  if pol == 'fail' then
    roxd_rc_fail(base, k, id, now, ttl)
    rc[6] = rc[6] + 1
    return 'failed'
  end
  if pol ~= 'resend' then
    local m, amb = roxd_rc_evidence(base, id, to, text, fl, now, ttl)
    rc[7] = rc[7] + amb
    if m then
      rc[2] = rc[2] + 1
      return 'matched'
    end
    local untl = tonumber(fl) + window
    if now < untl then
      if st ~= 'reconciling' then
        redis.call('HSET', k, 'status', 'reconciling', 't_reconciling', now)
        rc[1] = rc[1] + 1
      end
      local fk = base .. 'flight:' .. roxd_tn(to)
      redis.call('HSET', fk, id, fl)
      redis.call('PEXPIRE', fk, fttl)
      rc[3] = rc[3] + 1
      if untl > rc[4] then rc[4] = untl end
      return 'wait'
    end
    if maxatt > 0 and att >= maxatt then
      roxd_rc_fail(base, k, id, now, ttl)
      rc[6] = rc[6] + 1
      return 'failed'
    end
  end
  rc[5] = rc[5] + 1
  return 'resend'
end
-- roxd_rc_callback looks for the recipient a callback with an unknown
-- SMSId belongs to. sf holds the event's stream fields. Returns the
-- message id when the callback is evidence for exactly one recipient that
-- is reconciling (recorded now, its record then living ttl ms: the
-- status TTL), else nil; and whether any recipient is in flight to its
-- number (then the callback was kept as evidence).
local function roxd_rc_callback(base, kind, sf, eid, received, errtext, canon, ttl)
  local tn, text = '', nil
  if kind == 'receipt' then
    tn = roxd_tn(sf.dest_tn)
  else
    tn = roxd_tn(sf.reply_from)
    text = sf.sms_text
  end
  if tn == '' or not sf.sms_id or sf.sms_id == '' then return nil, false end
  local c = roxd_inflight(base, tn, received + roxd_slack, text)
  if #c == 0 then return nil, false end
  local ev = {s = sf.sms_id, c = canon, q = sf.request_id or '', k = kind, st = sf.status or '',
    x = errtext, t = text or '', r = received}
  if #c == 1 and c[1][2] == 'reconciling' then
    local t = redis.call('TIME')
    roxd_rc_attribute(base, c[1][1], ev, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ttl, false)
    return c[1][1], true
  end
  local ek = base .. 'ev:' .. tn
  redis.call('HSET', ek, eid, cjson.encode(ev))
  local pt = redis.call('PTTL', base .. 'flight:' .. tn)
  if pt < 60000 then pt = 60000 end
  redis.call('PEXPIRE', ek, pt)
  return nil, true
end
`

var unknownScript = NewScript("store.unknown", TransitionLua+ReconcileLua+`
local base = ARGV[1]
local now = tonumber(ARGV[4])
local last = ARGV[5] == '1'
local errtext = ARGV[6]
local group = ARGV[7]
local window = tonumber(ARGV[8])
local def = ARGV[9]
local maxatt = tonumber(ARGV[10])
local fttl = tonumber(ARGV[11])
local ttl = tonumber(ARGV[12])
local parts = {}
for p in string.gmatch(group, '[^|]+') do parts[#parts + 1] = p end
if parts[2] == 'never' and parts[3] ~= 'http' then window = 0 end
local rc = {0, 0, 0, 0, 0, 0, 0}
local keep = {}
local retried, exhausted = 0, 0
for i = 13, #ARGV do
  local id = ARGV[i]
  local k = base .. 'msg:' .. id
  local f = redis.call('HMGET', k, 'status', 'sms_id', 'to', 'text', 'flight', 'on_ambiguous', 'attempts')
  if f[1] == 'sending' and not (f[2] and f[2] ~= '') and f[5] then
    local pol = f[6]
    if not pol or pol == '' then pol = def end
    local d = roxd_rc_decide(base, id, k, f[1], f[3], f[4], f[5], pol, tonumber(f[7]) or 0,
      now, window, maxatt, fttl, ttl, rc)
    if d == 'wait' then
      redis.call('HSET', k, 'err', errtext)
      keep[#keep + 1] = id
    elseif d == 'resend' then
      -- as before reconciling existed: retried with backoff, or failed on
      -- the last attempt
      roxd_rc_land(base, k, id)
      if last then
        rc[5] = rc[5] - 1
        redis.call('HSET', k, 'status', 'failed', 'err', 'retries_exhausted: ' .. errtext, 't_failed', now)
        redis.call('PEXPIRE', k, ttl)
        exhausted = exhausted + 1
      else
        redis.call('HSET', k, 'err', errtext)
        keep[#keep + 1] = id
        retried = retried + 1
      end
    end
  end
end
if #keep == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('ZREM', KEYS[4], ARGV[2])
  `+unwaitLua("KEYS[4]", "ARGV[2]")+`else
  redis.call('HSET', KEYS[1], 'ids', cjson.encode(keep))
end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return {rc, retried, exhausted}
`)

// Unknown records that the request carrying ids ended without an answer
// that says what ROX did (a timeout or a transport error after the request
// may have reached ROX). Each recipient still `sending` in flight follows
// its policy: reconcile puts it `reconciling` (or records it at once from
// evidence already kept), fail ends it failed outcome_unknown, resend
// keeps it in the batch for the usual retry (failed retries_exhausted when
// last). The batch keeps the recipients left to look at again (it is
// finished when none is) and the lock is released when it still holds
// token. It returns the reconcile counts and how many recipients were
// kept for a retry and failed retries_exhausted.
func (b *Batches) Unknown(ctx context.Context, batchID, token, group string, ids []string, cause string, last bool, lockTTL time.Duration, now time.Time) (ReconcileCounts, int, int, error) {
	l := "0"
	if last {
		l = "1"
	}
	args := make([]any, 0, 12+len(ids))
	args = append(args, b.k.Base(), batchID, token, now.UnixMilli(), l, cause, group)
	args = append(args, b.reconcileArgs(lockTTL)...)
	for _, id := range ids {
		args = append(args, id)
	}
	res, err := unknownScript.Run(ctx, b.rdb,
		[]string{b.k.Batch(batchID), b.k.Lock(batchID), b.k.Batches(), b.k.Waiting()}, args...).Slice()
	if err != nil {
		return ReconcileCounts{}, 0, 0, fmt.Errorf("store: unknown outcome of batch %s: %w", batchID, err)
	}
	if len(res) != 3 {
		return ReconcileCounts{}, 0, 0, fmt.Errorf("store: unknown outcome of batch %s: %w", batchID, ErrBatchReply)
	}
	rc, err := parseReconcileCounts(res[0])
	if err != nil {
		return ReconcileCounts{}, 0, 0, fmt.Errorf("store: unknown outcome of batch %s: %w", batchID, err)
	}
	return rc, batchInt(res[1]), batchInt(res[2]), nil
}

// FlightNumber is the form of a number in the in-flight and evidence keys:
// its digits, without a leading international "00" (as Lua's roxd_tn).
func FlightNumber(n string) string {
	d := make([]byte, 0, len(n))
	for i := 0; i < len(n); i++ {
		if c := n[i]; c >= '0' && c <= '9' {
			d = append(d, c)
		}
	}
	if len(d) >= 2 && d[0] == '0' && d[1] == '0' {
		d = d[2:]
	}
	return string(d)
}
