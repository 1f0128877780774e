package app

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
)

// TestReadyzReportsReplication: /readyz answers 503 while the server roxd
// talks to is a replica (what a client still on a demoted master sees in
// a failover) and, with ROXD_REDIS_MIN_REPLICAS=1, while the master has no
// replica online; 200 once both hold.
func TestReadyzReportsReplication(t *testing.T) {
	master := testutil.NewServerArgs(t, "--appendonly", "yes")
	replica := testutil.NewReplica(t, master)
	s, err := serveAPI(t, master.URL(), map[string]string{"ROXD_REDIS_MIN_REPLICAS": "1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The master counts a replica online only once its first sync is done,
	// which may come after NewReplica returns on a loaded machine.
	testutil.Eventually(t, 30*time.Second, func() bool {
		code, _ := getReadyz(t, s.addrs.HTTP)
		return code == http.StatusOK
	}, "readyz not ready with a master and its replica online and ROXD_REDIS_MIN_REPLICAS=1")
	replica.Stop()
	testutil.Eventually(t, 30*time.Second, func() bool {
		code, r := getReadyz(t, s.addrs.HTTP)
		return code == http.StatusServiceUnavailable && strings.Contains(r.Reason, "0 replicas online")
	}, "readyz stays ready with no replica and ROXD_REDIS_MIN_REPLICAS=1")

	// The master is demoted (REPLICAOF another server): not ready, saying why.
	other := testutil.NewServerArgs(t, "--appendonly", "yes")
	c := redis.NewClient(&redis.Options{Addr: master.Addr()})
	t.Cleanup(func() { c.Close() })
	if err := c.ReplicaOf(context.Background(), "127.0.0.1", strconv.Itoa(other.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	code, r := getReadyz(t, s.addrs.HTTP)
	if code != http.StatusServiceUnavailable || !strings.Contains(r.Reason, "not a master") {
		t.Fatalf("roxd on a replica: %d %+v, want 503 naming the role", code, r)
	}
}
