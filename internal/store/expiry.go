package store

import (
	"context"
	"fmt"
	"time"
)

// Validity period (README, "Validity period"): a message with expires_at
// that is not handed to ROX by then ends `expired` and is never sent. The
// check is made by the claim script, atomically with handing the message
// out for a ROX request: the last moment before the request leaves. An
// expired message gets an entry on the receipts stream (kind and status
// "expired") so that consumers learn it as they learn receipts.

// KindExpired is the "kind" (and "status") of the receipts-stream entry of
// a message that expired before it was handed to ROX.
const KindExpired = "expired"

// ReasonExpired is the err of an expired message.
const ReasonExpired = "expired: not handed to ROX before expires_at"

// ExpiryParams tell the claim script where to announce expired messages.
type ExpiryParams struct {
	// Stream is the receipts stream ("" = no entry is written).
	Stream string
	// MaxLen is its approximate MAXLEN (<= 0: none).
	MaxLen int64
	// AccountID fills the entry's account_id.
	AccountID string
}

// WithExpiry returns a copy of b whose claims announce expired messages on
// p.Stream.
func (b *Batches) WithExpiry(p ExpiryParams) *Batches {
	c := *b
	c.ex = p
	return &c
}

// expiryArgs are the ARGV the claim script takes after the reconcile ones:
// stream, maxlen, account id, now in RFC 3339 (the entry's timestamp).
func (b *Batches) expiryArgs(now time.Time) []any {
	return []any{b.ex.Stream, b.ex.MaxLen, b.ex.AccountID, now.UTC().Format(time.RFC3339)}
}

// ExpireLua defines roxd_expire(base, k, id, now, ttl, stream, maxlen,
// account, ts): the message of key k ends expired (err ReasonExpired,
// t_expired, no longer in flight) and, when stream is set, its entry is
// added to the receipts stream. It needs ReconcileLua before it.
const ExpireLua = `
local function roxd_expired(ex, now)
  local e = tonumber(ex)
  return e ~= nil and e > 0 and tonumber(now) >= e
end
local function roxd_expire(base, k, id, now, ttl, stream, maxlen, account, ts)
  redis.call('HSET', k, 'status', 'expired', 't_expired', now, 'err', '` + ReasonExpired + `')
  roxd_rc_land(base, k, id)
  redis.call('PEXPIRE', k, ttl)
  if stream == '' then return end
  local f = redis.call('HMGET', k, 'to', 'meta', 'expires_at')
  local args = {'XADD', stream}
  local ml = tonumber(maxlen) or 0
  if ml > 0 then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = ml
  end
  local fields = {'*', 'event_id', 'expired-' .. id, 'kind', 'expired', 'message_id', id,
    'sms_id', '', 'request_id', '', 'account_id', account, 'timestamp', ts,
    'dest_tn', f[1] or '', 'result', '', 'result_text', '` + ReasonExpired + `',
    'status', 'expired', 'status_after', 'expired', 'expires_at', f[3] or '',
    'metadata', f[2] or '{}'}
  for _, v in ipairs(fields) do args[#args + 1] = v end
  redis.call(unpack(args))
end
`

// expireDueScript ends expired the messages of a batch waiting for its
// account (a 429 pause, rate-limit tokens) whose validity ran out: the
// claim would do it, but the claim waits with the batch. It touches
// nothing while a handler run holds the batch's lock, and only messages
// that were never handed out or whose request was answered (queued,
// scheduled, or sending without an in-flight mark): one in flight may have
// reached ROX (reconcile.go decides). The batch keeps the other ids.
//
// KEYS: batch, lock. ARGV: base, now ms, status TTL ms, stream, maxlen,
// account id, RFC 3339 now. Reply: {expired, live, earliest}: live counts
// the messages still to send (no sms_id, not final), earliest is the
// earliest expires_at after now of those it may expire (unix ms, 0 = none).
var expireDueScript = NewScript("store.expireDue", ReconcileLua+ExpireLua+`
local s = redis.call('HGET', KEYS[1], 'ids')
if not s then return {0, 0, 0} end
local base, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local locked = redis.call('EXISTS', KEYS[2]) == 1
local ids = cjson.decode(s)
local keep = {}
local expired, live, earliest = 0, 0, 0
for _, id in ipairs(ids) do
  local k = base .. 'msg:' .. id
  local f = redis.call('HMGET', k, 'status', 'sms_id', 'flight', 'expires_at')
  local st = f[1]
  local open = st and (not f[2] or f[2] == '') and
    (st == 'queued' or st == 'scheduled' or st == 'sending' or st == 'reconciling')
  -- in flight (or reconciling): it may have reached ROX; never expired here
  local expirable = open and st ~= 'reconciling' and (st ~= 'sending' or not f[3])
  if expirable and not locked and roxd_expired(f[4], now) then
    roxd_expire(base, k, id, now, ttl, ARGV[4], ARGV[5], ARGV[6], ARGV[7])
    expired = expired + 1
  else
    keep[#keep + 1] = id
    if open then live = live + 1 end
    local e = tonumber(f[4]) or 0
    if expirable and e > tonumber(now) and (earliest == 0 or e < earliest) then earliest = e end
  end
end
if expired > 0 then
  if #keep == 0 then
    redis.call('HSET', KEYS[1], 'ids', '[]')
  else
    redis.call('HSET', KEYS[1], 'ids', cjson.encode(keep))
  end
end
return {expired, live, earliest}
`)

// DueExpiry is what ExpireDue did and found.
type DueExpiry struct {
	// Expired messages were set expired now (announced on the stream).
	Expired int
	// Live counts the batch's messages still to send.
	Live int
	// Earliest is the earliest expiry after now among those not in flight
	// (zero: none).
	Earliest time.Time
}

// ExpireDue sets expired the messages of batch batchID whose validity ran
// out by now, unless a handler run holds the batch (then it only reads),
// and reports the messages left to send and their earliest expiry. A run
// that must wait for its account (a 429 pause, rate-limit tokens) calls it
// so that it waits no longer than that expiry and pays only for messages
// that may still be sent. A batch that no longer exists reports zeros.
func (b *Batches) ExpireDue(ctx context.Context, batchID string, now time.Time) (DueExpiry, error) {
	args := append([]any{b.k.Base(), now.UnixMilli(), b.ttl.Milliseconds()}, b.expiryArgs(now)...)
	res, err := expireDueScript.Run(ctx, b.rdb, []string{b.k.Batch(batchID), b.k.Lock(batchID)}, args...).Int64Slice()
	if err != nil {
		return DueExpiry{}, fmt.Errorf("store: expire due messages of batch %s: %w", batchID, err)
	}
	if len(res) != 3 {
		return DueExpiry{}, fmt.Errorf("store: expire due messages of batch %s: %w", batchID, ErrBatchReply)
	}
	d := DueExpiry{Expired: int(res[0]), Live: int(res[1])}
	if res[2] > 0 {
		d.Earliest = time.UnixMilli(res[2])
	}
	return d, nil
}
