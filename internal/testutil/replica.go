package testutil

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewReplica starts a private redis-server replicating master and waits
// until its link to the master is up and the master counts it online, for tests of ROXD_REDIS_MIN_REPLICAS
// (WAIT). Pause the replica to make WAIT come back short.
func NewReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	r := NewServerArgs(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	Eventually(t, 20*time.Second, func() bool {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, "replica on %s did not link to its master %s", r.Addr(), master.Addr())
	// The master counts it (INFO's slaveN state=online, what /readyz and
	// WAIT see) a moment later, after the replica's first REPLCONF ACK.
	m := redis.NewClient(&redis.Options{Addr: master.Addr(), MaxRetries: -1})
	defer m.Close()
	Eventually(t, 20*time.Second, func() bool {
		info, err := m.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "state=online")
	}, "master %s does not count its replica %s online", master.Addr(), r.Addr())
	return r
}
