package worker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
)

// Account is a ROX account the worker sends for besides the default one
// (Config's AccountID, ReceiptCallbackURL, ReplyCallbackURL, RateLimit and
// the Sender given to New). Messages name it (store.Record.Account); their
// groups carry it, so a batch never mixes accounts.
type Account struct {
	// Name is the account's name in messages, keys, logs and metrics.
	Name string
	// AccountID is its ROX account id (logs).
	AccountID string
	// Sender sends with its credentials and product.
	Sender Sender
	// ReceiptCallbackURL and ReplyCallbackURL carry its own callback token.
	ReceiptCallbackURL string
	ReplyCallbackURL   string
	// RateLimit is its messages per second (0: none).
	RateLimit int
}

// account is the worker's state of one ROX account.
type account struct {
	name, id             string
	sender               Sender
	receiptURL, replyURL string
	rl                   *rateLimiter
	b                    *store.Batches // Form, Claim and PauseAuth of this account
	idPfx                string
	formSig, highSig     signal       // wake its formers (wake.go)
	probeAt              atomic.Int64 // unix nanos of the last auth probe (takeProbe)
	probePrev            atomic.Int64 // probeAt before it, for giveProbe

	authMu    sync.Mutex
	authPause time.Duration // last pause; 0 when not paused
	paused    atomic.Bool
}

// takeProbe reports whether the caller may form the one batch that probes
// ROX after an auth pause: at most one per every interval across the
// account's two formers.
func (a *account) takeProbe(interval time.Duration) bool {
	last := a.probeAt.Load()
	now := time.Now().UnixNano()
	if time.Duration(now-last) < interval || !a.probeAt.CompareAndSwap(last, now) {
		return false
	}
	a.probePrev.Store(last)
	return true
}

// giveProbe hands back a probe that formed nothing, so that the other
// former may probe at once.
func (a *account) giveProbe() {
	a.probeAt.Store(a.probePrev.Load())
}

func (w *Worker) setupAccounts(sender Sender) {
	w.accts = map[string]*account{}
	add := func(name, id string, s Sender, receipt, reply string, rate int, pfx string) {
		a := &account{name: name, id: id, sender: s, receiptURL: receipt, replyURL: reply,
			rl:    newRateLimiter(w.rdb, store.NewKeys(w.cfg.RatePrefix), name, rate, w.cfg.RequestRateLimit, w.cfg.MaxBatch),
			b:     w.b.ForAccount(name),
			idPfx: pfx}
		w.accts[name] = a
		w.order = append(w.order, a)
	}
	add(DefaultAccount, w.cfg.AccountID, sender, w.cfg.ReceiptCallbackURL, w.cfg.ReplyCallbackURL, w.cfg.RateLimit, w.idPfx)
	for _, x := range w.cfg.Accounts {
		add(x.Name, x.AccountID, x.Sender, x.ReceiptCallbackURL, x.ReplyCallbackURL, x.RateLimit, w.idPfx+x.Name+"-")
	}
}

// accountKey carries the account of a task's batch from ProcessTask to
// process.
type accountKey struct{}

// accountFor returns the account of batch bid: the one ProcessTask put in
// ctx, else the one its record's group names.
func (w *Worker) accountFor(ctx context.Context, bid string) (*account, error) {
	if a, ok := ctx.Value(accountKey{}).(*account); ok {
		return a, nil
	}
	name := DefaultAccount
	if g, err := w.rdb.HGet(ctx, w.b.Keys().Batch(bid), "group").Result(); err == nil {
		name = store.GroupAccount(g)
	}
	return w.account(name)
}

// account returns the account called name, or an error naming it when this
// worker has no such account (its configuration was removed while messages
// of it were queued: they wait, retried, until it is back).
func (w *Worker) account(name string) (*account, error) {
	if a, ok := w.accts[name]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("worker: ROX account %q is not configured on this worker (ROX_ACCOUNTS): its batch waits", name)
}

func setAuthPausedGauge(account string, paused bool) {
	v := 0.0
	if paused {
		v = 1
	}
	metrics.ROXAuthPaused.WithLabelValues(account).Set(v)
}
