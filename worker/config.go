package worker

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/rox"
)

// Defaults of Config.
const (
	DefaultQueue             = "roxd"
	DefaultMaxBatch          = rox.MaxRecipients
	DefaultLinger            = 5 * time.Millisecond
	DefaultMaxWaiting        = 4
	DefaultSendConcurrency   = 16
	DefaultDequeueLanes      = 2
	DefaultHighReserve       = 8
	DefaultTaskCheckInterval = 5 * time.Millisecond
	DefaultDelayedInterval   = time.Second
	DefaultFormInterval      = time.Millisecond
	DefaultScheduleInterval  = 100 * time.Millisecond
	DefaultIdleInterval      = time.Second
	DefaultHotLinger         = 3 * time.Second
	DefaultReapInterval      = 30 * time.Second
	DefaultReapAge           = time.Minute
	DefaultShutdownTimeout   = 8 * time.Second
	DefaultTaskTimeout       = 60 * time.Second
	DefaultRetryInitial      = 5 * time.Second
	DefaultRetryMaxInterval  = 10 * time.Minute
	DefaultMaxAttempts       = 10
	DefaultAuthPauseInitial  = 10 * time.Second
	DefaultAuthPauseMax      = 10 * time.Minute
	// DefaultJournalDir is where ROX answers wait while Redis refuses
	// their record (relative to the working directory).
	DefaultJournalDir    = "./var/journal"
	DefaultTaskRetention = time.Hour
	// DefaultReceiptsStream and DefaultStreamMaxLen are the callbacks
	// receiver's defaults (ROXD_RECEIPTS_STREAM, ROXD_STREAM_MAXLEN).
	DefaultReceiptsStream = "rox:receipts"
	DefaultStreamMaxLen   = 1_000_000
	// DefaultAccount is the name of the ROX account of the single-account
	// variables (ROX_ACCOUNT_ID, ...), in keys, logs and metrics.
	DefaultAccount = store.DefaultAccount
	// MaxRateLimit bounds RateLimit and RequestRateLimit.
	MaxRateLimit = 1_000_000
	// TaskType is the asynq task type of one batch.
	TaskType = "rox:send"
)

// ErrConfig is wrapped by every Config validation error.
var ErrConfig = errors.New("worker: invalid config")

// Config configures a Worker. Zero fields take the defaults above.
type Config struct {
	// Store is the keyspace (prefix, status TTL, schedule lead).
	Store store.Config
	// Queue is the asynq queue of batch tasks.
	Queue string
	// MaxBatch is the most recipients per ROX request (<= 500).
	MaxBatch int
	// Linger is how long the oldest message of a group waits for company
	// before a partial batch is formed.
	Linger time.Duration
	// MaxWaiting: partial batches are formed only while fewer than this
	// many formed batches wait for a handler.
	MaxWaiting int
	// SendConcurrency is the number of ROX requests in flight, over all
	// lanes.
	SendConcurrency int
	// HighReserve is the number of handlers of the reserve lane: they
	// serve only high tasks, beyond SendConcurrency, while the lanes are
	// hot (wake.go). At ROX's ~100 ms answer time, 8 carry 50 high
	// requests a second (5 in flight on average) without waiting for a
	// bulk request to end.
	HighReserve int
	// DequeueLanes is the number of asynq Servers in the process (one
	// server dequeues serially).
	DequeueLanes int
	// TaskCheckInterval is asynq's idle poll (its 1 s default would add up
	// to 1.5 s of latency).
	TaskCheckInterval time.Duration
	// DelayedTaskCheckInterval is how often asynq moves retry tasks whose
	// delay passed back to pending.
	DelayedTaskCheckInterval time.Duration
	// FormInterval, ScheduleInterval, ReapInterval are the periods of the
	// former, the scheduler and the reaper; ReapAge is how old a batch is
	// before the reaper re-enqueues its task.
	FormInterval     time.Duration
	ScheduleInterval time.Duration
	ReapInterval     time.Duration
	ReapAge          time.Duration
	// IdleInterval is the safety tick of the former, the scheduler and the
	// schedule-group sync while there is no work: they wake on a
	// notification ({P}:wake, published with every enqueue) and poll at
	// most this often otherwise. It is also the idle poll of the one asynq
	// lane that always runs; the other lanes run (polling every
	// TaskCheckInterval) only while this process enqueued a task within
	// HotLinger.
	IdleInterval time.Duration
	HotLinger    time.Duration
	// ShutdownTimeout bounds how long Run waits for in-flight requests
	// after its context ends; unfinished tasks go back to pending.
	ShutdownTimeout time.Duration
	// TaskTimeout bounds one handler run (and the batch lock). Keep it above
	// the ROX client's timeout.
	TaskTimeout time.Duration
	// RetryInitial, RetryMaxInterval: exponential backoff with jitter
	// between attempts. MaxAttempts counts the first attempt.
	RetryInitial     time.Duration
	RetryMaxInterval time.Duration
	MaxAttempts      int
	// PermanentCodes are sending-error codes never retried.
	PermanentCodes []rox.Code
	// ReceiptCallbackURL and ReplyCallbackURL are handed to ROX (built from
	// ROXD_PUBLIC_URL by the caller, carrying the callback token). Required
	// for groups that ask for receipts or HTTP replies.
	ReceiptCallbackURL string
	ReplyCallbackURL   string
	// AccountID names the account in logs.
	AccountID string
	// AuthPauseInitial and AuthPauseMax bound the account-wide pause after
	// ROX rejects the credentials (doubling in between).
	AuthPauseInitial time.Duration
	AuthPauseMax     time.Duration
	// JournalDir is the local directory where ROX answers that Redis
	// refused to record are kept (fsynced) until Redis takes them. One
	// worker process per directory: New refuses a directory in use.
	JournalDir string
	// Ambiguous is what happens to a recipient whose ROX outcome is unknown
	// (a crash or a timeout while its request was in flight), unless the
	// message says otherwise (on_ambiguous): store.AmbiguousReconcile
	// (default), store.AmbiguousResend or store.AmbiguousFail.
	Ambiguous string
	// ReconcileWindow is how long, from the moment the request left, a
	// reconciling recipient waits for a receipt or reply before it is sent
	// again (store.DefaultReconcileWindow when 0).
	ReconcileWindow time.Duration
	// Accounts are ROX accounts besides the default one (the fields above
	// and the Sender given to New); names are unique and not
	// DefaultAccount.
	Accounts []Account
	// RateLimit is the most messages per second sent to ROX for the
	// default account, over every worker process sharing the Redis (0: none).
	RateLimit int
	// RatePrefix is the key prefix of the rate-limit buckets and of the
	// HTTP 429 pause of every account: the deployment's prefix
	// (ROXD_KEY_PREFIX), which every shard's worker shares, so that an
	// account's limit holds over all shards (Store.Prefix when empty: one
	// shard).
	RatePrefix string
	// RequestRateLimit is the most ROX requests per second per account, over every
	// worker process sharing the Redis (0: none).
	RequestRateLimit int
	// TaskRetention keeps a completed rox:send task (and its result: ROX's
	// RequestId and counts) visible in the dashboard this long.
	TaskRetention time.Duration
	// ReceiptsStream is the stream where a message that expired before it
	// was handed to ROX is announced (kind "expired"), as receipts are
	// (DefaultReceiptsStream when empty); StreamMaxLen its approximate
	// MAXLEN (DefaultStreamMaxLen when 0, none when negative).
	ReceiptsStream string
	StreamMaxLen   int64
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Store = c.Store.WithDefaults()
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	if c.RatePrefix == "" {
		c.RatePrefix = c.Store.Prefix
	}
	defInt(&c.MaxBatch, DefaultMaxBatch)
	def(&c.Linger, DefaultLinger)
	defInt(&c.MaxWaiting, DefaultMaxWaiting)
	defInt(&c.SendConcurrency, DefaultSendConcurrency)
	defInt(&c.DequeueLanes, DefaultDequeueLanes)
	defInt(&c.HighReserve, DefaultHighReserve)
	def(&c.TaskCheckInterval, DefaultTaskCheckInterval)
	def(&c.DelayedTaskCheckInterval, DefaultDelayedInterval)
	def(&c.FormInterval, DefaultFormInterval)
	def(&c.ScheduleInterval, DefaultScheduleInterval)
	def(&c.IdleInterval, DefaultIdleInterval)
	def(&c.HotLinger, DefaultHotLinger)
	def(&c.ReapInterval, DefaultReapInterval)
	def(&c.ReapAge, DefaultReapAge)
	def(&c.ShutdownTimeout, DefaultShutdownTimeout)
	def(&c.TaskTimeout, DefaultTaskTimeout)
	def(&c.RetryInitial, DefaultRetryInitial)
	def(&c.RetryMaxInterval, DefaultRetryMaxInterval)
	defInt(&c.MaxAttempts, DefaultMaxAttempts)
	def(&c.AuthPauseInitial, DefaultAuthPauseInitial)
	def(&c.AuthPauseMax, DefaultAuthPauseMax)
	if c.JournalDir == "" {
		c.JournalDir = DefaultJournalDir
	}
	def(&c.ReconcileWindow, store.DefaultReconcileWindow)
	if c.Ambiguous == "" {
		c.Ambiguous = store.AmbiguousReconcile
	}
	def(&c.TaskRetention, DefaultTaskRetention)
	if c.ReceiptsStream == "" {
		c.ReceiptsStream = DefaultReceiptsStream
	}
	if c.StreamMaxLen == 0 {
		c.StreamMaxLen = DefaultStreamMaxLen
	}
	return c
}

// Validate reports the first invalid field of c (after WithDefaults).
func (c Config) Validate() error {
	if err := c.Store.Validate(); err != nil {
		return fmt.Errorf("%w: Store: %w", ErrConfig, err)
	}
	type pos struct {
		name string
		v    time.Duration
	}
	for _, d := range []pos{
		{"Linger", c.Linger}, {"TaskCheckInterval", c.TaskCheckInterval},
		{"DelayedTaskCheckInterval", c.DelayedTaskCheckInterval}, {"FormInterval", c.FormInterval},
		{"ScheduleInterval", c.ScheduleInterval}, {"ReapInterval", c.ReapInterval}, {"ReapAge", c.ReapAge},
		{"IdleInterval", c.IdleInterval}, {"HotLinger", c.HotLinger},
		{"ShutdownTimeout", c.ShutdownTimeout}, {"TaskTimeout", c.TaskTimeout},
		{"RetryInitial", c.RetryInitial}, {"RetryMaxInterval", c.RetryMaxInterval},
		{"AuthPauseInitial", c.AuthPauseInitial}, {"AuthPauseMax", c.AuthPauseMax},
		{"ReconcileWindow", c.ReconcileWindow},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%w: %s is %s, want > 0", ErrConfig, d.name, d.v)
		}
	}
	switch {
	case c.MaxBatch < 1 || c.MaxBatch > rox.MaxRecipients:
		return fmt.Errorf("%w: MaxBatch is %d, want 1..%d", ErrConfig, c.MaxBatch, rox.MaxRecipients)
	case c.MaxWaiting < 1:
		return fmt.Errorf("%w: MaxWaiting is %d, want >= 1", ErrConfig, c.MaxWaiting)
	case c.SendConcurrency < 1 || c.SendConcurrency > 4096:
		return fmt.Errorf("%w: SendConcurrency is %d, want 1..4096", ErrConfig, c.SendConcurrency)
	case c.HighReserve < 1 || c.HighReserve > 256:
		return fmt.Errorf("%w: HighReserve is %d, want 1..256", ErrConfig, c.HighReserve)
	case c.DequeueLanes < 1 || c.DequeueLanes > 64:
		return fmt.Errorf("%w: DequeueLanes is %d, want 1..64", ErrConfig, c.DequeueLanes)
	case c.MaxAttempts < 1 || c.MaxAttempts > 1000:
		return fmt.Errorf("%w: MaxAttempts is %d, want 1..1000", ErrConfig, c.MaxAttempts)
	case c.RateLimit < 0 || c.RateLimit > MaxRateLimit:
		return fmt.Errorf("%w: RateLimit is %d, want 0 (none) .. %d messages per second", ErrConfig, c.RateLimit, MaxRateLimit)
	case c.RequestRateLimit < 0 || c.RequestRateLimit > MaxRateLimit:
		return fmt.Errorf("%w: RequestRateLimit is %d, want 0 (none) .. %d requests per second", ErrConfig, c.RequestRateLimit, MaxRateLimit)
	case c.RetryMaxInterval < c.RetryInitial:
		return fmt.Errorf("%w: RetryMaxInterval %s is below RetryInitial %s", ErrConfig, c.RetryMaxInterval, c.RetryInitial)
	case c.AuthPauseMax < c.AuthPauseInitial:
		return fmt.Errorf("%w: AuthPauseMax %s is below AuthPauseInitial %s", ErrConfig, c.AuthPauseMax, c.AuthPauseInitial)
	}
	seen := map[string]bool{DefaultAccount: true}
	for i, a := range c.Accounts {
		switch {
		case !store.ValidAccountName(a.Name):
			return fmt.Errorf("%w: Accounts[%d].Name is %q, want %s", ErrConfig, i, a.Name, store.AccountNameRule)
		case seen[a.Name]:
			return fmt.Errorf("%w: Accounts[%d].Name %q is used twice (or is %q)", ErrConfig, i, a.Name, DefaultAccount)
		case a.Sender == nil:
			return fmt.Errorf("%w: Accounts[%d] (%s): nil Sender", ErrConfig, i, a.Name)
		case a.RateLimit < 0 || a.RateLimit > MaxRateLimit:
			return fmt.Errorf("%w: Accounts[%d].RateLimit is %d, want 0 (none) .. %d", ErrConfig, i, a.RateLimit, MaxRateLimit)
		}
		seen[a.Name] = true
		for _, u := range []struct{ name, v string }{{"ReceiptCallbackURL", a.ReceiptCallbackURL}, {"ReplyCallbackURL", a.ReplyCallbackURL}} {
			if u.v == "" {
				continue
			}
			p, err := url.Parse(u.v)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return fmt.Errorf("%w: Accounts[%d].%s is not an absolute http(s) URL", ErrConfig, i, u.name)
			}
		}
	}
	if !store.ValidAmbiguous(c.Ambiguous) {
		return fmt.Errorf("%w: Ambiguous is %q, want resend, reconcile or fail", ErrConfig, c.Ambiguous)
	}
	for i, code := range c.PermanentCodes {
		if code.Class() != rox.ClassSending {
			return fmt.Errorf("%w: PermanentCodes[%d] is %q, want a sending error 2011..2100", ErrConfig, i, string(code))
		}
	}
	for _, u := range []struct{ name, v string }{{"ReceiptCallbackURL", c.ReceiptCallbackURL}, {"ReplyCallbackURL", c.ReplyCallbackURL}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			// Never quote the URL: it carries the callback token.
			return fmt.Errorf("%w: %s is not an absolute http(s) URL", ErrConfig, u.name)
		}
	}
	return nil
}
