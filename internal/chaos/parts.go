package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// --- Redis -------------------------------------------------------------

// startRedis starts redis-server with appendonly yes in <dir>/redis on a
// private loopback port (the same port and directory on a restart, so the
// AOF is read back).
func (r *run) startRedis(ctx context.Context) error {
	if r.redis.port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		r.redis.port = p
	}
	dataDir := filepath.Join(r.dir, "redis")
	c, err := r.p.start("redis", dataDir, nil, r.cfg.RedisServer,
		"--port", strconv.Itoa(r.redis.port), "--bind", "127.0.0.1", "--dir", dataDir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		"--maxmemory-policy", "noeviction", "--protected-mode", "yes", "--daemonize", "no")
	if err != nil {
		return err
	}
	r.redis.c = c
	if r.rdb == nil {
		r.rdb = redis.NewClient(&redis.Options{Addr: loopback(r.redis.port), MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 5 * time.Second})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := r.rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			r.step("redis started").Int("pid", c.pid()).Int("port", r.redis.port).Send()
			return nil
		}
		if c.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("chaos: redis-server did not start (%v): %s", err, c.tail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restartRedis shuts Redis down (SHUTDOWN writes and fsyncs the AOF: what
// Redis acknowledged is kept) and starts it again after a second.
func (r *run) restartRedis(ctx context.Context) error {
	inflight := r.waitInFlight(ctx)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = r.rdb.Shutdown(sctx).Err() // the connection closes: an error is the normal answer
	cancel()
	select {
	case <-r.redis.c.done:
	case <-time.After(20 * time.Second):
		r.redis.c.stop(9, time.Second)
	}
	r.step("redis stopped (SHUTDOWN)").Int("requests_in_flight", inflight).Send()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	return r.startRedis(ctx)
}

// --- the simulator ---------------------------------------------------------

type simClient struct {
	base string
	hc   *http.Client
}

// startSim starts `roxd sim` with the run's latency and receipts.
func (r *run) startSim(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := loopback(port)
	maxRecords := 4*r.cfg.Messages + 10_000
	c, err := r.p.start("sim", filepath.Join(r.dir, "run", "sim"), nil, r.cfg.Binary, "sim",
		"--addr", addr, "--latency", r.cfg.Latency.String(), "--jitter", r.cfg.Jitter.String(),
		"--receipt-delay", r.cfg.ReceiptDelay.String(), "--accept-first", "--max-records", strconv.Itoa(maxRecords),
		"--seed", strconv.FormatUint(r.cfg.Seed, 10), "--log-level", "warn")
	if err != nil {
		return err
	}
	r.sim = &simClient{base: "http://" + addr, hc: &http.Client{Timeout: 60 * time.Second}}
	if err := waitHTTP(ctx, c, r.sim.base+roxsim.StatsPath, 30*time.Second); err != nil {
		return err
	}
	r.step("simulator started").Int("pid", c.pid()).Str("addr", addr).Dur("latency", r.cfg.Latency).
		Dur("jitter", r.cfg.Jitter).Dur("receipt_delay", r.cfg.ReceiptDelay).Send()
	return nil
}

func (s *simClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("chaos: simulator %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("chaos: simulator %s: HTTP %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (s *simClient) stats(ctx context.Context) (roxsim.Stats, error) {
	var st roxsim.Stats
	err := s.get(ctx, roxsim.StatsPath, &st)
	return st, err
}

// inFlight counts the newest send requests not answered yet (0 on error).
func (s *simClient) inFlight(ctx context.Context) int {
	var reqs []roxsim.RecordedRequest
	if err := s.get(ctx, roxsim.RequestsPath+"?limit=64", &reqs); err != nil {
		return 0
	}
	n := 0
	for _, q := range reqs {
		if q.HTTPStatus == 0 && q.Fault == "" {
			n++
		}
	}
	return n
}

func (s *simClient) recipients(ctx context.Context) ([]roxsim.RecordedRecipient, error) {
	var out []roxsim.RecordedRecipient
	err := s.get(ctx, roxsim.RecipientsPath+"?limit=0", &out)
	return out, err
}

func (s *simClient) callbacks(ctx context.Context) ([]roxsim.RecordedCallback, error) {
	var out []roxsim.RecordedCallback
	err := s.get(ctx, roxsim.CallbacksPath+"?limit=0", &out)
	return out, err
}

// injectDuplicates sends InjectDuplicates of the SMS ROX accepted once
// more, in one request with the same recipients, callback URLs and texts:
// what a blind resend does. It is the count's self-check.
func (r *run) injectDuplicates(ctx context.Context) error {
	var picked []roxsim.RecordedRecipient
	var recips []roxsim.RecordedRecipient
	if err := r.sim.get(ctx, roxsim.RecipientsPath+"?limit="+strconv.Itoa(4*r.cfg.InjectDuplicates+100), &recips); err != nil {
		return err
	}
	for _, x := range recips {
		if x.Result.OK() && len(picked) < r.cfg.InjectDuplicates {
			picked = append(picked, x)
		}
	}
	if len(picked) == 0 {
		return errors.New("chaos: inject: the simulator accepted nothing to send twice")
	}
	first := picked[0]
	req := rox.SendRequest{Name: rox.NameRequest, Version: rox.Version, Product: "roxd-chaos",
		Sender: rox.Sender{AccountID: roxsim.DefaultAccountID, Username: roxsim.DefaultUsername,
			Password: roxsim.DefaultPassword},
		Messages: rox.Messages{ReceiptFlag: first.ReceiptFlag, ReceiptCallbackURL: first.ReceiptCallbackURL,
			ReplyType: first.ReplyType, ReplyCallbackURL: first.ReplyCallbackURL}}
	for _, x := range picked {
		req.Messages.Recipients = append(req.Messages.Recipients, rox.Recipient{DestTn: x.DestTn, SMSText: x.Text})
	}
	body, err := rox.EncodeSendRequest(&req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, r.sim.base+roxsim.SendPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := r.sim.hc.Do(hreq)
	if err != nil {
		return fmt.Errorf("chaos: inject: %w", err)
	}
	defer resp.Body.Close()
	ans, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	sr, err := rox.DecodeSendResponse(ans)
	if err != nil || !sr.Result.OK() {
		return fmt.Errorf("chaos: inject: the simulator did not accept the resend (%v): %.300s", err, ans)
	}
	r.step("injected duplicate SMS (self-check)").Int("sms", len(picked)).Str("first_dest_tn", picked[0].DestTn).Send()
	return nil
}

// --- the load --------------------------------------------------------------

// loader offers messages through POST /v1/messages/batch. Loaders made by
// with share which messages were accepted.
type loader struct {
	r    *run
	base string
	ok   []atomic.Bool
	hc   *http.Client
	// posts counts batch POSTs, failures those that must be repeated.
	posts, failures *atomic.Int64
	mu              *sync.Mutex // one offer at a time per base
}

func newLoader(r *run, base string) *loader {
	return &loader{r: r, base: base, ok: make([]atomic.Bool, len(r.msgs)),
		hc: &http.Client{Timeout: 30 * time.Second}, posts: new(atomic.Int64), failures: new(atomic.Int64), mu: new(sync.Mutex)}
}

// with returns a loader on another API sharing l's state.
func (l *loader) with(base string) *loader {
	c := *l
	c.base = base
	c.mu = new(sync.Mutex)
	return &c
}

func (l *loader) accepted() int {
	n := 0
	for i := range l.ok {
		if l.ok[i].Load() {
			n++
		}
	}
	return n
}

// maxTries bounds the POSTs of one batch (a fault lasts seconds; the
// API is given about two minutes per batch before its messages count as
// not accepted).
const maxTries = 120

// offer posts messages [from, to) not accepted yet, Batch per POST, paced
// at Rate, each batch repeated (same ids: the API replays what it has)
// until every message is accepted, maxTries run out or ctx ends.
func (l *loader) offer(ctx context.Context, from, to int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := time.Now()
	per := time.Duration(float64(l.r.cfg.Batch) / float64(l.r.cfg.Rate) * float64(time.Second))
	k := 0
	for i := from; i < to && ctx.Err() == nil; i += l.r.cfg.Batch {
		if d := time.Until(start.Add(per * time.Duration(k))); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		k++
		end := min(i+l.r.cfg.Batch, to)
		for try := 0; try < maxTries && ctx.Err() == nil; try++ {
			if l.post(ctx, i, end) {
				break
			}
			l.failures.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

type msgIn struct {
	ID      string `json:"id"`
	To      string `json:"to"`
	Text    string `json:"text"`
	Receipt string `json:"receipt"`
}

// post offers the messages of [from, to) not accepted yet and reports
// whether every one of them is accepted now.
func (l *loader) post(ctx context.Context, from, to int) bool {
	var in struct {
		Messages []msgIn `json:"messages"`
	}
	var idx []int
	for i := from; i < to; i++ {
		if l.ok[i].Load() {
			continue
		}
		m := l.r.msgs[i]
		in.Messages = append(in.Messages, msgIn{ID: m.ID, To: m.DestTn, Text: "chaos " + m.ID, Receipt: "always"})
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return true
	}
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/v1/messages/batch", bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	l.posts.Add(1)
	resp, err := l.hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return false
	}
	var out struct {
		Results []struct {
			ID     string          `json:"id"`
			Status string          `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Results) != len(idx) {
		return false
	}
	all := true
	for j, res := range out.Results {
		if res.Status != "" && len(res.Error) == 0 && res.ID == l.r.msgs[idx[j]].ID {
			l.ok[idx[j]].Store(true)
		} else {
			all = false
		}
	}
	return all
}
