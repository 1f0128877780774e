package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/callbacks"
	"github.com/redoxygen/roxd/internal/redisconn"
)

// Environment of `roxd tail`.
const (
	envTailRedisURL    = "REDIS_URL"
	envReceiptsStream  = "ROXD_RECEIPTS_STREAM"
	envRepliesStream   = "ROXD_REPLIES_STREAM"
	defaultTailRedis   = "redis://127.0.0.1:6379/0"
	tailBlock          = time.Second
	tailBatch          = 100
	tailUsage          = "usage: roxd tail receipts|replies [--redis URL] [--from ID] [--count N]"
	tailStartupMessage = "roxd tail: %s from %s\n"
)

func init() {
	register("tail", "print receipts or replies as they arrive: tail receipts|replies", runTail)
}

func runTail(ctx context.Context, args []string) error {
	return tail(ctx, args, os.Stdout, os.Stderr)
}

// tail prints each entry of the receipts or replies stream as one JSON line
// as it arrives (XREAD BLOCK, no consumer group: it changes nothing).
func tail(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprintln(errOut, tailUsage)
		fs.PrintDefaults()
	}
	redisURL := envString(fs, "redis", envTailRedisURL, defaultTailRedis, "Redis URL", false)
	receipts := envString(fs, "receipts-stream", envReceiptsStream, callbacks.DefaultReceiptsStream, "receipts stream", false)
	replies := envString(fs, "replies-stream", envRepliesStream, callbacks.DefaultRepliesStream, "replies stream", false)
	from := fs.String("from", "$", `where to start: "$" for new entries only, "0" for the whole stream, or an entry id`)
	count := fs.Int("count", 0, "stop after this many entries (0: run until interrupted)")
	// The kind may come before or after the flags.
	var kind string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		kind, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// A usage error prints the usage line; run prints its reason.
	usageErr := func(format string, a ...any) error {
		fmt.Fprintln(errOut, tailUsage)
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	if kind == "" && fs.NArg() > 0 {
		kind, args = fs.Arg(0), fs.Args()[1:]
	} else {
		args = fs.Args()
	}
	if len(args) > 0 {
		return usageErr("unexpected argument %q", args[0])
	}
	var stream string
	var err error
	switch kind {
	case "receipts", "receipt":
		stream, err = receipts()
	case "replies", "reply":
		stream, err = replies()
	case "":
		return usageErr("want receipts or replies")
	default:
		return usageErr("%q: want receipts or replies", kind)
	}
	if err != nil {
		return err
	}
	if *count < 0 {
		return usageErr("--count %d: want 0 or more", *count)
	}
	if err := checkStreamID(*from); err != nil {
		return usageErr("--from %q: %v", *from, err)
	}
	rawURL, err := redisURL()
	if err != nil {
		return err
	}
	// redisconn: every REDIS_URL form of the README (Sentinel and Cluster
	// too), and errors that never quote the password.
	conn, err := redisconn.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("--redis / %s: %w", envTailRedisURL, err)
	}
	rdb := conn.Client()
	defer rdb.Close()

	last := *from
	if last == "$" {
		// Resolve "$" once: re-sending "$" after an empty wait would skip
		// entries added between two reads.
		if last, err = lastID(ctx, rdb, stream); err != nil {
			return err
		}
	}
	fmt.Fprintf(errOut, tailStartupMessage, stream, last)
	enc := json.NewEncoder(out)
	printed := 0
	for ctx.Err() == nil {
		res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Count: tailBatch, Block: tailBlock}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("read %s: %w", stream, err)
		}
		for _, s := range res {
			for _, m := range s.Messages {
				line := make(map[string]any, len(m.Values)+1)
				for k, v := range m.Values {
					line[k] = v
				}
				line["id"] = m.ID
				if err := enc.Encode(line); err != nil {
					return fmt.Errorf("write: %w", err)
				}
				last = m.ID
				printed++
				if *count > 0 && printed >= *count {
					return nil
				}
			}
		}
	}
	return nil
}

// checkStreamID accepts what --from may be: "$", or a stream entry id
// as XREAD takes it (milliseconds, optionally "-" and a sequence number).
func checkStreamID(id string) error {
	if id == "$" {
		return nil
	}
	ms, seq, hasSeq := strings.Cut(id, "-")
	if !digits(ms) || hasSeq && !digits(seq) {
		return errors.New(`want "$" (new entries only), "0" (the whole stream) or an entry id such as 1700000000000-0`)
	}
	return nil
}

// digits reports whether s is a decimal uint64, as a stream id's parts are.
func digits(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil && s[0] != '+'
}

// lastID is the id of the newest entry of stream, or "0-0" when it is
// empty or missing.
func lastID(ctx context.Context, rdb redis.UniversalClient, stream string) (string, error) {
	msgs, err := rdb.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", stream, err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}
