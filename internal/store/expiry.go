package store

import (
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
