package producer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
)

// ReceiptMode says when ROX sends a delivery receipt.
type ReceiptMode string

// Receipt modes (ROX ReceiptFlag 1, 2, 0).
const (
	ReceiptAlways  ReceiptMode = "always"
	ReceiptOnError ReceiptMode = "on_error"
	ReceiptNever   ReceiptMode = "never"
)

// ReplyMode says where ROX sends replies.
type ReplyMode string

// Reply modes (ROX ReplyType H, E, S, B).
const (
	ReplyHTTP  ReplyMode = "http"
	ReplyEmail ReplyMode = "email"
	ReplySMS   ReplyMode = "sms"
	ReplyBoth  ReplyMode = "both"
)

// Valid reports whether m names a receipt mode.
func (m ReceiptMode) Valid() bool {
	return m == ReceiptAlways || m == ReceiptOnError || m == ReceiptNever
}

// Valid reports whether m names a reply mode.
func (m ReplyMode) Valid() bool {
	return m == ReplyHTTP || m == ReplyEmail || m == ReplySMS || m == ReplyBoth
}

// Message is one SMS to send.
type Message struct {
	// ID is the caller's idempotency key, 1..128 of [A-Za-z0-9._:-], not "."
	// or ".." (URL path segments); a UUID is generated when empty.
	ID string
	// To is the recipient: a bare phone number (ASCII digits, one leading
	// "+", spaces, "-", "." and balanced parentheses; no letters, extensions
	// or other text; at most MaxNumberBytes), read by libphonenumber in the
	// default region and normalised to E.164.
	To string
	// Text of the SMS, 1..4000 characters of valid UTF-8 with at least one
	// visible character.
	Text string
	// Name and Email of the recipient (ROX DestName, DestEmail), optional.
	Name, Email string
	// SendAt schedules the message; zero (or a time up to MaxSchedulePast
	// ago) means now. ParseTime reads it from RFC 3339 text.
	SendAt time.Time
	// Receipt and Reply modes; empty means the configured default.
	Receipt ReceiptMode
	Reply   ReplyMode
	// Metadata comes back with the message's receipts and replies.
	Metadata map[string]string
	// OnAmbiguous overrides ROXD_AMBIGUOUS for this message; empty means
	// the deployment's default.
	OnAmbiguous AmbiguousMode
	// Priority is high, normal or bulk; empty means normal.
	Priority Priority
	// ValidFor is how long the message is worth sending, counted from
	// SendAt (from now when it is sent at once); ExpiresAt is the same as
	// an instant. Give at most one; neither means Config.DefaultValidity
	// (zero: no limit). A message not handed to ROX by then ends expired
	// and is never sent.
	ValidFor  time.Duration
	ExpiresAt time.Time
	// Account is the ROX account that sends it (Config.Accounts); empty
	// means DefaultAccount. Messages of different accounts never share a
	// ROX request.
	Account string
}

// Result is the outcome of one message.
type Result struct {
	ID string
	// Status after the call: queued, scheduled or suppressed for a new
	// message; the existing status (as stored) for a replay.
	Status store.Status
	// Replayed: the ID existed with the same content; nothing was queued.
	Replayed bool
	// To is the recipient in E.164.
	To string
	// Encoding is EncodingGSM7 or EncodingUCS2; Segments the SMS parts.
	Encoding string
	Segments int
	// ExpiresAt is when a new message expires if not handed to ROX by then
	// (zero: never, and for a replay: Get tells the stored one).
	ExpiresAt time.Time
	// CancellableUntil is the time until which Cancel is sure to succeed
	// (SendAt minus the schedule lead) for a scheduled message; zero for
	// any other status (a queued message may be taken by the worker at any
	// moment: Cancel may still win, but nothing is promised).
	CancellableUntil time.Time
	// Err is this message's problem in SendMany: a *FieldError or
	// ErrConflict. Nil when accepted or replayed.
	Err error
}

// Errors of the producer. ErrNotFound and ErrNotCancellable are the store's
// sentinels, so errors.Is works with either package's name.
var (
	// ErrConflict: the ID exists with other content.
	ErrConflict = errors.New("producer: id already used for a different message")
	// ErrNotFound: no message with that ID (or it ended, e.g. submitted or
	// failed, more than ROXD_STATUS_TTL ago; a message that can still be
	// sent is never forgotten).
	ErrNotFound = store.ErrNotFound
	// ErrNotCancellable: the message has been handed to ROX (or finished).
	ErrNotCancellable = store.ErrNotCancellable
)

// Defaults of Config.
const (
	DefaultRegion           = "AU"
	DefaultReceipt          = ReceiptAlways
	DefaultReply            = ReplyHTTP
	DefaultMaxMetadataBytes = 2048
	DefaultMaxMetadataKeys  = 32
	DefaultMaxScheduleAhead = 8760 * time.Hour
	DefaultMaxSchedulePast  = time.Minute
	// MaxTextLen is ROX's String(4000) limit, in characters.
	MaxTextLen = 4000
	// MaxIDLen is the longest message ID.
	MaxIDLen = 128
)

// Config of a Producer. Zero fields take the defaults above.
type Config struct {
	// DefaultRegion is the ISO 3166 region for numbers without a country
	// code (ROXD_DEFAULT_REGION).
	DefaultRegion    string
	DefaultReceipt   ReceiptMode
	DefaultReply     ReplyMode
	MaxMetadataBytes int // sum of key and value lengths, in bytes
	MaxMetadataKeys  int
	// MaxScheduleAhead: a SendAt further ahead is refused.
	MaxScheduleAhead time.Duration
	// MaxSchedulePast: a SendAt older than this is refused; a younger past
	// SendAt means now.
	MaxSchedulePast time.Duration
	// DefaultValidity is the validity of a message that gives neither
	// ValidFor nor ExpiresAt (ROXD_DEFAULT_VALIDITY; zero: no limit).
	DefaultValidity time.Duration
	Store           store.Config
	// Accounts are the names a message's Account may take besides
	// DefaultAccount (the ROX_ACCOUNTS file's); another name is refused,
	// naming the field.
	Accounts []string
}

// DefaultAccount is the ROX account of a message without Account.
const DefaultAccount = store.DefaultAccount

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.DefaultRegion == "" {
		c.DefaultRegion = DefaultRegion
	}
	if c.DefaultReceipt == "" {
		c.DefaultReceipt = DefaultReceipt
	}
	if c.DefaultReply == "" {
		c.DefaultReply = DefaultReply
	}
	if c.MaxMetadataBytes == 0 {
		c.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if c.MaxMetadataKeys == 0 {
		c.MaxMetadataKeys = DefaultMaxMetadataKeys
	}
	if c.MaxScheduleAhead == 0 {
		c.MaxScheduleAhead = DefaultMaxScheduleAhead
	}
	if c.MaxSchedulePast == 0 {
		c.MaxSchedulePast = DefaultMaxSchedulePast
	}
	c.Store = c.Store.WithDefaults()
	return c
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	switch {
	case !validAccounts(c.Accounts):
		return fmt.Errorf("producer: config: Accounts: each name must be %s, once, and not %q", store.AccountNameRule, DefaultAccount)
	case phonenumbers.GetCountryCodeForRegion(c.DefaultRegion) == 0:
		return fmt.Errorf("producer: config: DefaultRegion %q is not a known region (e.g. AU)", c.DefaultRegion)
	case !c.DefaultReceipt.Valid():
		return fmt.Errorf("producer: config: DefaultReceipt %q: want always, on_error or never", c.DefaultReceipt)
	case !c.DefaultReply.Valid():
		return fmt.Errorf("producer: config: DefaultReply %q: want http, email, sms or both", c.DefaultReply)
	case c.MaxMetadataBytes < 0:
		return fmt.Errorf("producer: config: MaxMetadataBytes %d is negative", c.MaxMetadataBytes)
	case c.MaxMetadataKeys < 0:
		return fmt.Errorf("producer: config: MaxMetadataKeys %d is negative", c.MaxMetadataKeys)
	case c.MaxScheduleAhead < 0:
		return fmt.Errorf("producer: config: MaxScheduleAhead %s is negative", c.MaxScheduleAhead)
	case c.MaxSchedulePast < 0:
		return fmt.Errorf("producer: config: MaxSchedulePast %s is negative", c.MaxSchedulePast)
	case c.DefaultValidity < 0:
		return fmt.Errorf("producer: config: DefaultValidity %s is negative", c.DefaultValidity)
	}
	return c.Store.Validate()
}

// Producer validates and stores messages. It is safe for concurrent use.
type Producer struct {
	cfg   Config
	store *store.Store
	log   zerolog.Logger
	now   func() time.Time
}

// New returns a Producer storing into rdb. cfg is completed with defaults
// and validated.
func New(rdb redis.UniversalClient, cfg Config, log zerolog.Logger) (*Producer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := store.New(rdb, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	return &Producer{cfg: cfg, store: st, log: log.With().Str("component", "producer").Logger(), now: time.Now}, nil
}

// Config returns the producer's configuration, defaults filled in.
func (p *Producer) Config() Config { return p.cfg }

// Store returns the store the producer writes to.
func (p *Producer) Store() *store.Store { return p.store }

// Send validates m and stores it. The error is a *FieldError when m is
// invalid (nothing stored), ErrConflict when its ID is taken by other
// content, or a Redis error. A replay returns the existing status with
// Replayed set and a nil error.
func (p *Producer) Send(ctx context.Context, m Message) (Result, error) {
	res, err := p.SendMany(ctx, []Message{m})
	if err != nil {
		return Result{ID: m.ID}, err
	}
	return res[0], res[0].Err
}

// SendMany validates every message, then stores the valid ones in one
// pipeline. It returns one Result per message, in order; a refused message
// has Result.Err (a *FieldError or ErrConflict). The error is non-nil only
// when Redis failed: then some messages may be stored, and sending the same
// messages again is safe (same IDs replay).
func (p *Producer) SendMany(ctx context.Context, msgs []Message) ([]Result, error) {
	now := p.now()
	results := make([]Result, len(msgs))
	all := make([]store.Record, len(msgs))
	p.prepareAll(msgs, all, results, now)
	recs := make([]store.Record, 0, len(msgs))
	idx := make([]int, 0, len(msgs))
	for i := range msgs {
		if results[i].Err == nil {
			recs = append(recs, all[i])
			idx = append(idx, i)
		}
	}
	if len(recs) == 0 {
		return results, nil
	}
	outcomes, statuses, err := p.store.Enqueue(ctx, recs)
	if err != nil {
		p.log.Error().Err(err).Int("messages", len(recs)).Msg("enqueue failed")
		return nil, fmt.Errorf("producer: %w", err)
	}
	var created, replayed, conflicts int
	for j, i := range idx {
		r := &results[i]
		r.Status = statuses[j]
		r.CancellableUntil = p.CancellableUntil(r.Status, recs[j].SendAt)
		switch outcomes[j] {
		case store.Created, store.Suppressed:
			r.ExpiresAt = recs[j].ExpiresAt
			created++
			metrics.MessagesAccepted.WithLabelValues(string(r.Status)).Inc()
			if outcomes[j] == store.Suppressed {
				metrics.MessagesSuppressed.Inc()
			}
		case store.Existing:
			replayed++
			r.Replayed = true
		case store.Conflict:
			conflicts++
			r.Err = fmt.Errorf("%w: %q", ErrConflict, r.ID)
		}
	}
	p.log.Debug().Int("created", created).Int("replayed", replayed).Int("conflicts", conflicts).
		Int("invalid", len(msgs)-len(recs)).Msg("messages accepted")
	return results, nil
}

// parallelFrom is the batch size from which validation (mostly
// libphonenumber, ~25µs a message) is spread over GOMAXPROCS goroutines.
const parallelFrom = 512

// prepareAll validates msgs into recs and results, in parallel for large
// batches: at most GOMAXPROCS goroutines, each on its own contiguous chunk,
// all finished before it returns.
func (p *Producer) prepareAll(msgs []Message, recs []store.Record, results []Result, now time.Time) {
	workers := runtime.GOMAXPROCS(0)
	if len(msgs) < parallelFrom || workers < 2 {
		for i := range msgs {
			recs[i], results[i] = p.prepare(&msgs[i], now)
		}
		return
	}
	chunk := (len(msgs) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(msgs); lo += chunk {
		hi := min(lo+chunk, len(msgs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				recs[i], results[i] = p.prepare(&msgs[i], now)
			}
		}()
	}
	wg.Wait()
}

// Get returns the stored record of id, or ErrNotFound.
func (p *Producer) Get(ctx context.Context, id string) (*store.Record, error) {
	return p.store.Get(ctx, id)
}

// CancellableUntil returns until when a message of status st and SendAt
// sendAt is sure to be cancellable: SendAt minus the schedule lead for a
// scheduled message (the scheduler moves it to a ready list, status
// queued, no earlier), zero for any other status and once that time has
// passed (a late scheduler may not have moved it yet, but nothing is
// promised any more). It assumes the clocks of roxd's hosts agree (as
// SendLater does).
func (p *Producer) CancellableUntil(st store.Status, sendAt time.Time) time.Time {
	if st != store.StatusScheduled || sendAt.IsZero() {
		return time.Time{}
	}
	until := sendAt.Truncate(time.Millisecond).Add(-p.cfg.Store.ScheduleLead).UTC()
	if !until.After(p.now()) {
		return time.Time{}
	}
	return until
}

// Cancel cancels id while it is queued or scheduled and returns
// StatusCancelled; cancelling a message already cancelled does the same
// (idempotent: nothing changes, nothing is counted twice). Once handed to
// ROX (or finished otherwise) it returns the current status and an error
// wrapping ErrNotCancellable; an unknown id gives ErrNotFound.
func (p *Producer) Cancel(ctx context.Context, id string) (store.Status, error) {
	st, err := p.store.Cancel(ctx, id)
	if errors.Is(err, ErrNotCancellable) && st == store.StatusCancelled {
		return st, nil
	}
	if err == nil {
		metrics.MessagesCancelled.Inc()
		p.log.Info().Str("id", id).Msg("message cancelled")
	}
	return st, err
}

// NormalizeNumber parses number in the default region and returns it in
// E.164, or a *FieldError for field (e.g. "to").
func (p *Producer) NormalizeNumber(field, number string) (string, error) {
	n, ferr := normalizeNumber(field, number, p.cfg.DefaultRegion)
	if ferr != nil {
		return "", ferr
	}
	return n, nil
}

// Suppress normalises number and adds it to the suppression list.
func (p *Producer) Suppress(ctx context.Context, number string) (string, error) {
	n, err := p.NormalizeNumber("number", number)
	if err != nil {
		return "", err
	}
	if err := p.store.Suppress(ctx, n); err != nil {
		return n, err
	}
	p.log.Info().Msg("number suppressed")
	return n, nil
}

// Unsuppress normalises number and removes it from the suppression list.
func (p *Producer) Unsuppress(ctx context.Context, number string) (string, error) {
	n, err := p.NormalizeNumber("number", number)
	if err != nil {
		return "", err
	}
	if err := p.store.Unsuppress(ctx, n); err != nil {
		return n, err
	}
	p.log.Info().Msg("number unsuppressed")
	return n, nil
}

// IsSuppressed normalises number and reports whether it is suppressed.
func (p *Producer) IsSuppressed(ctx context.Context, number string) (string, bool, error) {
	n, err := p.NormalizeNumber("number", number)
	if err != nil {
		return "", false, err
	}
	ok, err := p.store.IsSuppressed(ctx, n)
	return n, ok, err
}

// ListSuppressed pages through the suppression list (see
// store.Store.ListSuppressed).
func (p *Producer) ListSuppressed(ctx context.Context, cursor uint64, count int64) ([]string, uint64, error) {
	return p.store.ListSuppressed(ctx, cursor, count)
}

func validAccounts(names []string) bool {
	seen := map[string]bool{DefaultAccount: true}
	for _, n := range names {
		if seen[n] || !store.ValidAccountName(n) {
			return false
		}
		seen[n] = true
	}
	return true
}
