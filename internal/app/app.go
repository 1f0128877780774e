package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/callbacks"
	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/dashboard"
	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/producer/httpapi"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/worker"
)

// DashboardPath is where the asynq dashboard is mounted on the internal
// listener.
const DashboardPath = "/monitor"

// Addrs are the addresses the listeners bound (useful with port 0).
type Addrs struct {
	HTTP     string // internal: API, /metrics, /monitor, /healthz, /readyz
	Callback string // public: ROX receipts and replies ("" without role callbacks)
}

// Options adjust Run. The zero value is what `roxd serve` uses.
type Options struct {
	// Ready, when set, is called once every listener is bound.
	Ready func(Addrs)
	// Sender replaces the ROX client (tests).
	Sender worker.Sender
	// RedisCheckInterval is how often Redis's persistence, eviction
	// policy and roxd's marker key are checked (DefaultRedisCheckInterval).
	RedisCheckInterval time.Duration
	// EmbeddedRedis says the Redis is roxd dev's in-process miniredis: it
	// keeps nothing and has no CONFIG or INFO, so its persistence and
	// eviction are not checked.
	EmbeddedRedis bool
	// RedisHook, when set, is added to the Redis client (tests: which
	// scripts ran on a cluster).
	RedisHook redis.Hook
}

// Run runs the roles of cfg until ctx is cancelled, then shuts down in order
// and returns nil, or returns the first error that stopped a part.
func Run(ctx context.Context, cfg config.Config, log zerolog.Logger, opts Options) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	conn, err := redisconn.Parse(cfg.RedisURL)
	if err != nil {
		return err
	}
	if conn.Kind() == redisconn.KindCluster && cfg.RedisMinReplicas > 0 {
		// WAIT counts the replicas of the node it is sent to; the enqueue
		// and callback pipelines do not yet route it to each shard's master.
		return errors.New("ROXD_REDIS_MIN_REPLICAS: not supported with a Redis Cluster URL (WAIT is not yet sent to each shard's master); set it to 0 or use a single or Sentinel URL")
	}
	rdb := conn.Client()
	defer rdb.Close()
	if opts.RedisHook != nil {
		rdb.AddHook(opts.RedisHook)
	}
	if err := startupChecks(ctx, cfg, conn, rdb, log); err != nil {
		if isCanceled(err) && ctx.Err() != nil {
			return nil // stopped while waiting for Redis
		}
		return err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watchRedis(watchCtx, conn, rdb, log.With().Str("component", "redis").Logger())
	replicas := redisconn.Replicas{Min: cfg.RedisMinReplicas, Timeout: cfg.RedisWaitTimeout}
	// The shard count is fixed once Redis holds data (store/shards.go).
	if err := store.CheckShards(ctx, rdb, cfg.KeyPrefix, cfg.Shards); err != nil {
		if errors.Is(err, store.ErrShardsChanged) {
			return fmt.Errorf("ROXD_SHARDS: %w", err)
		}
		return err
	}
	storeCfg := store.Config{Prefix: cfg.KeyPrefix, StatusTTL: cfg.StatusTTL, ScheduleLead: cfg.ScheduleLead, Shards: cfg.Shards, Replicas: replicas}
	queues := make([]string, cfg.Shards)
	for i := range queues {
		queues[i] = store.ShardQueue(cfg.Queue, cfg.Shards, i)
	}

	var workerUp atomic.Bool
	internalMux := http.NewServeMux()
	internalMux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
	})
	health := newRedisHealth(rdb, cfg.KeyPrefix, cfg.AllowVolatile, log)
	healthCtx, stopHealth := context.WithCancel(context.Background())
	defer stopHealth()
	if !opts.EmbeddedRedis {
		if err := health.check(ctx); errors.Is(err, ErrEvictingRedis) {
			return err
		} else if err != nil {
			log.Warn().Err(err).Msg("cannot check Redis persistence and eviction at start; will check again")
		}
		interval := opts.RedisCheckInterval
		if interval <= 0 {
			interval = DefaultRedisCheckInterval
		}
		go health.run(healthCtx, interval)
	}

	// recv is set before any listener starts (below).
	var recv *callbacks.Receiver
	internalMux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyzBudget)
		defer cancel()
		ok, reason, warnings := health.readiness()
		// INFO replication answers for the ping too: a replica (a Sentinel
		// failover under way, or a client still on the old master) and a
		// master short of ROXD_REDIS_MIN_REPLICAS are not ready.
		writable, err := replicas.Writable(ctx, rdb)
		switch {
		case err != nil:
			ok, reason = false, "redis unreachable"
		case writable != "":
			ok, reason = false, writable
		case ok && recv != nil && recv.SpoolDepth() > 0:
			ok, reason = false, "callbacks cannot be stored in redis: spooling to disk"
		case ok && cfg.HasRole(config.RoleWorker) && !workerUp.Load():
			ok, reason = false, "worker not running"
		case ok && recv != nil && recv.Unready() != "":
			ok, reason = false, recv.Unready()
		}
		writeReadyz(w, ok, reason, warnings)
	})

	// Metrics: the shared registry; queue sizes are refreshed per scrape.
	insp := asynq.NewInspector(conn.Asynq())
	defer insp.Close()
	qc, err := metrics.NewQueueCollector(metrics.QueueCollectorConfig{
		Inspector: insp, Redis: rdb, Prefix: cfg.KeyPrefix, Shards: cfg.Shards, Queues: priorityQueues(queues),
		Logger: log.With().Str("component", "metrics").Logger(),
	})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	internalMux.Handle("GET /metrics", qc.Handler(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{})))
	if cfg.Pprof {
		internalMux.HandleFunc("/debug/pprof/", pprof.Index)
		internalMux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		internalMux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		internalMux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		internalMux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}

	if cfg.APIToken != "" {
		operators, err := cfg.DashboardOperators()
		if err != nil {
			return fmt.Errorf("ROXD_DASHBOARD_USERS: %w", err)
		}
		// The dashboard applies operator actions to messages at once; the
		// worker's sweep catches those made with the asynq CLI.
		ops := make([]*worker.Operator, cfg.Shards)
		for i := range ops {
			op, err := worker.NewOperator(worker.Config{Store: shardStore(storeCfg, i), Queue: queues[i], MaxAttempts: cfg.MaxAttempts,
				AccountID: cfg.ROXAccountID}, rdb, conn.Asynq(), log)
			if err != nil {
				return fmt.Errorf("dashboard operator: %w", err)
			}
			defer op.Close()
			ops[i] = op
		}
		dash, err := dashboard.New(dashboard.Config{RootPath: DashboardPath, RedisConnOpt: conn.Asynq(),
			Token: cfg.APIToken, ReadOnly: cfg.DashboardReadOnly,
			Operators: operators, OperatorPassword: cfg.DashboardPassword,
			AfterAction: func(ctx context.Context, a dashboard.Action) {
				if a.Name == "delete" || a.Name == "archive" {
					for _, op := range ops {
						op.Sweep(ctx, time.Now())
					}
				}
			},
			Logger: log.With().Str("component", "dashboard").Logger()})
		if err != nil {
			return fmt.Errorf("dashboard: %w", err)
		}
		defer dash.Close()
		internalMux.Handle(DashboardPath+"/", dash)
		internalMux.Handle(DashboardPath, http.RedirectHandler(DashboardPath+"/", http.StatusMovedPermanently))
	}

	// Further ROX accounts (ROX_ACCOUNTS; checked by Validate already).
	accounts, err := cfg.Accounts()
	if err != nil {
		return err
	}
	var accountNames []string
	for _, a := range accounts {
		accountNames = append(accountNames, a.Name)
	}
	if cfg.HasRole(config.RoleAPI) {
		prod, err := producer.New(rdb, producer.Config{
			Accounts:      accountNames,
			DefaultRegion: cfg.DefaultRegion, DefaultReceipt: producer.ReceiptMode(cfg.Receipt),
			DefaultReply: producer.ReplyMode(cfg.Reply), MaxScheduleAhead: cfg.MaxScheduleAhead, Store: storeCfg,
			DefaultValidity: cfg.DefaultValidity,
		}, log)
		if err != nil {
			return fmt.Errorf("producer: %w", err)
		}
		api, err := httpapi.New(prod, httpapi.Config{Token: cfg.APIToken, Queue: cfg.Queue}, log)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		internalMux.Handle("/v1/", withBudget(cfg.APITimeout, api))
	}

	if cfg.HasRole(config.RoleCallbacks) {
		recv, err = callbacks.New(callbacks.Config{
			Prefix: cfg.KeyPrefix, Shards: cfg.Shards, Token: cfg.CallbackToken, AccountID: cfg.ROXAccountID,
			ReceiptsStream: cfg.ReceiptsStream, RepliesStream: cfg.RepliesStream, StreamMaxLen: cfg.StreamMaxLen,
			MaxBody: cfg.CallbackMaxBody, SpoolDir: cfg.SpoolDir, DefaultRegion: cfg.DefaultRegion,
			StatusTTL: cfg.StatusTTL,
			Accounts:  callbackAccounts(accounts),
			Replicas:  replicas,
		}, rdb, log.With().Str("component", "callbacks").Logger())
		if err != nil {
			return fmt.Errorf("callbacks: %w", err)
		}
	}

	// One worker per shard: its own former, scheduler, reaper, journal
	// directory and asynq queue, with an equal share of the process's send
	// concurrency and dequeue lanes (store/shards.go).
	var wrks []*worker.Worker
	if cfg.HasRole(config.RoleWorker) {
		sender := opts.Sender
		if sender == nil {
			c, err := rox.NewClient(cfg.ClientConfig())
			if err != nil {
				return fmt.Errorf("rox client: %w", err)
			}
			sender = c
		}
		for i := range cfg.Shards {
			receiptURL, replyURL := cfg.ShardCallbackURLs(i)
			journalDir, wlog := cfg.JournalDir, log.With().Str("component", "worker").Logger()
			if cfg.Shards > 1 {
				journalDir = filepath.Join(cfg.JournalDir, "shard-"+strconv.Itoa(i))
				wlog = wlog.With().Int("shard", i).Logger()
			}
			var waccts []worker.Account
			for _, a := range accounts {
				c, err := rox.NewClient(cfg.AccountClientConfig(a))
				if err != nil {
					return fmt.Errorf("ROX_ACCOUNTS: account %s: rox client: %w", a.Name, err)
				}
				ru, pu := cfg.AccountCallbackURLs(a)
				if cfg.Shards > 1 {
					// The same shard query as the default account's URLs.
					q := "?s=" + strconv.Itoa(i)
					ru, pu = ru+q, pu+q
				}
				waccts = append(waccts, worker.Account{Name: a.Name, AccountID: a.AccountID, Sender: c,
					ReceiptCallbackURL: ru, ReplyCallbackURL: pu, RateLimit: *a.RateLimit})
			}
			wrk, err := worker.New(worker.Config{
				Accounts: waccts,
				Store:    shardStore(storeCfg, i), Queue: queues[i], MaxBatch: rox.MaxRecipients, Linger: cfg.BatchLinger,
				SendConcurrency: (cfg.SendConcurrency + cfg.Shards - 1) / cfg.Shards,
				DequeueLanes:    max(1, cfg.DequeueLanes/cfg.Shards),
				HighReserve:     (cfg.HighReserve + cfg.Shards - 1) / cfg.Shards,
				ShutdownTimeout: workerShutdownTimeout(cfg.ShutdownTimeout, cfg.CallbackDrain), RetryInitial: cfg.RetryInitial,
				RetryMaxInterval: cfg.RetryMaxInterval, MaxAttempts: cfg.MaxAttempts,
				PermanentCodes: cfg.PermanentCodes, ReceiptCallbackURL: receiptURL, ReplyCallbackURL: replyURL,
				AccountID: cfg.ROXAccountID, Ambiguous: cfg.Ambiguous, ReconcileWindow: cfg.ReconcileWindow,
				JournalDir: journalDir, ReceiptsStream: cfg.ReceiptsStream, StreamMaxLen: cfg.StreamMaxLen,
				RateLimit: cfg.RateLimit, RequestRateLimit: cfg.RequestRateLimit,
				// One bucket per account for all shards (and processes).
				RatePrefix: store.ShardPrefix(storeCfg.Prefix, 1, 0),
			}, rdb, conn.Asynq(), sender, wlog)
			if err != nil {
				for _, w := range wrks {
					w.Close()
				}
				if errors.Is(err, worker.ErrJournalDir) {
					return fmt.Errorf("ROXD_JOURNAL_DIR: %w", err)
				}
				return fmt.Errorf("worker: %w", err)
			}
			wrks = append(wrks, wrk)
		}
	}

	// Bind every listener before starting anything, so that a taken port
	// fails the start instead of half a process.
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("ROXD_HTTP_ADDR: listen %s: %w", cfg.HTTPAddr, err)
	}
	addrs := Addrs{HTTP: httpLn.Addr().String()}
	var cbLn net.Listener
	if recv != nil {
		if cbLn, err = net.Listen("tcp", cfg.CallbackAddr); err != nil {
			httpLn.Close()
			return fmt.Errorf("ROXD_CALLBACK_ADDR: listen %s: %w", cfg.CallbackAddr, err)
		}
		addrs.Callback = cbLn.Addr().String()
	}

	httpSrv := newServer(internalMux)
	parts := newParts(log)
	parts.serve("http", httpSrv, httpLn)
	var cbSrv *http.Server
	cbActivity := &activity{}
	recvCtx, stopRecv := context.WithCancel(context.Background())
	defer stopRecv()
	if recv != nil {
		cbSrv = newServer(cbActivity.wrap(recv.Handler()))
		parts.serve("callback listener", cbSrv, cbLn)
		parts.start("callbacks", func() error {
			if err := recv.Run(recvCtx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("callbacks: %w", err)
			}
			return nil
		})
	}
	wrkCtx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	if len(wrks) > 0 {
		parts.start("worker", func() error {
			workerUp.Store(true)
			defer workerUp.Store(false)
			return runWorkers(wrkCtx, wrks)
		})
	}
	log.Info().Str("http", addrs.HTTP).Str("callbacks", addrs.Callback).Strs("roles", cfg.Roles).
		Str("redis", conn.String()).Msg("roxd started")
	if opts.Ready != nil {
		opts.Ready(addrs)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-parts.failed:
	}
	err = parts.shutdown(shutdownPlan{
		budget: cfg.ShutdownTimeout, drain: cfg.CallbackDrain,
		httpSrv: httpSrv, cbSrv: cbSrv, stopWorker: stopWorker, stopRecv: stopRecv,
		hasWorker: len(wrks) > 0, hasCallbacks: recv != nil, cbActivity: cbActivity,
	})
	if runErr == nil {
		runErr = err
	}
	log.Info().Err(runErr).Msg("roxd stopped")
	return runErr
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
}

// writeReadyz answers /readyz: {"status":"ready"|"unavailable",
// "reason":..., "warnings":[...]}, 200 or 503.
func writeReadyz(w http.ResponseWriter, ok bool, reason string, warnings []string) {
	body := struct {
		Status   string   `json:"status"`
		Reason   string   `json:"reason,omitempty"`
		Warnings []string `json:"warnings,omitempty"`
	}{Status: "ready", Reason: reason, Warnings: warnings}
	code := http.StatusOK
	if !ok {
		body.Status, code = "unavailable", http.StatusServiceUnavailable
	}
	b, _ := json.Marshal(body)
	writeJSON(w, code, string(b))
}

func writeJSON(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body + "\n"))
}

// callbackAccounts are the receiver's further accounts: each account's
// token and ROX account id.
func callbackAccounts(accts []config.Account) []callbacks.Account {
	out := make([]callbacks.Account, 0, len(accts))
	for _, a := range accts {
		out = append(out, callbacks.Account{Name: a.Name, Token: a.CallbackToken, AccountID: a.AccountID})
	}
	return out
}

// shardStore is the store configuration of shard i's worker: the shard's
// prefix, one shard.
func shardStore(c store.Config, i int) store.Config {
	c.Prefix = store.ShardPrefix(c.Prefix, c.Shards, i)
	c.Shards = 1
	return c
}

// runWorkers runs every shard's worker until ctx ends; the first error of
// one ends them all (the others stop as on shutdown).
func runWorkers(ctx context.Context, wrks []*worker.Worker) error {
	if len(wrks) == 1 {
		return wrks[0].Run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(wrks))
	for _, w := range wrks {
		go func() { errs <- w.Run(ctx) }()
	}
	var first error
	for range wrks {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// priorityQueues lists the send queues of every shard queue, highest
// priority first (metrics look at each).
func priorityQueues(queues []string) []string {
	out := make([]string, 0, 3*len(queues))
	for _, q := range queues {
		out = append(out, store.PriorityQueues(q)...)
	}
	return out
}
