package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/rox"
)

// Defaults of Config.
const (
	DefaultStatusTTL    = 7 * 24 * time.Hour
	DefaultScheduleLead = time.Minute
)

// Sentinel errors of the message store.
var (
	// ErrNotFound: no record with that id (never accepted, or it ended more
	// than StatusTTL ago: only an ended record has a TTL).
	ErrNotFound = errors.New("store: message not found")
	// ErrNotCancellable: the message has left queued/scheduled (it is being
	// handed to ROX, or later). The error wraps it with the current status.
	ErrNotCancellable = errors.New("store: message can no longer be cancelled")
)

// Config of a Store. The zero value means every default.
type Config struct {
	// Prefix of every key (DefaultPrefix when empty). It becomes the hash
	// tag {Prefix}, so it must not contain braces.
	Prefix string
	// StatusTTL is how long a record stays readable once its message has
	// ended: submitted, delivered, failed, cancelled, expired or suppressed
	// (DefaultStatusTTL when 0). It is set when the record reaches such a
	// status (and renewed by a later change that sets it again). While the
	// message can still be sent (queued, scheduled, sending, reconciling)
	// the record has no TTL, however long it waits (docs/LIFECYCLE.md).
	StatusTTL time.Duration
	// ScheduleLead is how long before SendAt a scheduled message is handed
	// over to ROX with SendLater (DefaultScheduleLead when 0).
	ScheduleLead time.Duration
	// Replicas is ROXD_REDIS_MIN_REPLICAS: when enabled, Enqueue returns
	// only once that many replicas have the records (waitReplicated).
	Replicas redisconn.Replicas
	// Shards is the number of shards (shards.go; 0 means 1): message id
	// maps to shard ShardOf(id, Shards), keys {Prefix:i}; with 1, {Prefix}.
	Shards int
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.StatusTTL == 0 {
		c.StatusTTL = DefaultStatusTTL
	}
	if c.ScheduleLead == 0 {
		c.ScheduleLead = DefaultScheduleLead
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	return c
}

// Validate reports the first invalid field of c (after WithDefaults).
func (c Config) Validate() error {
	switch {
	case strings.ContainsAny(c.Prefix, "{}"):
		return fmt.Errorf("store: config: Prefix %q must not contain braces", c.Prefix)
	case c.StatusTTL < time.Second:
		return fmt.Errorf("store: config: StatusTTL %s must be at least 1s", c.StatusTTL)
	case c.ScheduleLead < 0:
		return fmt.Errorf("store: config: ScheduleLead %s must not be negative", c.ScheduleLead)
	case c.Shards < 1 || c.Shards > MaxShards:
		return fmt.Errorf("store: config: Shards %d must be 1..%d", c.Shards, MaxShards)
	}
	return nil
}

// Store is roxd's Redis keyspace: message records (this file), batches
// (batches.go) and the suppression list (suppression.go). It is safe for
// concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	cfg    Config
	keys   Keys   // shard 0's
	shards []Keys // every shard's (shards.go)
	now    func() time.Time
}

// New returns a Store on rdb. cfg is completed with defaults and validated.
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("store: nil redis client")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	shards := ShardKeys(cfg.Prefix, cfg.Shards)
	return &Store{rdb: rdb, cfg: cfg, keys: shards[0], shards: shards, now: time.Now}, nil
}

// Keys returns the key builder of the store's first shard (with one shard:
// the store's prefix).
func (s *Store) Keys() Keys { return s.keys }

// KeysOf returns the key builder of message id's shard.
func (s *Store) KeysOf(id string) Keys { return s.shards[ShardOf(id, len(s.shards))] }

// Shards returns the key builder of every shard.
func (s *Store) Shards() []Keys { return slices.Clone(s.shards) }

// Redis returns the client the store uses.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Config returns the store's configuration, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// Record is one message as stored in {P}:msg:<id> (docs/ARCHITECTURE.md).
type Record struct {
	ID      string
	To      string // E.164
	Name    string
	Email   string
	Text    string
	Receipt string // always|on_error|never
	Reply   string // http|email|sms|both
	// OnAmbiguous overrides the worker's policy for this message when ROX's
	// outcome is unknown: resend|reconcile|fail ("" = the default).
	OnAmbiguous string
	// Priority is high, normal or bulk ("" = normal). It is part of the
	// group (WithPriority): batches never mix priorities.
	Priority string
	SendAt   time.Time
	// ExpiresAt is when the message stops being worth sending (zero =
	// never): not handed to ROX by then, it ends expired. Stored in unix ms.
	ExpiresAt time.Time
	// Validity is the caller's own validity as given (e.g. "valid_for=30s"
	// or "expires_at=<unix ms>"), part of the content hash; "" when none
	// was given (a deployment default is not content).
	Validity string
	// Account is the ROX account that sends it ("" or DefaultAccount: the
	// single-account variables). It is kept in the group key (WithAccount)
	// and read back from it.
	Account  string
	Metadata map[string]string
	// Hash is the content hash for idempotency (see ContentHash).
	Hash string
	// Group is the coalescing group (see Group); Enqueue sets it.
	Group     string
	Status    Status
	Err       string
	SMSID     string
	RequestID string
	Attempts  int
	// Batch is the batch (= asynq task id) that carried the message last
	// ("" until a batch is formed).
	Batch string
	// History holds each status reached and when, oldest first. Read-only:
	// built from the t_<status> fields.
	History []Event
}

// Event is one entry of a record's history.
type Event struct {
	Status Status
	At     time.Time
}

// Record hash field names (docs/ARCHITECTURE.md, binding).
const (
	FieldTo        = "to"
	FieldName      = "name"
	FieldEmail     = "email"
	FieldText      = "text"
	FieldReceipt   = "receipt"
	FieldReply     = "reply"
	FieldSendAt    = "send_at"
	FieldMeta      = "meta"
	FieldHash      = "hash"
	FieldGroup     = "group"
	FieldStatus    = "status"
	FieldErr       = "err"
	FieldSMSID     = "sms_id"
	FieldRequestID = "request_id"
	FieldAttempts  = "attempts"
	// FieldPriority is written only for high and bulk (absent = normal).
	FieldPriority = "priority"
	// FieldExpiresAt is the unix ms of ExpiresAt (absent = never).
	FieldExpiresAt = "expires_at"
	// FieldTimePrefix + status is the unix ms when the status was reached.
	FieldTimePrefix = "t_"
)

// GroupNow is the SendLater part of the group of messages sent at once.
const GroupNow = "now"

// DefaultAccount is the ROX account of the single-account variables
// (ROX_ACCOUNT_ID, ...). Its messages' groups carry no account part, as
// before accounts existed.
const DefaultAccount = "default"

// AccountNameRule says what an account name may be.
const AccountNameRule = "1..32 of a-z 0-9 _ - starting with a letter or digit"

// ValidAccountName reports whether name follows AccountNameRule (it goes
// into group keys, key names and metric labels).
func ValidAccountName(name string) bool {
	if len(name) < 1 || len(name) > 32 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// groupAccountTag starts the account part of a group key: a message of
// account "marketing" is in group "<sendlater>|<receipt>|<reply>|@marketing".
// The part is found by its tag, not its position, so that other parts may
// be added beside it.
const groupAccountTag = "|@"

// WithAccount returns group with the account part of account added (the
// default account adds nothing).
func WithAccount(group, account string) string {
	if account == "" || account == DefaultAccount {
		return group
	}
	return group + groupAccountTag + account
}

// GroupAccount returns the ROX account of a group key (DefaultAccount when
// it has no account part).
func GroupAccount(group string) string {
	i := strings.Index(group, groupAccountTag)
	if i < 0 {
		return DefaultAccount
	}
	a := group[i+len(groupAccountTag):]
	if j := strings.IndexByte(a, '|'); j >= 0 {
		a = a[:j]
	}
	return a
}

// Group returns the coalescing group "<sendlater>|<receipt>|<reply>" of a
// message. sendlater is GroupNow when sendAt is zero or not after now, and
// otherwise the unix second of sendAt rounded up (so that SendLater is never
// before SendAt). The group of a future message does not depend on lead:
// whether it waits in the scheduled zset or goes straight to the ready list,
// it is sent with SendLater; lead is accepted so that callers state the
// deployment's lead in one place.
func Group(sendAt time.Time, lead time.Duration, now time.Time, receipt, reply string) string {
	_ = lead
	return groupSendLater(sendAt, now) + "|" + receipt + "|" + reply
}

func groupSendLater(sendAt, now time.Time) string {
	if sendAt.IsZero() || !sendAt.After(now) {
		return GroupNow
	}
	sec := sendAt.Unix()
	if sendAt.Nanosecond() > 0 {
		sec++
	}
	return strconv.FormatInt(sec, 10)
}

// ParseGroup splits a group key into the SendLater time (zero for GroupNow),
// receipt mode and reply mode. Tagged components after the first three
// ("|p=high", see WithPriority) are read by their own functions
// (GroupPriority).
func ParseGroup(group string) (sendLater time.Time, receipt, reply string, err error) {
	parts := strings.Split(group, "|")
	// Parts after the third are tagged extras: "p=<priority>"
	// (GroupPriority) and "@<account>" (GroupAccount).
	if len(parts) < 3 {
		return time.Time{}, "", "", fmt.Errorf("store: group %q: want <sendlater>|<receipt>|<reply>", group)
	}
	for _, p := range parts[3:] {
		if !strings.Contains(p, "=") && !strings.HasPrefix(p, "@") {
			return time.Time{}, "", "", fmt.Errorf("store: group %q: component %q is not <tag>=<value> or @<account>", group, p)
		}
	}
	if parts[0] != GroupNow {
		sec, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return time.Time{}, "", "", fmt.Errorf("store: group %q: bad sendlater: %w", group, err)
		}
		sendLater = time.Unix(sec, 0).UTC()
	}
	return sendLater, parts[1], parts[2], nil
}

// ContentHash is the idempotency hash of r's content: to, text, name, email,
// send_at (unix ms), receipt, reply and metadata in sorted key order. Two
// records with the same id and the same hash are the same message.
func (r *Record) ContentHash() string {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(r.To)
	put(r.Text)
	put(r.Name)
	put(r.Email)
	put(strconv.FormatInt(unixMilli(r.SendAt), 10))
	put(r.Receipt)
	put(r.Reply)
	if r.OnAmbiguous != "" {
		put("on_ambiguous=" + r.OnAmbiguous) // absent: hashes as before
	}
	if r.Priority != "" && r.Priority != PriorityNormal {
		put("priority=" + r.Priority) // normal: hashes as before
	}
	if r.Validity != "" {
		put("validity=" + r.Validity) // none given: hashes as before
	}
	if r.Account != "" && r.Account != DefaultAccount {
		put("account=" + r.Account) // the default account hashes as before
	}
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	put(strconv.Itoa(len(keys)))
	for _, k := range keys {
		put(k)
		put(r.Metadata[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// EnqueueOutcome says what Enqueue did with one record.
type EnqueueOutcome int

const (
	// Created: a new record, queued or scheduled.
	Created EnqueueOutcome = iota
	// Existing: the id exists with the same content: an idempotent replay;
	// nothing was queued, the status is the existing one.
	Existing
	// Conflict: the id exists with other content; nothing changed.
	Conflict
	// Suppressed: a new record with status suppressed (the number opted
	// out); it is in no ready list and never sent.
	Suppressed
)

// String names the outcome.
func (o EnqueueOutcome) String() string {
	switch o {
	case Created:
		return "created"
	case Existing:
		return "existing"
	case Conflict:
		return "conflict"
	case Suppressed:
		return "suppressed"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// enqueueScript creates a chunk of records (all of one shard) in one call,
// each atomically, or reports the existing one.
//
// KEYS[1] groups set   KEYS[2] scheduled zset   KEYS[3] suppressed set
// KEYS[2+2i], KEYS[3+2i] (i = 1..N): record i's msg key and the ready list
// of its group
// ARGV[1] now_ms   ARGV[2] N; then per record its argument count c and c
// arguments: id hash mode(now|lead|sched) ttl_ms send_at_ms group to name
// email text receipt reply meta on_ambiguous, then optional record fields
// as name, value pairs (written only when the value is not empty:
// priority, ...)
// Returns 2 values per record, in order: code, status; code 0 created, 1
// existing (same hash), 2 conflict, 3 created suppressed.
//
// One EXISTS over the chunk's msg keys (per record only when some exist)
// and one SMISMEMBER for the numbers decide every record first; a record
// given twice in one chunk is created once, the second is existing or a
// conflict. Then the pushes: one RPUSH per ready list, one SADD of the
// groups (the scheduled ones one by one), before any record is written, as
// a single record's push came before its HSET: a script failing half-way
// leaves ids without records, as it did then, never a queued record in no
// list that a replay would take for existing. Then one HSET each
// (optional fields included); only a suppressed record (ended at once)
// gets its TTL, a queued or scheduled one has none (docs/LIFECYCLE.md).
var enqueueScript = NewScript("store.enqueue", `
local ARGV, KEYS = ARGV, KEYS
local rcall = redis.call
local n = tonumber(ARGV[2])
local now = ARGV[1]
local base = string.sub(KEYS[2], 1, #KEYS[2] - 9)
local off, lasts, mks, tos = {}, {}, {}, {}
local at = 3
for i = 1, n do
  off[i] = at
  mks[i] = KEYS[2 + 2 * i]
  tos[i] = ARGV[at + 7]
  -- 18 arguments (what Enqueue sends) without tonumber, whose strtod is
  -- ~1.5% of a record's instructions
  if ARGV[at] == '18' then lasts[i] = at + 18 else lasts[i] = at + tonumber(ARGV[at]) end
  at = lasts[i] + 1
end
if n == 0 then return {} end
local some = rcall('EXISTS', unpack(mks)) > 0
local sup = rcall('SMISMEMBER', KEYS[3], unpack(tos))
-- made: the status and hash of a record created earlier in this call
local out, made, madehash, new = {}, {}, {}, {}
local lists, order, groups = {}, {}, {}
for i = 1, n do
  local o = off[i]
  local mk = mks[i]
  local code, status
  if made[mk] then
    status = made[mk]
    if madehash[mk] == ARGV[o + 2] then code = 1 else code = 2 end
  elseif some and rcall('EXISTS', mk) == 1 then
    local r = rcall('HMGET', mk, 'hash', 'status')
    status = r[2] or ''
    if r[1] == ARGV[o + 2] then code = 1 else code = 2 end
  else
    local id, mode, group = ARGV[o + 1], ARGV[o + 3], ARGV[o + 6]
    if sup[i] == 1 then
      status, code = 'suppressed', 3
    elseif mode == 'sched' then
      status, code = 'scheduled', 0
      rcall('ZADD', KEYS[2], ARGV[o + 5], id)
      -- The group's schedule set and dirty mark: the worker keeps one
      -- asynq task per schedule group (internal/store/operator.go).
      rcall('ZADD', base .. 'sched:' .. group, ARGV[o + 5], id)
      rcall('SADD', base .. 'sdirty', group)
    else
      status, code = 'queued', 0
      local l = KEYS[3 + 2 * i]
      if not lists[l] then
        lists[l] = {}
        order[#order + 1] = l
      end
      local ids = lists[l]
      ids[#ids + 1] = id
      if not groups[group] then
        groups[group] = true
        groups[#groups + 1] = group
      end
    end
    made[mk] = status
    madehash[mk] = ARGV[o + 2]
    new[#new + 1] = i
  end
  out[#out + 1] = code
  out[#out + 1] = status
end
for _, l in ipairs(order) do rcall('RPUSH', l, unpack(lists[l])) end
if #groups > 0 then rcall('SADD', KEYS[1], unpack(groups)) end
-- t_<status> without a concatenation per record
local tfield = {queued = 't_queued', scheduled = 't_scheduled', suppressed = 't_suppressed'}
for _, i in ipairs(new) do
  local o = off[i]
  local mk = mks[i]
  local status = made[mk]
  local last = lasts[i]
  -- fields at their zero value are left out (every reader takes a missing
  -- one as it: '', '{}', 0): ~50 B less per record. When all optional
  -- ones are (most records), one HSET with its arguments in place, no
  -- table.
  local plain = ARGV[o + 8] == '' and ARGV[o + 9] == '' and ARGV[o + 5] == '0' and ARGV[o + 13] == '{}'
    and (last < o + 14 or ARGV[o + 14] == '')
  if plain then
    for j = o + 16, last, 2 do
      if ARGV[j] ~= '' then
        plain = false
        break
      end
    end
  end
  if plain then
    rcall('HSET', mk, 'to', ARGV[o + 7], 'text', ARGV[o + 10], 'receipt', ARGV[o + 11], 'reply', ARGV[o + 12],
      'hash', ARGV[o + 2], 'group', ARGV[o + 6], 'status', status, tfield[status], now)
  else
    local h = {'to', ARGV[o + 7], 'text', ARGV[o + 10], 'receipt', ARGV[o + 11], 'reply', ARGV[o + 12],
      'hash', ARGV[o + 2], 'group', ARGV[o + 6], 'status', status, tfield[status], now}
    if ARGV[o + 8] ~= '' then h[#h + 1] = 'name'; h[#h + 1] = ARGV[o + 8] end
    if ARGV[o + 9] ~= '' then h[#h + 1] = 'email'; h[#h + 1] = ARGV[o + 9] end
    if ARGV[o + 5] ~= '0' then h[#h + 1] = 'send_at'; h[#h + 1] = ARGV[o + 5] end
    if ARGV[o + 13] ~= '{}' then h[#h + 1] = 'meta'; h[#h + 1] = ARGV[o + 13] end
    if last >= o + 14 and ARGV[o + 14] ~= '' then
      h[#h + 1] = 'on_ambiguous'
      h[#h + 1] = ARGV[o + 14]
    end
    for j = o + 15, last - 1, 2 do
      if ARGV[j + 1] ~= '' then
        h[#h + 1] = ARGV[j]
        h[#h + 1] = ARGV[j + 1]
      end
    end
    rcall('HSET', mk, unpack(h))
  end
  -- no TTL while it can be sent (docs/LIFECYCLE.md): only a suppressed one
  -- has ended
  if status == 'suppressed' then rcall('PEXPIRE', mk, ARGV[o + 4]) end
end
return out
`)

// enqueueChunk is the most records one enqueue script call carries: a
// batch of 500 is 4 calls, and one call keeps Redis busy for ~1 ms at most.
const enqueueChunk = 128

// Enqueue stores recs with one script call per chunk of up to
// enqueueChunk records of one shard, all in one pipeline (one round trip).
// For each record it returns the outcome and the status (the
// new one, or the existing one for Existing and Conflict). A record whose
// SendAt minus the lead is after now waits in the scheduled zset (status
// scheduled: cancellable for sure until SendAt minus the lead); one whose
// SendAt is in the future but within the lead goes straight to the ready
// list of its SendLater group (status queued: the worker may take it at
// any moment); any other goes to the ready list of its "now" group (status
// queued). A number
// on the suppression list gives status suppressed and is not queued.
//
// recs must have an ID and a Hash (ContentHash when empty). The error is
// non-nil only when Redis failed; then some records may have been stored,
// and calling Enqueue again with the same records is safe (replays).
func (s *Store) Enqueue(ctx context.Context, recs []Record) ([]EnqueueOutcome, []Status, error) {
	if len(recs) == 0 {
		return nil, nil, nil
	}
	now := s.now()
	// calls are the script calls: each a chunk of records of one shard.
	type call struct {
		idx  []int
		keys []string
		args []any
	}
	var calls []*call
	open := make(map[int]*call, 1) // shard -> its chunk being filled
	for i := range recs {
		r := &recs[i]
		if r.ID == "" {
			return nil, nil, fmt.Errorf("store: enqueue: record %d has no id", i)
		}
		hash := r.Hash
		if hash == "" {
			hash = r.ContentHash()
		}
		meta := "{}"
		if len(r.Metadata) > 0 {
			b, err := json.Marshal(r.Metadata)
			if err != nil {
				return nil, nil, fmt.Errorf("store: enqueue: record %d metadata: %w", i, err)
			}
			meta = string(b)
		}
		if r.Priority != "" && !ValidPriority(r.Priority) {
			return nil, nil, fmt.Errorf("store: enqueue: record %d: unknown priority %q", i, r.Priority)
		}
		prio := r.Priority
		if prio == PriorityNormal {
			prio = ""
		}
		group := WithPriority(Group(r.SendAt, s.cfg.ScheduleLead, now, r.Receipt, r.Reply), r.Priority)
		group = WithAccount(group, r.Account)
		// large texts: fewer per ROX request (rox.MaxRequestBytes)
		if rr := (rox.Recipient{DestTn: r.To, DestName: r.Name, DestEmail: r.Email, SMSText: r.Text}); RequestCap(rox.RecipientBytesBound(rr)) < rox.MaxRecipients {
			group = WithRequestCap(group, RequestCap(rox.RecipientBytes(rr)))
		}
		mode := "now"
		sendAtMS := int64(0)
		if !strings.HasPrefix(group, GroupNow+"|") {
			sendAtMS = r.SendAt.UnixMilli()
			mode = "lead"
			if r.SendAt.Add(-s.cfg.ScheduleLead).After(now) {
				mode = "sched"
			}
		}
		sh := 0
		if len(s.shards) > 1 {
			sh = ShardOf(r.ID, len(s.shards))
		}
		k := s.shards[sh]
		c := open[sh]
		if c == nil || len(c.idx) == enqueueChunk {
			c = &call{keys: []string{k.Groups(), k.Scheduled(), k.Suppressed()}, args: []any{now.UnixMilli(), 0}}
			calls = append(calls, c)
			open[sh] = c
		}
		c.idx = append(c.idx, i)
		c.keys = append(c.keys, k.Msg(r.ID), k.Ready(group))
		args := []any{r.ID, hash, mode, ttlMS(s.cfg.StatusTTL), sendAtMS, group,
			r.To, r.Name, r.Email, r.Text, r.Receipt, r.Reply, meta, r.OnAmbiguous,
			FieldPriority, prio, FieldExpiresAt, expiresMS(r.ExpiresAt)}
		c.args = append(c.args, len(args))
		c.args = append(c.args, args...)
	}
	wake := s.shards[:1]
	if len(s.shards) > 1 {
		wake = nil
		for sh := range open {
			wake = append(wake, s.shards[sh])
		}
	}
	for _, c := range calls {
		c.args[1] = len(c.idx)
	}
	outcomes := make([]EnqueueOutcome, len(recs))
	statuses := make([]Status, len(recs))
	todo := calls
	// EVALSHA in a pipeline; calls that met NOSCRIPT (a Redis restart or
	// SCRIPT FLUSH) did nothing, so they are sent once more after a LOAD.
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt > 0 {
			if err := enqueueScript.Load(ctx, s.rdb).Err(); err != nil {
				return nil, nil, fmt.Errorf("store: enqueue: load script: %w", err)
			}
		}
		cmds := make([]*redis.Cmd, len(todo))
		var wait *redis.Cmd
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, c := range todo {
				cmds[j] = enqueueScript.EvalSha(ctx, p, c.keys, c.args...)
			}
			// Wake the workers' formers and schedulers (they do not poll
			// while idle). One message per pipeline; a lost one costs at
			// most the worker's idle tick.
			// With shards: each shard written to (its worker listens on its
			// own channel).
			for _, k := range wake {
				p.Publish(ctx, k.Wake(), "1")
			}
			wait = s.waitReplicated(ctx, p)
			return nil
		})
		var again []*call
		for j, c := range todo {
			cerr := cmds[j].Err()
			if redis.HasErrorPrefix(cerr, "NOSCRIPT") && attempt == 0 {
				again = append(again, c)
				continue
			}
			if cerr != nil {
				return nil, nil, fmt.Errorf("store: enqueue %q...: %w", recs[c.idx[0]].ID, cerr)
			}
			v, perr := cmds[j].Slice()
			if perr == nil && len(v) != 2*len(c.idx) {
				perr = fmt.Errorf("script answered %d values, want %d", len(v), 2*len(c.idx))
			}
			if perr != nil {
				return nil, nil, fmt.Errorf("store: enqueue %q...: %w", recs[c.idx[0]].ID, perr)
			}
			for k, i := range c.idx {
				code, ok := v[2*k].(int64)
				st, _ := v[2*k+1].(string)
				statuses[i] = Status(st)
				switch {
				case !ok:
					return nil, nil, fmt.Errorf("store: enqueue %q: script code %T, want integer", recs[i].ID, v[2*k])
				case code == 0:
					outcomes[i] = Created
				case code == 1:
					outcomes[i] = Existing
				case code == 2:
					outcomes[i] = Conflict
				case code == 3:
					outcomes[i] = Suppressed
				default:
					return nil, nil, fmt.Errorf("store: enqueue %q: unexpected script code %d", recs[i].ID, code)
				}
			}
		}
		if err != nil && len(again) == 0 && !isWaitOnly(err, wait) {
			return nil, nil, fmt.Errorf("store: enqueue: %w", err)
		}
		if len(again) == 0 {
			// The records are on the master; the answer waits for the
			// replicas of every one of them, replays included.
			if werr := s.cfg.Replicas.Check(wait); werr != nil {
				return nil, nil, fmt.Errorf("store: enqueue: %w", werr)
			}
		}
		todo = again
	}
	return outcomes, statuses, nil
}

// expiresMS is t in unix ms for the record, "" for zero (no field).
func expiresMS(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// waitReplicated queues, after the enqueue scripts in p (one connection),
// the wait for ROXD_REDIS_MIN_REPLICAS replicas: the producer's "accepted"
// then means "on the master and on that many replicas". nil when off.
func (s *Store) waitReplicated(ctx context.Context, p redis.Pipeliner) *redis.Cmd {
	return s.cfg.Replicas.Queue(ctx, p)
}

// isWaitOnly reports whether the pipeline's error is the WAIT's own (the
// scripts all answered): Replicas.Check reports it.
func isWaitOnly(err error, wait *redis.Cmd) bool {
	return wait != nil && wait.Err() != nil && errors.Is(err, wait.Err())
}

func ttlMS(d time.Duration) int64 {
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return ms
}

func parseCodeStatus(c *redis.Cmd) (int64, string, error) {
	v, err := c.Slice()
	if err != nil {
		return 0, "", err
	}
	if len(v) != 2 {
		return 0, "", fmt.Errorf("script answered %d values, want 2", len(v))
	}
	code, ok := v[0].(int64)
	if !ok {
		return 0, "", fmt.Errorf("script code %T, want integer", v[0])
	}
	st, _ := v[1].(string)
	return code, st, nil
}

// Get reads the record of id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Record, error) {
	m, err := s.rdb.HGetAll(ctx, s.KeysOf(id).Msg(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: get %q: %w", id, err)
	}
	if len(m) == 0 || m[FieldStatus] == "" {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return RecordFromHash(id, m)
}

// RecordFromHash builds a Record from the fields of {P}:msg:<id> (as read
// by HGETALL).
func RecordFromHash(id string, m map[string]string) (*Record, error) {
	r := &Record{
		ID: id, To: m[FieldTo], Name: m[FieldName], Email: m[FieldEmail], Text: m[FieldText],
		Receipt: m[FieldReceipt], Reply: m[FieldReply], Hash: m[FieldHash], Group: m[FieldGroup],
		Status: Status(m[FieldStatus]), Err: m[FieldErr], SMSID: m[FieldSMSID], RequestID: m[FieldRequestID],
		OnAmbiguous: m["on_ambiguous"],
		Batch:       m[FieldBatch],
		Priority:    m[FieldPriority],
	}
	if r.Priority == "" {
		r.Priority = PriorityNormal
	}
	if v, err := strconv.ParseInt(m[FieldExpiresAt], 10, 64); err == nil && v > 0 {
		r.ExpiresAt = time.UnixMilli(v).UTC()
	}
	r.Account = GroupAccount(r.Group)
	if v, err := strconv.ParseInt(m[FieldManualRetry], 10, 64); err == nil {
		// An archived task run again: the one step back from failed.
		r.History = append(r.History, Event{Status: EventManualRetry, At: time.UnixMilli(v).UTC()})
	}
	if v := m[FieldSendAt]; v != "" && v != "0" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("store: record %q: send_at %q: %w", id, v, err)
		}
		r.SendAt = time.UnixMilli(ms).UTC()
	}
	if v := m[FieldAttempts]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("store: record %q: attempts %q: %w", id, v, err)
		}
		r.Attempts = n
	}
	if v := m[FieldMeta]; v != "" && v != "{}" {
		if err := json.Unmarshal([]byte(v), &r.Metadata); err != nil {
			return nil, fmt.Errorf("store: record %q: meta: %w", id, err)
		}
	}
	for f, v := range m {
		st, ok := strings.CutPrefix(f, FieldTimePrefix)
		if !ok || !ValidStatus(st) {
			continue
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		r.History = append(r.History, Event{Status: Status(st), At: time.UnixMilli(ms).UTC()})
	}
	SortHistory(r.History)
	return r, nil
}

// historyStep is a status's place in the state machine, for ordering a
// history: the failed step comes before delivered because failed →
// delivered is the one move between two final statuses.
func historyStep(s Status) int {
	switch s {
	case StatusFailed:
		return 3
	case StatusDelivered:
		return 4
	case StatusCancelled, StatusSuppressed, StatusExpired:
		return 3
	}
	return s.Rank()
}

// SortHistory puts h in the order of the state machine (queued|scheduled,
// sending, submitted, failed, delivered; cancelled and suppressed end it),
// and by time within one step (scheduled then queued). The times are kept
// as written, so they need not increase along the history: a receipt that
// ROX posted before the worker had recorded the send's answer is stamped
// with the moment it arrived, which can be before t_submitted, and hosts'
// clocks differ. The order is the one the message went through.
func SortHistory(h []Event) {
	// A manual retry (an archived task run again) is the one step back: what
	// came before it and what came after it are each in the state machine's
	// order, on either side of it.
	mr := -1
	for i, e := range h {
		if e.Status == EventManualRetry {
			mr = i
			break
		}
	}
	if mr < 0 {
		sortSteps(h)
		return
	}
	retry := h[mr]
	before := make([]Event, 0, len(h))
	var after []Event
	for i, e := range h {
		switch {
		case i == mr:
		case e.At.After(retry.At):
			after = append(after, e)
		default:
			before = append(before, e)
		}
	}
	sortSteps(before)
	sortSteps(after)
	copy(h, append(append(before, retry), after...))
}

func sortSteps(h []Event) {
	sort.SliceStable(h, func(i, j int) bool {
		a, b := h[i], h[j]
		if sa, sb := historyStep(a.Status), historyStep(b.Status); sa != sb {
			return sa < sb
		}
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		return a.Status == StatusScheduled && b.Status != StatusScheduled
	})
}

// cancelScript: KEYS msg, scheduled; ARGV id now_ms ttl_ms.
// Returns {1,'cancelled'}, {0,current} or {-1,”} when missing.
var cancelScript = NewScript("store.cancel", `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {-1, ''} end
if cur == 'queued' or cur == 'scheduled' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 't_cancelled', ARGV[2])
  if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
    -- Keep the schedule group's asynq task consistent (its count).
    local g = redis.call('HGET', KEYS[1], 'group')
    local base = string.sub(KEYS[2], 1, #KEYS[2] - 9)
    if g and redis.call('ZREM', base .. 'sched:' .. g, ARGV[1]) == 1 then
      redis.call('SADD', base .. 'sdirty', g)
    end
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, 'cancelled'}
end
return {0, cur}
`)

// Cancel cancels id while it is queued or scheduled: the status becomes
// cancelled and the id leaves the scheduled zset. An id left in a ready
// list is skipped by the worker's claim. From any other status the answer
// is the current status and an error wrapping ErrNotCancellable (a message
// already cancelled answers StatusCancelled and that error too); an unknown
// id gives ErrNotFound.
func (s *Store) Cancel(ctx context.Context, id string) (Status, error) {
	k := s.KeysOf(id)
	cmd := cancelScript.Run(ctx, s.rdb, []string{k.Msg(id), k.Scheduled()},
		id, s.now().UnixMilli(), ttlMS(s.cfg.StatusTTL))
	code, st, err := parseCodeStatus(cmd)
	if err != nil {
		return "", fmt.Errorf("store: cancel %q: %w", id, err)
	}
	switch code {
	case 1:
		return StatusCancelled, nil
	case -1:
		return "", fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return Status(st), fmt.Errorf("%w: %q is %s", ErrNotCancellable, id, Status(st).Public())
}

// TransitionLua defines roxd_can(cur, to) -> bool, the forward-only rule of
// docs/ARCHITECTURE.md in Lua, for scripts that change a status themselves
// (prepend it to the script's source). CanTransition is the same rule in Go.
const TransitionLua = `
local roxd_rank = {queued=0, scheduled=0, sending=1, reconciling=1, submitted=2,
  delivered=3, failed=3, cancelled=3, suppressed=3, expired=3}
local function roxd_can(cur, to)
  local rc, rt = roxd_rank[cur], roxd_rank[to]
  if rc == nil or rt == nil then return false end
  if cur == 'failed' and to == 'delivered' then return true end
  if rt <= rc then return false end
  if (to == 'cancelled' or to == 'suppressed') and rc ~= 0 then return false end
  if to == 'expired' and rc > 1 then return false end
  return true
end
`

// CanTransition reports whether a message may move from status from to
// status to: only to a higher Rank, to cancelled or suppressed only from
// queued or scheduled, and from failed to delivered (a delivery receipt is
// proof that the handset has the SMS, whatever was reported before it; see
// docs/ARCHITECTURE.md). delivered never becomes failed.
func CanTransition(from, to Status) bool {
	if from == StatusFailed && to == StatusDelivered {
		return true
	}
	rf, rt := from.Rank(), to.Rank()
	if rf < 0 || rt < 0 || rt <= rf {
		return false
	}
	if (to == StatusCancelled || to == StatusSuppressed) && rf != 0 {
		return false
	}
	if to == StatusExpired && rf > 1 {
		return false // handed to ROX: too late to expire
	}
	return true
}

// transitionScript: KEYS msg; ARGV to now_ms ttl_ms field value ...
// Returns {1,to}, {0,current} or {-1,”} when missing.
var transitionScript = NewScript("store.transition", TransitionLua+`
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {-1, ''} end
local to = ARGV[1]
if not roxd_can(cur, to) then return {0, cur} end
redis.call('HSET', KEYS[1], 'status', to, 't_' .. to, ARGV[2])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
-- no TTL while it can be sent, StatusTTL from its end (docs/LIFECYCLE.md)
if roxd_rank[to] <= 1 then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, to}
`)

// Transition moves id to status to, if CanTransition allows it, sets
// t_<to>, writes fields (e.g. "err", "sms_id") and sets the TTL by the
// rule of docs/LIFECYCLE.md: none while the message can still be sent
// (to sending), StatusTTL from now when it has ended. It
// returns whether it moved and the status after the call (the unchanged one
// when it did not move). An unknown id gives ErrNotFound. fields must not
// hold "status" or t_* keys.
func (s *Store) Transition(ctx context.Context, id string, to Status, fields map[string]string) (bool, Status, error) {
	if to.Rank() < 0 {
		return false, "", fmt.Errorf("store: transition %q: unknown status %q", id, to)
	}
	args := make([]any, 0, 3+2*len(fields))
	args = append(args, string(to), s.now().UnixMilli(), ttlMS(s.cfg.StatusTTL))
	for k, v := range fields {
		if k == FieldStatus || strings.HasPrefix(k, FieldTimePrefix) {
			return false, "", fmt.Errorf("store: transition %q: field %q is owned by the transition", id, k)
		}
		args = append(args, k, v)
	}
	code, st, err := parseCodeStatus(transitionScript.Run(ctx, s.rdb, []string{s.KeysOf(id).Msg(id)}, args...))
	if err != nil {
		return false, "", fmt.Errorf("store: transition %q: %w", id, err)
	}
	if code == -1 {
		return false, "", fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return code == 1, Status(st), nil
}
