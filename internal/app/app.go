package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

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
	rdb := conn.Client()
	defer rdb.Close()
	storeCfg := store.Config{Prefix: cfg.KeyPrefix, StatusTTL: cfg.StatusTTL, ScheduleLead: cfg.ScheduleLead}

	var workerUp atomic.Bool
	internalMux := http.NewServeMux()
	internalMux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
	})
	internalMux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, `{"status":"unavailable","reason":"redis unreachable"}`)
			return
		}
		if cfg.HasRole(config.RoleWorker) && !workerUp.Load() {
			writeJSON(w, http.StatusServiceUnavailable, `{"status":"unavailable","reason":"worker not running"}`)
			return
		}
		writeJSON(w, http.StatusOK, `{"status":"ready"}`)
	})

	// Metrics: the shared registry; queue sizes are refreshed per scrape.
	insp := asynq.NewInspector(conn.Asynq())
	defer insp.Close()
	qc, err := metrics.NewQueueCollector(metrics.QueueCollectorConfig{
		Inspector: insp, Redis: rdb, Prefix: cfg.KeyPrefix, Queues: []string{cfg.Queue},
		Logger: log.With().Str("component", "metrics").Logger(),
	})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	internalMux.Handle("GET /metrics", qc.Handler(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{})))

	if cfg.APIToken != "" {
		operators, err := cfg.DashboardOperators()
		if err != nil {
			return fmt.Errorf("ROXD_DASHBOARD_USERS: %w", err)
		}
		// The dashboard applies operator actions to messages at once; the
		// worker's sweep catches those made with the asynq CLI.
		op, err := worker.NewOperator(worker.Config{Store: storeCfg, Queue: cfg.Queue, MaxAttempts: cfg.MaxAttempts,
			AccountID: cfg.ROXAccountID}, rdb, conn.Asynq(), log)
		if err != nil {
			return fmt.Errorf("dashboard operator: %w", err)
		}
		defer op.Close()
		dash, err := dashboard.New(dashboard.Config{RootPath: DashboardPath, RedisConnOpt: conn.Asynq(),
			Token: cfg.APIToken, ReadOnly: cfg.DashboardReadOnly,
			Operators: operators, OperatorPassword: cfg.DashboardPassword,
			AfterAction: func(ctx context.Context, a dashboard.Action) {
				if a.Name == "delete" || a.Name == "archive" {
					op.Sweep(ctx, time.Now())
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

	if cfg.HasRole(config.RoleAPI) {
		prod, err := producer.New(rdb, producer.Config{
			DefaultRegion: cfg.DefaultRegion, DefaultReceipt: producer.ReceiptMode(cfg.Receipt),
			DefaultReply: producer.ReplyMode(cfg.Reply), MaxScheduleAhead: cfg.MaxScheduleAhead, Store: storeCfg,
		}, log)
		if err != nil {
			return fmt.Errorf("producer: %w", err)
		}
		api, err := httpapi.New(prod, httpapi.Config{Token: cfg.APIToken, Queue: cfg.Queue}, log)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		internalMux.Handle("/v1/", api)
	}

	var recv *callbacks.Receiver
	if cfg.HasRole(config.RoleCallbacks) {
		recv, err = callbacks.New(callbacks.Config{
			Prefix: cfg.KeyPrefix, Token: cfg.CallbackToken, AccountID: cfg.ROXAccountID,
			ReceiptsStream: cfg.ReceiptsStream, RepliesStream: cfg.RepliesStream, StreamMaxLen: cfg.StreamMaxLen,
			MaxBody: cfg.CallbackMaxBody, SpoolDir: cfg.SpoolDir,
		}, rdb, log.With().Str("component", "callbacks").Logger())
		if err != nil {
			return fmt.Errorf("callbacks: %w", err)
		}
	}

	var wrk *worker.Worker
	if cfg.HasRole(config.RoleWorker) {
		sender := opts.Sender
		if sender == nil {
			c, err := rox.NewClient(cfg.ClientConfig())
			if err != nil {
				return fmt.Errorf("rox client: %w", err)
			}
			sender = c
		}
		receiptURL, replyURL := cfg.CallbackURLs()
		wrk, err = worker.New(worker.Config{
			Store: storeCfg, Queue: cfg.Queue, MaxBatch: rox.MaxRecipients, Linger: cfg.BatchLinger,
			SendConcurrency: cfg.SendConcurrency, DequeueLanes: cfg.DequeueLanes,
			ShutdownTimeout: cfg.ShutdownTimeout, RetryInitial: cfg.RetryInitial,
			RetryMaxInterval: cfg.RetryMaxInterval, MaxAttempts: cfg.MaxAttempts,
			PermanentCodes: cfg.PermanentCodes, ReceiptCallbackURL: receiptURL, ReplyCallbackURL: replyURL,
			AccountID: cfg.ROXAccountID,
		}, rdb, conn.Asynq(), sender, log.With().Str("component", "worker").Logger())
		if err != nil {
			return fmt.Errorf("worker: %w", err)
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
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveUntil(gctx, httpSrv, httpLn, cfg.ShutdownTimeout) })
	if recv != nil {
		// The receiver's batchers and spool replayer stop only after the
		// callback listener has finished its in-flight callbacks.
		recvCtx, stopRecv := context.WithCancel(context.Background())
		cbSrv := newServer(recv.Handler())
		g.Go(func() error {
			defer stopRecv()
			return serveUntil(gctx, cbSrv, cbLn, cfg.ShutdownTimeout)
		})
		g.Go(func() error {
			if err := recv.Run(recvCtx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("callbacks: %w", err)
			}
			return nil
		})
	}
	if wrk != nil {
		g.Go(func() error {
			workerUp.Store(true)
			defer workerUp.Store(false)
			return wrk.Run(gctx)
		})
	}
	log.Info().Str("http", addrs.HTTP).Str("callbacks", addrs.Callback).Strs("roles", cfg.Roles).
		Str("redis", conn.String()).Msg("roxd started")
	if opts.Ready != nil {
		opts.Ready(addrs)
	}
	err = g.Wait()
	log.Info().Err(err).Msg("roxd stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
}

// serveUntil serves on ln until ctx is done, then shuts the server down
// gracefully: no new requests, in-flight ones finish within timeout.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	return err
}

func writeJSON(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body + "\n"))
}
