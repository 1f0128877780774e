package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
)

// This file holds the worker's side of the keyspace: moving due scheduled
// messages, forming batches, claiming a batch for one ROX request, recording
// ROX's answer and requeueing a batch. Each step is one Lua script, so each
// costs one round trip per batch (or per scheduler sweep), never per message.
//
// Message records are written by the producer (messages.go); the scripts
// here read and write only the record fields fixed in docs/ARCHITECTURE.md.

// Batches runs the worker's scripts over one keyspace.
type Batches struct {
	rdb  redis.UniversalClient
	k    Keys
	ttl  time.Duration
	rc   ReconcileParams    // see WithReconcile
	ex   ExpiryParams       // see WithExpiry
	rep  redisconn.Replicas // see WithReplicas
	acct string             // see ForAccount
}

// ForAccount returns b working on one ROX account: Form forms only batches
// of its groups, and Form, Claim and PauseAuth use its own auth pause
// (Keys.AuthPauseOf). Without it Form takes every group and the default
// account's pause applies.
func (b *Batches) ForAccount(account string) *Batches {
	c := *b
	c.acct = account
	return &c
}

// WithReplicas returns a copy of b whose Claim and Record return only once
// r.Min replicas have their writes (ROXD_REDIS_MIN_REPLICAS): a claim that
// a failover could lose would let the new master form and send the same
// messages again, and so would a lost record of ROX's answer. Short of
// replicas they return an error wrapping redisconn.ErrNotReplicated after
// the write landed on the master (the handler journals a record and applies
// it again: Record is idempotent).
func (b *Batches) WithReplicas(r redisconn.Replicas) *Batches {
	c := *b
	c.rep = r
	return &c
}

// runReplicated runs s as s.Run does and, with WithReplicas, waits for the
// replicas on the same connection (redisconn.Replicas.RunScript).
func (b *Batches) runReplicated(ctx context.Context, s *redis.Script, keys []string, args ...any) (*redis.Cmd, error) {
	return b.rep.RunScript(ctx, b.rdb, s, keys, args...)
}

// DefaultBatchStatusTTL is the TTL given to {P}:sms:<smsid> keys when the
// message record has none (it always has one in practice).
const DefaultBatchStatusTTL = 7 * 24 * time.Hour

// NewBatches returns the batch operations over the keys of k. statusTTL is
// the fallback TTL of SMSId keys (DefaultBatchStatusTTL when <= 0).
func NewBatches(rdb redis.UniversalClient, k Keys, statusTTL time.Duration) *Batches {
	if statusTTL <= 0 {
		statusTTL = DefaultBatchStatusTTL
	}
	return &Batches{rdb: rdb, k: k, ttl: statusTTL}
}

// Keys returns the key builder of b.
func (b *Batches) Keys() Keys { return b.k }

// ErrBatchReply means a script answered with something this package does not
// understand (a bug, or a key tampered with).
var ErrBatchReply = errors.New("store: unexpected script reply")

var scheduleScript = NewScript("store.schedule", `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local f = redis.call('HMGET', ARGV[1] .. 'msg:' .. id, 'status', 'group')
  if f[2] then redis.call('ZREM', ARGV[1] .. 'sched:' .. f[2], id) end
  if f[1] == 'scheduled' and f[2] then
    redis.call('HSET', ARGV[1] .. 'msg:' .. id, 'status', 'queued', 't_queued', ARGV[4])
    redis.call('RPUSH', ARGV[1] .. 'ready:' .. f[2], id)
    redis.call('SADD', KEYS[2], f[2])
    moved = moved + 1
  end
end
return {#ids, moved}
`)

// MoveDue moves up to limit scheduled messages whose score is <= until
// (SendAt - lead has passed) into the ready list of their group, status
// queued (t_queued now): from there the worker may take them at any moment,
// so they are no longer promised to be cancellable. Entries
// no longer scheduled (cancelled, expired) are dropped from the zset and not
// moved. It returns how many entries were looked at and how many moved; a
// caller sweeps again while seen == limit.
func (b *Batches) MoveDue(ctx context.Context, until time.Time, limit int) (seen, moved int, err error) {
	if limit <= 0 {
		limit = 1000
	}
	res, err := scheduleScript.Run(ctx, b.rdb, []string{b.k.Scheduled(), b.k.Groups()},
		b.k.Base(), until.UnixMilli(), limit, time.Now().UnixMilli()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("store: move due: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("store: move due: %w", ErrBatchReply)
	}
	return int(res[0]), int(res[1]), nil
}

// HasReady reports whether any group has messages in its ready list.
func (b *Batches) HasReady(ctx context.Context) (bool, error) {
	n, err := b.rdb.Exists(ctx, b.k.Groups()).Result()
	if err != nil {
		return false, fmt.Errorf("store: has ready: %w", err)
	}
	return n > 0, nil
}

// NextScheduled returns the send time of the earliest message in
// {P}:scheduled (ok false when there is none).
func (b *Batches) NextScheduled(ctx context.Context) (time.Time, bool, error) {
	zs, err := b.rdb.ZRangeWithScores(ctx, b.k.Scheduled(), 0, 0).Result()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next scheduled: %w", err)
	}
	if len(zs) == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(zs[0].Score)), true, nil
}

var formScript = NewScript("store.form", `
local ARGV, KEYS = ARGV, KEYS
local rcall = redis.call
if rcall('EXISTS', KEYS[4]) == 1 then return {-1} end
local groups = rcall('SMEMBERS', KEYS[1])
if #groups == 0 then return {} end
local base = ARGV[1]
local n = tonumber(ARGV[2])
local linger = tonumber(ARGV[3])
local maxw = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
local maxform = tonumber(ARGV[6])
local prefix = ARGV[7]
local seq = tonumber(ARGV[8])
local maxbulk = tonumber(ARGV[10])
-- ARGV[11]: form only this account's groups ('' = every group); the
-- account part of a group is '|@<name>', none for 'default'
local acct = ARGV[11] or ''
-- ARGV[12]: form only these priorities (',high,' or ',normal,bulk,': a
-- former of its own serves high); '' = every priority
local only = ARGV[12] or ''
local names = {'high', 'normal', 'bulk'}
local use = {}
for c = 1, 3 do
  use[c] = only == '' or string.find(only, ',' .. names[c] .. ',', 1, true) ~= nil
end
-- Priorities (internal/store/priority.go): high groups first, then normal,
-- then bulk; each priority has its own waiting zset (backpressure count).
local wk = {KEYS[2] .. ':high', KEYS[2], KEYS[2] .. ':bulk'}
local order = {{}, {}, {}}
for _, g in ipairs(groups) do
  if acct == '' or (string.match(g, '|@([^|]+)') or 'default') == acct then
  local c = 2
  if string.find(g, '|p=high', 1, true) then c = 1
  elseif string.find(g, '|p=bulk', 1, true) then c = 3 end
  if use[c] then
  local o = order[c]
  o[#o + 1] = g
  end
  end
end
local w = {}
for c = 1, 3 do
  if use[c] then
  rcall('ZREMRANGEBYSCORE', wk[c], '-inf', now - tonumber(ARGV[9]))
  w[c] = rcall('ZCARD', wk[c])
  end
end
local out = {}
local formed = 0
-- maxform is per priority: a flood of high (or normal) messages never keeps
-- the lower priorities from being formed (the asynq queues order them).
-- (maxform 1, an auth probe: one batch in all)
local total = 3 * maxform
if maxform == 1 then total = 1 end
for c = 1, 3 do
  local fc = 0
  for _, g in ipairs(order[c]) do
    if fc >= maxform or formed >= total then break end
    local rk = base .. 'ready:' .. g
    -- '|n=<k>': large messages, at most k per ROX request (WithRequestCap)
    local gn = n
    -- (tonumber(nil) is an error in miniredis's Lua, roxd dev's Redis)
    local cm = string.match(g, '|n=(%d+)')
    local cap = cm and tonumber(cm)
    if cap and cap >= 1 and cap < gn then gn = cap end
    local len = rcall('LLEN', rk)
    while len > 0 and fc < maxform and formed < total do
      local take = 0
      if c == 3 and w[c] >= maxbulk then
        -- bulk: at most maxbulk batches wait for a handler; the backlog
        -- stays in its ready list (cancellable, and expiring there)
        take = 0
      elseif len >= gn then
        take = gn
      elseif w[c] < maxw then
        local head = rcall('LINDEX', rk, 0)
        local t = tonumber(rcall('HGET', base .. 'msg:' .. head, 't_queued'))
        if t == nil or now - t >= linger then take = len end
      end
      if take == 0 then break end
      local bid = prefix .. (seq + formed)
      if rcall('EXISTS', base .. 'batch:' .. bid) == 1 then
        -- never overwrite a batch (its messages would be in no batch): the
        -- caller's sequence is behind (a reply it never got)
        if formed == 0 then return redis.error_reply('ROXD_BATCH_ID_IN_USE ' .. bid) end
        return out
      end
      local ids = rcall('LPOP', rk, take)
      formed = formed + 1
      fc = fc + 1
      rcall('HSET', base .. 'batch:' .. bid, 'group', g, 'ids', cjson.encode(ids), 'created', now, 'attempt', 0)
      rcall('ZADD', KEYS[3], now, bid)
      rcall('ZADD', wk[c], now, bid)
      local first = {}
      -- 'batch' only on records that exist (a message whose record is gone
      -- must not come back as a field without TTL): one EXISTS over all
      -- of them, per message only when some are missing
      local mks = {}
      for i, id in ipairs(ids) do
        mks[i] = base .. 'msg:' .. id
        if i <= 5 then first[i] = id end
      end
      for j = 1, #mks, 500 do
        local e = math.min(j + 499, #mks)
        local all = rcall('EXISTS', unpack(mks, j, e)) == e - j + 1
        for x = j, e do
          if all or rcall('EXISTS', mks[x]) == 1 then rcall('HSET', mks[x], 'batch', bid) end
        end
      end
      w[c] = w[c] + 1
      len = len - #ids
      out[#out + 1] = bid
      out[#out + 1] = g
      out[#out + 1] = #ids
      out[#out + 1] = cjson.encode(first)
    end
    if len <= 0 then rcall('SREM', KEYS[1], g) end
  end
end
return out
`)

// FormParams are the rules of one forming pass.
type FormParams struct {
	// MaxBatch is the most messages per batch (rox.MaxRecipients).
	MaxBatch int
	// Linger is how long the oldest message of a group waits for company
	// before a partial batch may be formed.
	Linger time.Duration
	// MaxWaiting: a partial batch is formed only while fewer than this many
	// formed batches of its priority wait to be picked up by a handler
	// (backpressure: at saturation, batches fill instead of multiplying).
	MaxWaiting int
	// MaxWaitingBulk: bulk batches, even full ones, are formed only while
	// fewer than this many bulk batches wait for a handler, so a bulk
	// backlog stays in its ready list instead of flooding asynq (0 = 64).
	MaxWaitingBulk int
	// MaxForm bounds the batches of each priority formed by one call (a
	// call forms up to 3 × MaxForm; MaxForm 1, an auth probe, forms one
	// in all).
	MaxForm int
	// WaitingHorizon drops waiting entries older than this (a batch whose
	// task was lost must not block partial batches forever). Default 60 s.
	WaitingHorizon time.Duration
	// IDPrefix and Seq name the batches: IDPrefix + decimal(Seq + i). The
	// caller advances Seq by the number formed.
	IDPrefix string
	Seq      uint64
	// Priorities restricts the call to the groups of these priorities
	// (nil: every priority). The worker runs a former of its own for high
	// (worker.formLoop), so that a high message never waits for a call
	// that forms bulk batches.
	Priorities []string
}

// Formed is one batch made by Form.
type Formed struct {
	ID    string
	Group string
	Size  int
	// First holds the ids of the batch's first (up to 5) messages.
	First []string
}

// ErrBatchIDInUse is returned by Form when the first batch id it would
// use names an existing batch: the caller's sequence is behind, typically
// because an earlier Form ran in Redis but its reply was lost (a
// connection cut by a restart). The caller must move its sequence on (by
// at least MaxForm) and form again; Form never overwrites a batch.
var ErrBatchIDInUse = errors.New("store: form: batch id in use")

// ErrAuthPaused is returned by Form and Claim while {P}:authpause is set.
var ErrAuthPaused = errors.New("store: sending paused: ROX rejected the credentials")

// Form pops up to MaxBatch ids per batch (fewer for a group with a request
// cap: WithRequestCap) from the ready lists of the groups
// in {P}:groups into new batch records (added to {P}:batches and the
// waiting zset of their priority), high groups first, then normal, then
// bulk. A full batch is always formed (bulk: while fewer than
// MaxWaitingBulk bulk batches wait); a partial one only when the group's
// oldest message has waited Linger and fewer than MaxWaiting batches of its
// priority wait. A group whose list is empty leaves {P}:groups. While the
// account is paused it forms nothing and returns ErrAuthPaused.
func (b *Batches) Form(ctx context.Context, p FormParams, now time.Time) ([]Formed, error) {
	if p.MaxBatch <= 0 || p.MaxForm <= 0 {
		return nil, fmt.Errorf("store: form: MaxBatch and MaxForm must be > 0")
	}
	if p.WaitingHorizon <= 0 {
		p.WaitingHorizon = time.Minute
	}
	if p.MaxWaitingBulk <= 0 {
		p.MaxWaitingBulk = 64
	}
	res, err := formScript.Run(ctx, b.rdb,
		[]string{b.k.Groups(), b.k.Waiting(), b.k.Batches(), b.k.AuthPauseOf(b.acct)},
		b.k.Base(), p.MaxBatch, p.Linger.Milliseconds(), p.MaxWaiting, now.UnixMilli(), p.MaxForm,
		p.IDPrefix, p.Seq, p.WaitingHorizon.Milliseconds(), p.MaxWaitingBulk, b.acct, onlyArg(p.Priorities)).Slice()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if strings.HasPrefix(err.Error(), "ROXD_BATCH_ID_IN_USE") {
			return nil, fmt.Errorf("%w: %s", ErrBatchIDInUse, err)
		}
		return nil, fmt.Errorf("store: form: %w", err)
	}
	if len(res) == 1 {
		if v, ok := res[0].(int64); ok && v == -1 {
			return nil, ErrAuthPaused
		}
	}
	if len(res)%4 != 0 {
		return nil, fmt.Errorf("store: form: %w", ErrBatchReply)
	}
	out := make([]Formed, 0, len(res)/4)
	for i := 0; i < len(res); i += 4 {
		id, _ := res[i].(string)
		g, _ := res[i+1].(string)
		n, _ := res[i+2].(int64)
		f := Formed{ID: id, Group: g, Size: int(n)}
		if s, _ := res[i+3].(string); s != "" && s != "{}" {
			_ = json.Unmarshal([]byte(s), &f.First)
		}
		out = append(out, f)
	}
	return out, nil
}

// onlyArg is the form script's ARGV[12]: ",high," for [high], "" for nil.
func onlyArg(ps []string) string {
	if len(ps) == 0 {
		return ""
	}
	return "," + strings.Join(ps, ",") + ","
}

// HasReadyOf reports whether a group of priority p (of b's account, with
// ForAccount) has messages in its ready list.
func (b *Batches) HasReadyOf(ctx context.Context, p string) (bool, error) {
	gs, err := b.rdb.SMembers(ctx, b.k.Groups()).Result()
	if err != nil {
		return false, fmt.Errorf("store: has ready: %w", err)
	}
	for _, g := range gs {
		if GroupPriority(g) == p && (b.acct == "" || GroupAccount(g) == b.acct) {
			return true, nil
		}
	}
	return false, nil
}

var claimScript = NewScript("store.claim", ReconcileLua+ExpireLua+`
local ARGV, KEYS = ARGV, KEYS
local rcall = redis.call
local b = rcall('HMGET', KEYS[1], 'group', 'ids')
if not b[1] then return {'gone'} end
if not rcall('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then return {'locked'} end
rcall('ZREM', KEYS[3], ARGV[2])
`+unwaitLua("KEYS[3]", "ARGV[2]")+`if rcall('EXISTS', KEYS[5]) == 1 then return {'paused', b[1]} end
local base = ARGV[1]
local now = ARGV[5]
-- reconcile (internal/store/reconcile.go): window, default policy,
-- max attempts, flight TTL, status TTL
local window, def, maxatt = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local fttl, ttl = tonumber(ARGV[9]), tonumber(ARGV[10])
-- expiry (internal/store/expiry.go): stream, maxlen, account, RFC 3339 now
local xstream, xmax, xacct, xts = ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local expired = 0
local gp = {}
for p in string.gmatch(b[1], '[^|]+') do gp[#gp + 1] = p end
if gp[2] == 'never' and gp[3] ~= 'http' then window = 0 end
local rc = {0, 0, 0, 0, 0, 0, 0}
local ids = cjson.decode(b[2])
local out = {'ok', b[1], 0, 0, 0, rc, 0}
local no = #out
local keep = {}
-- the ids to send and their fields (HMGET), ns of them: two arrays, not a
-- table per recipient
local send, sendf, ns = {}, {}, 0
for _, id in ipairs(ids) do
  local k = base .. 'msg:' .. id
  -- on_ambiguous and rc are read only where they count (a recipient in
  -- flight, one recorded already): most claims find neither, and a field a
  -- record lacks costs a scan of all its fields
  local f = rcall('HMGET', k, 'status', 'sms_id', 'to', 'name', 'email', 'text', 'attempts', 'flight', 'expires_at')
  local st = f[1]
  if (not st) or (f[2] and f[2] ~= '') then
    out[5] = out[5] + 1
    if rcall('HGET', k, 'rc') == 'matched' then rc[2] = rc[2] + 1 end
  elseif st == 'cancelled' then
    out[3] = out[3] + 1
  elseif (st == 'sending' or st == 'reconciling') and f[8] then
    -- an earlier request carrying it left and was never answered
    local pol = rcall('HGET', k, 'on_ambiguous')
    if not pol or pol == '' then pol = def end
    local d = roxd_rc_decide(base, id, k, st, f[3], f[6], f[8], pol, tonumber(f[7]) or 0,
      tonumber(now), window, maxatt, fttl, ttl, rc)
    if d == 'wait' then
      keep[#keep + 1] = id
    elseif d == 'resend' then
      ns = ns + 1
      send[ns], sendf[ns] = id, f
    end
  elseif st == 'queued' or st == 'scheduled' or st == 'sending' or st == 'reconciling' then
    ns = ns + 1
    send[ns], sendf[ns] = id, f
  else
    out[5] = out[5] + 1
  end
end
if rc[3] > 0 then
  -- recipients wait for evidence: the batch is looked at again when their
  -- window closes, the others with them
  for x = 1, ns do keep[#keep + 1] = send[x] end
  rc[5] = 0
else
  -- suppressed numbers: one SMISMEMBER for the batch
  local tos = {}
  for x = 1, ns do
    if sendf[x][3] then tos[#tos + 1] = sendf[x][3] end
  end
  local sup = {}
  for j = 1, #tos, 500 do
    local part = {}
    for x = j, math.min(j + 499, #tos) do part[#part + 1] = tos[x] end
    local r = rcall('SMISMEMBER', KEYS[4], unpack(part))
    for x, m in ipairs(r) do
      if m == 1 then sup[part[x]] = true end
    end
  end
  for x = 1, ns do
    local id, f = send[x], sendf[x]
    local k = base .. 'msg:' .. id
    if roxd_expired(f[9], now) then
      -- its validity ran out: never sent, retries end here
      roxd_expire(base, k, id, now, ttl, xstream, xmax, xacct, xts)
      expired = expired + 1
    elseif f[3] and sup[f[3]] then
      rcall('HSET', k, 'status', 'suppressed', 't_suppressed', now)
      roxd_rc_land(base, k, id)
      -- ended: readable StatusTTL from now (it had no TTL while queued)
      rcall('PEXPIRE', k, ARGV[10])
      out[4] = out[4] + 1
    else
      -- a string: a Lua number would be formatted with sprintf by Redis
      local att = '1'
      if f[7] then att = tostring((tonumber(f[7]) or 0) + 1) end
      -- in flight: the 'flight' stamp in the same HSET, then the index
      if f[1] ~= 'sending' then
        rcall('HSET', k, 'status', 'sending', 't_sending', now, 'attempts', att, 'flight', now)
      else
        rcall('HSET', k, 'attempts', att, 'flight', now)
      end
      -- ARGV[9] as sent: a Lua number would be formatted (sprintf) per call
      roxd_rc_index(base, id, f[3], now, ARGV[9])
      keep[#keep + 1] = id
      -- a counter, not #out (a search of the array's border per use)
      out[no + 1] = id
      out[no + 2] = f[3] or ''
      out[no + 3] = f[4] or ''
      out[no + 4] = f[5] or ''
      out[no + 5] = f[6] or ''
      out[no + 6] = 0
      if f[9] then out[no + 6] = tonumber(f[9]) or 0 end
      no = no + 6
    end
  end
end
if #keep ~= #ids then
  if #keep == 0 then
    rcall('HSET', KEYS[1], 'ids', '[]')
  else
    rcall('HSET', KEYS[1], 'ids', cjson.encode(keep))
  end
end
rcall('HINCRBY', KEYS[1], 'attempt', 1)
out[7] = expired
return out
`)

// claimHeader is the number of values before the items in the claim
// script's answer: 'ok', group, cancelled, suppressed, skipped, reconcile
// counts, expired.
const claimHeader = 7

// claimItem is the number of values per item after the header: id, to,
// name, email, text, expires_at (unix ms, 0 = never).
const claimItem = 6

// ClaimState is the outcome of Claim.
type ClaimState int

const (
	// ClaimOK: the lock is held and Items are ready for ROX (possibly none).
	ClaimOK ClaimState = iota + 1
	// ClaimGone: the batch no longer exists (finished by an earlier run).
	ClaimGone
	// ClaimLocked: another handler holds the batch's lock.
	ClaimLocked
	// ClaimPaused: the lock is held but sending is paused (auth); the
	// caller requeues the batch.
	ClaimPaused
)

// BatchItem is one message of a claimed batch, with what ROX needs.
type BatchItem struct {
	ID, To, Name, Email, Text string
	// ExpiresAt is the message's expiry (zero: none): a retry is due no
	// later than the earliest of its batch (worker's retryDelay).
	ExpiresAt time.Time
}

// Claim is the result of claiming a batch.
type Claim struct {
	State ClaimState
	Group string
	Items []BatchItem
	// Cancelled, Suppressed and Skipped count the messages left out:
	// cancelled before hand-over, suppressed now (their status was set),
	// and skipped (already submitted: the duplicate guard, or gone).
	Cancelled, Suppressed, Skipped int
	// Expired counts the messages whose expires_at had passed: set expired
	// now (never sent), each announced on the receipts stream.
	Expired int
	// Reconcile says what happened to recipients whose earlier request was
	// never answered (internal/store/reconcile.go). While Reconcile.Waiting
	// > 0, Items is empty and the batch must be claimed again at
	// Reconcile.Until.
	Reconcile ReconcileCounts
}

// Claim takes the batch's lock (SET NX PX lockTTL with token) and, in the
// same script, returns the messages still to send, setting them `sending`
// and stamping them in flight (reconcile.go). A message an earlier request
// carried without an answer follows its ambiguity policy (Claim.Reconcile).
// Messages already carrying an sms_id are skipped (a redelivered or retried
// task never sends a recipient twice), cancelled ones are skipped, and
// numbers in {P}:suppressed are marked `suppressed`. The batch's ids are
// narrowed to the messages returned.
func (b *Batches) Claim(ctx context.Context, batchID, token string, lockTTL time.Duration, now time.Time) (Claim, error) {
	cmd, werr := b.runReplicated(ctx, claimScript,
		[]string{b.k.Batch(batchID), b.k.Lock(batchID), b.k.Waiting(), b.k.Suppressed(), b.k.AuthPauseOf(b.acct)},
		append(append([]any{b.k.Base(), batchID, token, lockTTL.Milliseconds(), now.UnixMilli()}, b.reconcileArgs(lockTTL)...), b.expiryArgs(now)...)...)
	res, err := cmd.Slice()
	if err != nil {
		return Claim{}, fmt.Errorf("store: claim batch %s: %w", batchID, err)
	}
	if werr != nil {
		// Claimed on the master only: send nothing that a failover could
		// hand to another claim. The lock stays until it expires; the
		// task's retry then reconciles the claimed messages.
		return Claim{}, fmt.Errorf("store: claim batch %s: %w", batchID, werr)
	}
	if len(res) == 0 {
		return Claim{}, fmt.Errorf("store: claim batch %s: %w", batchID, ErrBatchReply)
	}
	state, _ := res[0].(string)
	switch state {
	case "gone":
		return Claim{State: ClaimGone}, nil
	case "locked":
		return Claim{State: ClaimLocked}, nil
	case "paused":
		g := ""
		if len(res) > 1 {
			g, _ = res[1].(string)
		}
		return Claim{State: ClaimPaused, Group: g}, nil
	case "ok":
	default:
		return Claim{}, fmt.Errorf("store: claim batch %s: %w", batchID, ErrBatchReply)
	}
	if len(res) < claimHeader || (len(res)-claimHeader)%claimItem != 0 {
		return Claim{}, fmt.Errorf("store: claim batch %s: %w", batchID, ErrBatchReply)
	}
	c := Claim{State: ClaimOK}
	c.Group, _ = res[1].(string)
	c.Cancelled = batchInt(res[2])
	c.Suppressed = batchInt(res[3])
	c.Skipped = batchInt(res[4])
	if c.Reconcile, err = parseReconcileCounts(res[5]); err != nil {
		return Claim{}, fmt.Errorf("store: claim batch %s: %w", batchID, err)
	}
	c.Expired = batchInt(res[6])
	c.Items = make([]BatchItem, 0, (len(res)-claimHeader)/claimItem)
	for i := claimHeader; i < len(res); i += claimItem {
		var it BatchItem
		it.ID, _ = res[i].(string)
		it.To, _ = res[i+1].(string)
		it.Name, _ = res[i+2].(string)
		it.Email, _ = res[i+3].(string)
		it.Text, _ = res[i+4].(string)
		if ms, _ := res[i+5].(int64); ms > 0 {
			it.ExpiresAt = time.UnixMilli(ms)
		}
		c.Items = append(c.Items, it)
	}
	return c, nil
}

func batchInt(v any) int {
	switch n := v.(type) {
	case int64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

var recordScript = NewScript("store.record", ReconcileLua+`
local ARGV, KEYS = ARGV, KEYS
local rcall = redis.call
local base = ARGV[1]
local now = ARGV[4]
-- the TTL as sent: a Lua number would be formatted (sprintf) per command
local ttl = ARGV[5]
local reqid = ARGV[6]
local retry = {}
local tns = {}
local sub, fail = 0, 0
for i = 7, #ARGV, 4 do
  local id, o, v, c = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local k = base .. 'msg:' .. id
  -- one read for the status and the in-flight stamp (the sms_id only
  -- when the status says it may be there: a field a record lacks costs a
  -- scan of all its fields)
  local cur = rcall('HMGET', k, 'status', 'flight', 'to')
  if cur[2] then
    -- ROX answered: out of the in-flight index first (a write that does
    -- not grow memory, so that under OOM Redis lets the script finish).
    -- A submitted one keeps its 'flight' field: with its sms_id nothing
    -- reads it as in flight (the claim, the callbacks and revive look
    -- only at messages without sms_id).
    roxd_rc_unindex(base, id, cur[3], tns)
    if o ~= 's' then rcall('HDEL', k, 'flight') end
  end
  if o == 's' then
    -- ROX accepted it: record it whatever happened meanwhile, except that
    -- a message already known delivered stays delivered (never backwards),
    -- and a second run of the same record (a journalled answer applied
    -- again, e.g. after a WAIT short of replicas) keeps the status a
    -- receipt gave it since.
    if (cur[1] == 'submitted' or cur[1] == 'delivered' or cur[1] == 'failed') and rcall('HGET', k, 'sms_id') == v then
      -- recorded already
    elseif cur[1] == 'delivered' then
      rcall('HSET', k, 'sms_id', v, 'request_id', reqid, 't_submitted', now)
    else
      rcall('HSET', k, 'status', 'submitted', 'sms_id', v, 'request_id', reqid, 't_submitted', now, 'err', '')
    end
    rcall('PEXPIRE', k, ttl)
    rcall('SET', base .. 'sms:' .. c, id, 'PX', ttl)
    sub = sub + 1
  elseif o == 'f' then
    local st = cur[1]
    if st == 'sending' or st == 'queued' or st == 'scheduled' then
      rcall('HSET', k, 'status', 'failed', 'err', v, 't_failed', now)
      rcall('PEXPIRE', k, ttl)
      fail = fail + 1
    end
  else
    -- the message exists (a claimed one always has a status)
    if cur[1] then
      rcall('HSET', k, 'err', v)
      retry[#retry + 1] = id
    end
  end
end
roxd_rc_evsweep(base, tns)
if #retry == 0 then
  rcall('DEL', KEYS[1])
  rcall('ZREM', KEYS[3], ARGV[2])
  rcall('ZREM', KEYS[4], ARGV[2])
  `+unwaitLua("KEYS[4]", "ARGV[2]")+`else
  rcall('HSET', KEYS[1], 'ids', cjson.encode(retry))
end
if rcall('GET', KEYS[2]) == ARGV[3] then rcall('DEL', KEYS[2]) end
return {sub, fail, #retry}
`)

// SendOutcome is what happened to one message of a ROX request.
type SendOutcome struct {
	ID string
	// Kind is OutcomeSubmitted (Value is the SMSId), OutcomeFailed (Value
	// is the reason, stored in err) or OutcomeRetry (Value is the last
	// error, stored in err; the message stays `sending` in the batch).
	Kind  SendOutcomeKind
	Value string
}

// SendOutcomeKind classifies an SendOutcome.
type SendOutcomeKind byte

const (
	OutcomeSubmitted SendOutcomeKind = 's'
	OutcomeFailed    SendOutcomeKind = 'f'
	OutcomeRetry     SendOutcomeKind = 'r'
)

// Recorded counts what Record wrote.
type Recorded struct {
	Submitted, Failed, Retry int
}

// Record writes ROX's answer in one script: for each submitted message its
// sms_id, request_id, status submitted and t_submitted, plus
// {P}:sms:<smsid> → message id (keyed by the canonical SMSId, see
// CanonicalSMSID), both living the status TTL from now (as every status
// change does); failed ones get status failed and err; retry
// ones stay `sending` with err set. The batch
// keeps only the retry ids; when there are none it is finished (deleted,
// removed from {P}:batches and {P}:waiting). The lock is released when it
// still holds token.
func (b *Batches) Record(ctx context.Context, batchID, token, requestID string, out []SendOutcome, now time.Time) (Recorded, error) {
	args := make([]any, 0, 6+4*len(out))
	args = append(args, b.k.Base(), batchID, token, now.UnixMilli(), b.ttl.Milliseconds(), requestID)
	for _, o := range out {
		// The SMSId map is keyed by the canonical id (CanonicalSMSID);
		// sms_id keeps ROX's spelling.
		canon := ""
		if o.Kind == OutcomeSubmitted {
			canon = CanonicalSMSID(o.Value)
		}
		args = append(args, o.ID, string(rune(o.Kind)), o.Value, canon)
	}
	cmd, werr := b.runReplicated(ctx, recordScript,
		[]string{b.k.Batch(batchID), b.k.Lock(batchID), b.k.Batches(), b.k.Waiting()}, args...)
	res, err := cmd.Int64Slice()
	if err == nil {
		err = werr // recorded on the master only: the caller journals it
	}
	if err != nil {
		return Recorded{}, fmt.Errorf("store: record batch %s: %w", batchID, err)
	}
	if len(res) != 3 {
		return Recorded{}, fmt.Errorf("store: record batch %s: %w", batchID, ErrBatchReply)
	}
	return Recorded{Submitted: int(res[0]), Failed: int(res[1]), Retry: int(res[2])}, nil
}

var requeueScript = NewScript("store.requeue", ReconcileLua+`
local b = redis.call('HMGET', KEYS[1], 'group', 'ids')
local n = 0
if b[1] and b[2] then
  local ids = cjson.decode(b[2])
  local base = ARGV[1]
  local rk = base .. 'ready:' .. b[1]
  for i = #ids, 1, -1 do
    local id = ids[i]
    local k = base .. 'msg:' .. id
    local f = redis.call('HMGET', k, 'status', 'sms_id')
    if f[1] and not (f[2] and f[2] ~= '') and (f[1] == 'sending' or f[1] == 'queued' or f[1] == 'scheduled' or f[1] == 'reconciling') then
      -- reconciling keeps its status and flight: its next claim decides
      if f[1] == 'sending' then
        redis.call('HSET', k, 'status', 'queued')
        roxd_rc_land(base, k, id)
      end
      redis.call('LPUSH', rk, id)
      n = n + 1
    end
  end
  if n > 0 then redis.call('SADD', KEYS[5], b[1]) end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
`+unwaitLua("KEYS[4]", "ARGV[2]")+`if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return n
`)

// Requeue puts the batch's unsent messages back at the FRONT of their
// group's ready list, in their order (a message being sent goes back to
// queued, so it may be cancelled again), and finishes the batch. Used when
// ROX rejects the credentials: nothing is lost and nothing is failed.
func (b *Batches) Requeue(ctx context.Context, batchID, token string) (int, error) {
	n, err := requeueScript.Run(ctx, b.rdb,
		[]string{b.k.Batch(batchID), b.k.Lock(batchID), b.k.Batches(), b.k.Waiting(), b.k.Groups()},
		b.k.Base(), batchID, token).Int()
	if err != nil {
		return 0, fmt.Errorf("store: requeue batch %s: %w", batchID, err)
	}
	return n, nil
}

var finishScript = NewScript("store.finish", `
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
`+unwaitLua("KEYS[4]", "ARGV[1]")+`if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
`)

// Finish deletes the batch, removes it from {P}:batches and {P}:waiting and
// releases the lock if it still holds token.
func (b *Batches) Finish(ctx context.Context, batchID, token string) error {
	err := finishScript.Run(ctx, b.rdb,
		[]string{b.k.Batch(batchID), b.k.Lock(batchID), b.k.Batches(), b.k.Waiting()}, batchID, token).Err()
	if err != nil {
		return fmt.Errorf("store: finish batch %s: %w", batchID, err)
	}
	return nil
}

var unlockScript = NewScript("store.unlock", `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Unlock releases the batch's lock if it still holds token.
func (b *Batches) Unlock(ctx context.Context, batchID, token string) error {
	if err := unlockScript.Run(ctx, b.rdb, []string{b.k.Lock(batchID)}, token).Err(); err != nil {
		return fmt.Errorf("store: unlock batch %s: %w", batchID, err)
	}
	return nil
}

// PauseAuth sets the account's auth pause ({P}:authpause for the default
// account, see ForAccount) for d: Form and Claim of that account refuse to
// work while it exists.
func (b *Batches) PauseAuth(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		d = time.Second
	}
	if err := b.rdb.Set(ctx, b.k.AuthPauseOf(b.acct), strconv.FormatInt(d.Milliseconds(), 10), d).Err(); err != nil {
		return fmt.Errorf("store: pause: %w", err)
	}
	return nil
}

// Stale returns up to limit batch ids created before olderThan, oldest
// first: candidates for a reaper that re-enqueues batches whose task was
// never enqueued (a crash between forming and enqueueing).
func (b *Batches) Stale(ctx context.Context, olderThan time.Time, limit int) ([]string, error) {
	ids, err := b.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: b.k.Batches(), Start: "-inf", Stop: strconv.FormatInt(olderThan.UnixMilli(), 10),
		ByScore: true, Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("store: stale batches: %w", err)
	}
	return ids, nil
}

// BatchInfo is a batch record as stored.
type BatchInfo struct {
	ID, Group string
	IDs       []string
	Attempt   int
	Created   time.Time
}

// ErrNoBatch means the batch record does not exist.
var ErrNoBatch = errors.New("store: no such batch")

// Batch reads a batch record (tests, tooling).
func (b *Batches) Batch(ctx context.Context, id string) (BatchInfo, error) {
	m, err := b.rdb.HGetAll(ctx, b.k.Batch(id)).Result()
	if err != nil {
		return BatchInfo{}, fmt.Errorf("store: batch %s: %w", id, err)
	}
	if len(m) == 0 {
		return BatchInfo{}, ErrNoBatch
	}
	bi := BatchInfo{ID: id, Group: m["group"]}
	if s := m["ids"]; s != "" && s != "{}" {
		if err := json.Unmarshal([]byte(s), &bi.IDs); err != nil {
			return BatchInfo{}, fmt.Errorf("store: batch %s ids: %w", id, err)
		}
	}
	bi.Attempt, _ = strconv.Atoi(m["attempt"])
	if ms, err := strconv.ParseInt(m["created"], 10, 64); err == nil {
		bi.Created = time.UnixMilli(ms)
	}
	return bi, nil
}

// Batches returns the worker's batch operations over s's keyspace.
func (s *Store) Batches() *Batches {
	return NewBatches(s.rdb, s.keys, s.cfg.StatusTTL).WithReplicas(s.cfg.Replicas)
}
