package callbacks

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/producer"
)

// Defaults of Config.
const (
	DefaultReceiptsStream = "rox:receipts"
	DefaultRepliesStream  = "rox:replies"
	// DefaultStreamMaxLen is the approximate MAXLEN (~) of each stream.
	DefaultStreamMaxLen = 1_000_000
	// DefaultMaxBody is the largest callback body accepted (64 KiB).
	DefaultMaxBody = 64 << 10
	// DefaultDedupTTL is how long a callback's event id is remembered.
	DefaultDedupTTL = 7 * 24 * time.Hour
	// DefaultStoreTimeout bounds how long a callback waits for a Redis that
	// does not answer before it is spooled instead. It is long so that a
	// slow (busy, CPU-starved) Redis slows the answer rather than diverting
	// it, and below ROX's callback timeout (the simulator's is 5s) so that
	// the answer still reaches ROX. Connection-class errors spool at once
	// (spooldecision.go).
	DefaultStoreTimeout = 3 * time.Second
	// DefaultPipelines is the number of concurrent pipelined round trips.
	DefaultPipelines = 4
	// DefaultMaxBatch is the most callbacks one pipelined round trip carries.
	DefaultMaxBatch = 256
	// DefaultReplayInterval is the longest the replayer waits between tries
	// while the spool is not empty and Redis is unreachable.
	DefaultReplayInterval = 2 * time.Second
)

// DefaultStopWords, DefaultStartWords and DefaultHelpWords are the reply
// keywords: the CTIA Messaging Principles and Best Practices' opt-out words
// (STOP, QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE) plus STOPALL, as
// US carriers and Twilio honour it; the opt-in words START, UNSTOP, YES
// (Twilio's) and SUBSCRIBE; and HELP, INFO. A reply matches when its whole
// text is the word once normalised (see keywordForm: NFKC, case folded,
// invisible characters and surrounding punctuation gone, inner spaces and
// hyphens ignored).
var (
	DefaultStopWords  = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
	DefaultStartWords = []string{"START", "UNSTOP", "YES", "SUBSCRIBE"}
	DefaultHelpWords  = []string{"HELP", "INFO"}
	// DefaultDeferDelays are the waits before each attempt to correlate a
	// callback whose SMSId is not recorded yet (about 45 s in all).
	DefaultDeferDelays = []time.Duration{250 * time.Millisecond, time.Second, 3 * time.Second, 10 * time.Second, 30 * time.Second}
)

// maxDeferDelay bounds each of Config.DeferDelays, maxDeferAttempts their
// number.
const (
	maxDeferDelay    = time.Hour
	maxDeferAttempts = 20
)

// Config configures a Receiver. The zero value of every field but Token
// means its default.
type Config struct {
	// Prefix is the store key prefix (store.DefaultPrefix when empty).
	Prefix string
	// Shards is the deployment's shard count (store/shards.go; 0 means 1).
	Shards int
	// Token is the secret path segment of the callback URLs
	// /rox/{token}/receipt and /rox/{token}/reply. Required.
	Token string
	// AccountID is our ROX account id. A callback for another account is
	// answered 403; empty accepts any account.
	AccountID string
	// Accounts are further ROX accounts, each with its own token: a
	// callback under an account's token is taken only when its
	// Sender.AccountId is that account's (Token and AccountID above are
	// the default account's).
	Accounts []Account
	// ReceiptsStream and RepliesStream name the output streams.
	ReceiptsStream string
	RepliesStream  string
	// StreamMaxLen is the approximate MAXLEN of each stream; negative
	// disables trimming.
	StreamMaxLen int64
	// MaxBody is the largest body accepted, in bytes; larger is 413.
	MaxBody int64
	// SpoolDir holds the local spool used while Redis is unreachable. Empty
	// disables spooling: a callback that cannot be stored is then answered
	// 503 (ROX forwards it to email).
	SpoolDir string
	// DedupTTL is how long event ids are remembered.
	DedupTTL time.Duration
	// StatusTTL is the store's ROXD_STATUS_TTL (store.DefaultStatusTTL
	// when 0): a message record that a callback ends (a reconciling
	// recipient recorded from the callback, see store.ReconcileLua) lives
	// that long from then, as every ended record does.
	StatusTTL time.Duration
	// StoreTimeout bounds the wait for a Redis that does not answer before
	// a callback is spooled (DefaultStoreTimeout); errors that mean Redis
	// is unreachable spool at once.
	StoreTimeout time.Duration
	// Pipelines is the number of pipelined round trips in flight at once;
	// MaxBatch the most callbacks in one.
	Pipelines int
	MaxBatch  int
	// ReplayInterval is the longest pause between replay attempts.
	ReplayInterval time.Duration
	// StopWords and StartWords opt a number out of and back into sending;
	// HelpWords only mark the reply (keyword "help"). Nil means the
	// defaults.
	StopWords  []string
	StartWords []string
	HelpWords  []string
	// DefaultRegion is the libphonenumber region in which a reply's
	// ReplyFrom without a country code is read, as the producer reads `to`
	// (producer.DefaultRegion when empty).
	DefaultRegion string
	// Replicas is ROXD_REDIS_MIN_REPLICAS: a callback counts as stored
	// only once that many replicas have it; short of them it is spooled.
	Replicas redisconn.Replicas
	// DeferDelays are the waits before each attempt to correlate a
	// callback whose SMSId is not recorded yet (ROX may call back before
	// the worker has written {P}:sms:<smsid>). Such a callback is stored
	// in {P}:cb:deferred and answered at once; after the last attempt it
	// is pushed with an empty message_id. Nil means DefaultDeferDelays;
	// an empty, non-nil slice pushes at once (no deferral).
	DeferDelays []time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.AccountID = strings.TrimSpace(c.AccountID)
	if c.ReceiptsStream == "" {
		c.ReceiptsStream = DefaultReceiptsStream
	}
	if c.RepliesStream == "" {
		c.RepliesStream = DefaultRepliesStream
	}
	if c.StreamMaxLen == 0 {
		c.StreamMaxLen = DefaultStreamMaxLen
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.DedupTTL == 0 {
		c.DedupTTL = DefaultDedupTTL
	}
	if c.StatusTTL == 0 {
		c.StatusTTL = store.DefaultStatusTTL
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Pipelines == 0 {
		c.Pipelines = DefaultPipelines
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.ReplayInterval == 0 {
		c.ReplayInterval = DefaultReplayInterval
	}
	if c.StopWords == nil {
		c.StopWords = DefaultStopWords
	}
	if c.StartWords == nil {
		c.StartWords = DefaultStartWords
	}
	if c.HelpWords == nil {
		c.HelpWords = DefaultHelpWords
	}
	if c.DefaultRegion == "" {
		c.DefaultRegion = producer.DefaultRegion
	}
	if c.DeferDelays == nil {
		c.DeferDelays = DefaultDeferDelays
	}
	return c
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("callbacks: invalid config")

func cfgErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}

// Account is a ROX account whose callbacks the receiver takes.
type Account struct {
	// Name is the account's name (logs, errors).
	Name string
	// Token is the secret path segment of its callback URLs.
	Token string
	// AccountID is its ROX account id; empty accepts any.
	AccountID string
}

// Validate checks c (after WithDefaults) and names the first bad field. It
// never prints the token.
func (c Config) Validate() error {
	tokens := map[string]bool{c.Token: true}
	for i, a := range c.Accounts {
		switch {
		case strings.TrimSpace(a.Token) == "":
			return cfgErr(fmt.Sprintf("Accounts[%d].Token", i), "required (account %s)", a.Name)
		case strings.ContainsAny(a.Token, "/?#% "):
			return cfgErr(fmt.Sprintf("Accounts[%d].Token", i), "must be one URL path segment (no / ? # %% or space)")
		case tokens[a.Token]:
			return cfgErr(fmt.Sprintf("Accounts[%d].Token", i), "is another account's token (account %s)", a.Name)
		}
		tokens[a.Token] = true
	}
	switch {
	case c.Shards < 0 || c.Shards > store.MaxShards:
		return cfgErr("Shards", "%d: want 1..%d", c.Shards, store.MaxShards)
	case strings.TrimSpace(c.Token) == "":
		return cfgErr("Token", "required")
	case strings.ContainsAny(c.Token, "/?#% "):
		return cfgErr("Token", "must be one URL path segment (no / ? # %% or space)")
	case c.ReceiptsStream == c.RepliesStream:
		return cfgErr("RepliesStream", "must differ from ReceiptsStream")
	case c.MaxBody < 512:
		return cfgErr("MaxBody", "%d is below 512 bytes", c.MaxBody)
	case c.DedupTTL < time.Minute:
		return cfgErr("DedupTTL", "%s is below 1m", c.DedupTTL)
	case c.StatusTTL < time.Second:
		return cfgErr("StatusTTL", "%s is below 1s", c.StatusTTL)
	case c.StoreTimeout < time.Millisecond:
		return cfgErr("StoreTimeout", "%s is below 1ms", c.StoreTimeout)
	case c.Pipelines < 1 || c.Pipelines > 64:
		return cfgErr("Pipelines", "%d is outside 1..64", c.Pipelines)
	case c.MaxBatch < 1 || c.MaxBatch > 10000:
		return cfgErr("MaxBatch", "%d is outside 1..10000", c.MaxBatch)
	case c.ReplayInterval < 10*time.Millisecond:
		return cfgErr("ReplayInterval", "%s is below 10ms", c.ReplayInterval)
	}
	if len(c.DeferDelays) > maxDeferAttempts {
		return cfgErr("DeferDelays", "%d delays, at most %d", len(c.DeferDelays), maxDeferAttempts)
	}
	for _, d := range c.DeferDelays {
		if d < time.Millisecond || d > maxDeferDelay {
			return cfgErr("DeferDelays", "%s is outside 1ms..%s", d, maxDeferDelay)
		}
	}
	seen := map[string]string{}
	for _, l := range []struct {
		field string
		words []string
	}{{"StopWords", c.StopWords}, {"StartWords", c.StartWords}, {"HelpWords", c.HelpWords}} {
		for _, w := range l.words {
			m := keywordForm(w)
			if m == "" {
				return cfgErr(l.field, "%q has no letters once normalised", w)
			}
			if other, ok := seen[m]; ok && other != l.field {
				return cfgErr(l.field, "%q is also in %s", w, other)
			}
			seen[m] = l.field
		}
	}
	if phonenumbers.GetCountryCodeForRegion(c.DefaultRegion) == 0 {
		return cfgErr("DefaultRegion", "%q is not a region libphonenumber knows (e.g. AU)", c.DefaultRegion)
	}
	return nil
}
