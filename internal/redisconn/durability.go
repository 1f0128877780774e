package redisconn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Durability is what a Redis server says about keeping what it
// acknowledged: its persistence, its eviction policy and its identity.
type Durability struct {
	// Source is "config" (CONFIG GET) or "info" (INFO, when CONFIG is
	// renamed, disabled or denied by ACL).
	Source string
	// AppendOnly is appendonly yes (AOF).
	AppendOnly bool
	// Save is the RDB save points ("" for none; "unknown" from INFO, which
	// does not show them).
	Save string
	// Policy is maxmemory-policy ("" when unknown).
	Policy string
	// RunID is INFO server run_id: it changes at every restart ("" when
	// INFO is unavailable).
	RunID string
	// ListpackValue is hash-max-listpack-value in bytes: a hash keeps the
	// compact listpack encoding only while every value fits (0 when
	// CONFIG GET could not tell).
	ListpackValue int
}

// CompactRecordBytes is the hash-max-listpack-value (bytes) that keeps a
// message record whose text is one SMS segment in the compact encoding:
// 160 GSM-7 characters are 160-170 bytes of UTF-8 (70 UCS-2 ones 70-280).
// ~600 B of Redis memory per queued message instead of ~1.3 KiB with
// Redis's default 64 (docs/BENCHMARKS.md).
const CompactRecordBytes = 256

// CompactRecords reports whether records with texts up to
// CompactRecordBytes stay listpacks; unknown (0) counts as compact, since
// nothing can be said.
func (d Durability) CompactRecords() bool {
	return d.ListpackValue == 0 || d.ListpackValue >= CompactRecordBytes
}

// Persistence of a server, as Durability.Persistence reports it.
const (
	PersistAOF     = "aof"
	PersistRDB     = "rdb"
	PersistNone    = "none"
	PersistUnknown = "unknown"
)

// Persistence is PersistAOF, PersistRDB (save points, no AOF: a crash loses
// writes since the last snapshot), PersistNone or PersistUnknown.
func (d Durability) Persistence() string {
	switch {
	case d.AppendOnly:
		return PersistAOF
	case d.Save == "unknown":
		return PersistUnknown
	case strings.TrimSpace(d.Save) != "":
		return PersistRDB
	case d.Source == "":
		return PersistUnknown
	}
	return PersistNone
}

// Evicting reports whether the eviction policy may drop keys: every policy
// but noeviction. roxd sets a TTL (ROXD_STATUS_TTL) on the ended message
// records it still needs (and on its locks and in-flight index), so
// volatile-* policies would evict them as surely as allkeys-* ones.
func (d Durability) Evicting() bool { return d.Policy != "" && d.Policy != "noeviction" }

// Inspect reads d from the server behind rdb (for a cluster, from the node
// the client picks). CONFIG GET is tried first; when it is refused (renamed,
// disabled, NOPERM) INFO persistence and INFO memory stand in. An error
// means neither answered.
func Inspect(ctx context.Context, rdb redis.UniversalClient) (Durability, error) {
	var d Durability
	info, infoErr := rdb.Info(ctx, "server", "persistence", "memory").Result()
	fields := parseInfo(info)
	d.RunID = fields["run_id"]

	cfg := map[string]string{}
	var cfgErr error
	for _, k := range []string{"appendonly", "save", "maxmemory-policy"} {
		m, err := rdb.ConfigGet(ctx, k).Result()
		if err != nil {
			cfgErr = err
			break
		}
		v, ok := m[k]
		if !ok {
			cfgErr = fmt.Errorf("CONFIG GET %s: no value", k)
			break
		}
		cfg[k] = v
	}
	if cfgErr == nil {
		if m, err := rdb.ConfigGet(ctx, "hash-max-listpack-value").Result(); err == nil {
			d.ListpackValue, _ = strconv.Atoi(m["hash-max-listpack-value"])
		}
		d.Source = "config"
		d.AppendOnly = cfg["appendonly"] == "yes"
		d.Save = cfg["save"]
		d.Policy = cfg["maxmemory-policy"]
		return d, nil
	}
	if isConnErr(cfgErr) || infoErr != nil && isConnErr(infoErr) {
		return Durability{}, fmt.Errorf("redis durability: %w", cfgErr)
	}
	if infoErr != nil || fields["aof_enabled"] == "" {
		return Durability{}, fmt.Errorf("redis durability: CONFIG GET refused (%v) and INFO too (%v)", cfgErr, infoErr)
	}
	d.Source = "info"
	d.AppendOnly = fields["aof_enabled"] == "1"
	d.Save = "unknown"
	d.Policy = fields["maxmemory_policy"]
	return d, nil
}

// isConnErr reports an error that says nothing about the server's
// settings (not reached, timed out) as opposed to a refused command.
func isConnErr(err error) bool {
	var rerr redis.Error
	return err != nil && !errors.As(err, &rerr)
}

func parseInfo(s string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}
