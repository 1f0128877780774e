package redisconn_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/testutil"
)

const secret = "s3cr3t-pw"

func TestParseForms(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		kind    redisconn.Kind
		tls     bool
		addrs   []string
		db      int
		master  string
		str     string
		user    string
		pass    string
		sentPwd string
	}{
		{name: "plain", in: "redis://localhost:6379/0", kind: redisconn.KindSingle,
			addrs: []string{"localhost:6379"}, str: "redis://localhost:6379/0"},
		{name: "default port and db", in: "redis://cache", kind: redisconn.KindSingle,
			addrs: []string{"cache:6379"}, str: "redis://cache:6379/0"},
		{name: "trailing slash", in: " redis://cache:6380/ ", kind: redisconn.KindSingle,
			addrs: []string{"cache:6380"}, str: "redis://cache:6380/0"},
		{name: "password only", in: "redis://:" + secret + "@10.0.0.1:6379/3", kind: redisconn.KindSingle,
			addrs: []string{"10.0.0.1:6379"}, db: 3, pass: secret, str: "redis://:REDACTED@10.0.0.1:6379/3"},
		{name: "acl user", in: "redis://app:" + secret + "@h:1/2", kind: redisconn.KindSingle,
			addrs: []string{"h:1"}, db: 2, user: "app", pass: secret, str: "redis://app:REDACTED@h:1/2"},
		{name: "escaped password", in: "redis://:p%2Fa%40ss%3Aw@h/0", kind: redisconn.KindSingle,
			addrs: []string{"h:6379"}, pass: "p/a@ss:w", str: "redis://:REDACTED@h:6379/0"},
		{name: "unescaped at in password", in: "redis://:p@ss@h/0", kind: redisconn.KindSingle,
			addrs: []string{"h:6379"}, pass: "p@ss", str: "redis://:REDACTED@h:6379/0"},
		{name: "ipv6", in: "redis://[::1]:7000/1", kind: redisconn.KindSingle,
			addrs: []string{"[::1]:7000"}, db: 1, str: "redis://[::1]:7000/1"},
		{name: "ipv6 default port", in: "redis://[::1]", kind: redisconn.KindSingle,
			addrs: []string{"[::1]:6379"}, str: "redis://[::1]:6379/0"},
		{name: "upper-case scheme", in: "REDIS://h:1/0", kind: redisconn.KindSingle,
			addrs: []string{"h:1"}, str: "redis://h:1/0"},
		{name: "tls", in: "rediss://:" + secret + "@redis.example.com:6380/0", kind: redisconn.KindSingle, tls: true,
			addrs: []string{"redis.example.com:6380"}, pass: secret, str: "rediss://:REDACTED@redis.example.com:6380/0"},
		{name: "sentinel path", in: "redis-sentinel://:" + secret + "@s1:26379,s2:26380,s3/mymaster/2", kind: redisconn.KindSentinel,
			addrs: []string{"s1:26379", "s2:26380", "s3:26379"}, db: 2, master: "mymaster", pass: secret,
			str: "redis-sentinel://:REDACTED@s1:26379,s2:26380,s3:26379/mymaster/2"},
		{name: "sentinel asynq form", in: "redis-sentinel://s1:5000,s2:5000?master=mymaster", kind: redisconn.KindSentinel,
			addrs: []string{"s1:5000", "s2:5000"}, master: "mymaster", str: "redis-sentinel://s1:5000,s2:5000/mymaster/0"},
		{name: "sentinel query db and password", in: "redis-sentinel://s1/m?db=4&sentinel_password=" + secret, kind: redisconn.KindSentinel,
			addrs: []string{"s1:26379"}, master: "m", db: 4, sentPwd: secret,
			str: "redis-sentinel://s1:26379/m/4?sentinel_password=REDACTED"},
		{name: "sentinel tls", in: "rediss-sentinel://s1:26379/m", kind: redisconn.KindSentinel, tls: true,
			addrs: []string{"s1:26379"}, master: "m", str: "rediss-sentinel://s1:26379/m/0"},
		{name: "cluster", in: "redis-cluster://:" + secret + "@n1:7000,n2:7001,n3", kind: redisconn.KindCluster,
			addrs: []string{"n1:7000", "n2:7001", "n3:6379"}, pass: secret,
			str: "redis-cluster://:REDACTED@n1:7000,n2:7001,n3:6379"},
		{name: "cluster db 0", in: "redis-cluster://n1:7000/0", kind: redisconn.KindCluster,
			addrs: []string{"n1:7000"}, str: "redis-cluster://n1:7000"},
		{name: "cluster tls", in: "rediss-cluster://n1:7000", kind: redisconn.KindCluster, tls: true,
			addrs: []string{"n1:7000"}, str: "rediss-cluster://n1:7000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redisconn.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Kind() != tt.kind || c.TLS() != tt.tls || c.DB() != tt.db || c.MasterName() != tt.master {
				t.Errorf("got kind %s tls %v db %d master %q", c.Kind(), c.TLS(), c.DB(), c.MasterName())
			}
			if !reflect.DeepEqual(c.Addrs(), tt.addrs) {
				t.Errorf("addrs %v, want %v", c.Addrs(), tt.addrs)
			}
			if got := c.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			checkOptions(t, c, tt.user, tt.pass, tt.sentPwd)
			checkAsynq(t, c, tt.user, tt.pass, tt.sentPwd)
			// The canonical form parses back to the same connection (with
			// passwords replaced by the placeholder).
			back, err := redisconn.Parse(c.String())
			if err != nil {
				t.Fatalf("Parse(String()): %v", err)
			}
			if back.String() != c.String() || !reflect.DeepEqual(back.Addrs(), c.Addrs()) || back.DB() != c.DB() {
				t.Errorf("round trip: %q != %q", back.String(), c.String())
			}
		})
	}
}

func checkOptions(t *testing.T, c redisconn.Conn, user, pass, sentPwd string) {
	t.Helper()
	o := c.Options()
	if o.Username != user || o.Password != pass || o.SentinelPassword != sentPwd {
		t.Errorf("options: user %q pass %q sentinel pass %q", o.Username, o.Password, o.SentinelPassword)
	}
	if o.DB != c.DB() || o.MasterName != c.MasterName() || o.IsClusterMode != (c.Kind() == redisconn.KindCluster) {
		t.Errorf("options: db %d master %q cluster %v", o.DB, o.MasterName, o.IsClusterMode)
	}
	if (o.TLSConfig != nil) != c.TLS() {
		t.Fatalf("options: TLS config %v, want TLS %v", o.TLSConfig, c.TLS())
	}
	if o.TLSConfig != nil {
		if o.TLSConfig.InsecureSkipVerify || o.TLSConfig.RootCAs != nil {
			t.Errorf("TLS must verify against the system roots")
		}
		wantName := ""
		if c.Kind() == redisconn.KindSingle {
			wantName = strings.Split(c.Addrs()[0], ":")[0]
		}
		if o.TLSConfig.ServerName != wantName {
			t.Errorf("TLS ServerName %q, want %q", o.TLSConfig.ServerName, wantName)
		}
	}
	cl := c.Client()
	defer cl.Close()
	switch c.Kind() {
	case redisconn.KindCluster:
		if _, ok := cl.(*redis.ClusterClient); !ok {
			t.Errorf("Client() is %T, want *redis.ClusterClient", cl)
		}
	default:
		// A Sentinel-backed failover client is a *redis.Client too.
		if _, ok := cl.(*redis.Client); !ok {
			t.Errorf("Client() is %T, want *redis.Client", cl)
		}
	}
}

func checkAsynq(t *testing.T, c redisconn.Conn, user, pass, sentPwd string) {
	t.Helper()
	switch o := c.Asynq().(type) {
	case asynq.RedisClientOpt:
		if c.Kind() != redisconn.KindSingle || o.Addr != c.Addrs()[0] || o.DB != c.DB() ||
			o.Username != user || o.Password != pass || (o.TLSConfig != nil) != c.TLS() {
			t.Errorf("asynq opt %+v does not match", o)
		}
	case asynq.RedisFailoverClientOpt:
		if c.Kind() != redisconn.KindSentinel || o.MasterName != c.MasterName() || !reflect.DeepEqual(o.SentinelAddrs, c.Addrs()) ||
			o.DB != c.DB() || o.Username != user || o.Password != pass || o.SentinelPassword != sentPwd ||
			(o.TLSConfig != nil) != c.TLS() {
			t.Errorf("asynq opt %+v does not match", o)
		}
	case asynq.RedisClusterClientOpt:
		if c.Kind() != redisconn.KindCluster || !reflect.DeepEqual(o.Addrs, c.Addrs()) ||
			o.Username != user || o.Password != pass || (o.TLSConfig != nil) != c.TLS() {
			t.Errorf("asynq opt %+v does not match", o)
		}
	default:
		t.Errorf("Asynq() is %T", o)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "empty"},
		{"blank", "   ", "empty"},
		{"no scheme", "localhost:6379", "no scheme"},
		{"unknown scheme", "http://:" + secret + "@h:1", "unsupported scheme"},
		{"unix socket", "redis-socket:///tmp/redis.sock", "unsupported scheme"},
		{"no host", "redis://:" + secret + "@/0", "no host"},
		{"two hosts single", "redis://:" + secret + "@a,b", "single-server"},
		{"empty host in list", "redis-cluster://:" + secret + "@a,,b", "empty host"},
		{"bad port", "redis://:" + secret + "@h:99999", "bad port"},
		{"port not a number", "redis://:" + secret + "@h:abc", "bad port"},
		{"empty port", "redis://h:/0", "bad port"},
		{"bad host name", "redis://:" + secret + "@0[/0", "bad host name"},
		{"bare ipv6", "redis://::1/0", "brackets"},
		{"db not a number", "redis://:" + secret + "@h/zero", "database"},
		{"negative db", "redis://h/-1", "database"},
		{"extra path", "redis://h/0/1", "at most /db"},
		{"query on single", "redis://h/0?dial_timeout=3", "query parameter \"dial_timeout\""},
		{"fragment", "redis://h/0#x", "fragment"},
		{"unescaped slash in password", "redis://:ab/cd" + secret + "@h:6379/0", "percent-encode"},
		{"unescaped hash in password", "redis://:ab#" + secret + "@h:6379/0", "percent-encode"},
		{"unescaped question in password", "redis://:ab?" + secret + "@h:6379/0", "percent-encode"},
		{"bad escape in password", "redis://:" + secret + "%zz@h:6379/0", "escape"},
		{"sentinel without master", "redis-sentinel://:" + secret + "@s1,s2", "no master"},
		{"sentinel master twice", "redis-sentinel://s1/a?master=b", "twice"},
		{"sentinel db twice", "redis-sentinel://s1/a/1?db=2", "twice"},
		{"sentinel long path", "redis-sentinel://s1/a/1/2", "/master[/db]"},
		{"sentinel unknown param", "redis-sentinel://s1/a?foo=1", "\"foo\""},
		{"sentinel password with ampersand", "redis-sentinel://s1/a?sentinel_password=ab&" + secret, "unknown query parameter"},
		{"sentinel bad query escape", "redis-sentinel://s1/a?sentinel_password=" + secret + "%zz", "malformed query"},
		{"sentinel param twice", "redis-sentinel://s1/a?master=a&master=a", "2 times"},
		{"cluster db", "redis-cluster://:" + secret + "@n1/1", "only database 0"},
		{"cluster query", "redis-cluster://n1?read_only=true", "takes none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redisconn.Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error", tt.in, c)
			}
			msg := err.Error()
			if !errors.Is(err, redisconn.ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", msg)
			}
			if !strings.Contains(msg, "REDIS_URL") {
				t.Errorf("error %q does not name REDIS_URL", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			for _, leak := range []string{secret, "ab/cd", "ab#", "ab?", "cd" + secret} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q leaks %q", msg, leak)
				}
			}
		})
	}
}

func TestZeroConnString(t *testing.T) {
	if got := (redisconn.Conn{}).String(); got != "<invalid redis url>" {
		t.Fatalf("zero Conn String() = %q", got)
	}
}

// TestLive talks to the test Redis through both the go-redis client and
// asynq, on a queue of its own.
func TestLive(t *testing.T) {
	c, err := redisconn.Parse(testutil.RedisURL(t))
	if err != nil {
		t.Fatalf("Parse(TEST_REDIS_URL): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rdb := c.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("go-redis ping: %v", err)
	}

	queue := testutil.Name("redisconn")
	client := asynq.NewClient(c.Asynq())
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(); err != nil {
		t.Fatalf("asynq client ping: %v", err)
	}
	insp := asynq.NewInspector(c.Asynq())
	t.Cleanup(func() { _ = insp.Close() })
	t.Cleanup(func() { _ = insp.DeleteQueue(queue, true) })

	if _, err := client.EnqueueContext(ctx, asynq.NewTask("t:live", []byte(`{}`)), asynq.Queue(queue)); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	info, err := insp.GetQueueInfo(queue)
	if err != nil {
		t.Fatalf("inspector: %v", err)
	}
	if info.Pending != 1 {
		t.Fatalf("inspector sees %d pending tasks, want 1", info.Pending)
	}
	// go-redis sees the very key asynq wrote: same server, same database.
	n, err := rdb.LLen(ctx, "asynq:{"+queue+"}:pending").Result()
	if err != nil || n != 1 {
		t.Fatalf("LLEN of the pending list = %d, %v; want 1", n, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"redis://localhost:6379/0", "rediss://u:p@h/1", "redis-sentinel://:p@a,b:1/m/2?sentinel_password=x",
		"redis-sentinel://a?master=m&db=3", "redis-cluster://a,b,[::1]:7", "redis://[::1]", "redis://:p%40@h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := redisconn.Parse(in)
		if err != nil {
			if !errors.Is(err, redisconn.ErrInvalid) || !strings.Contains(err.Error(), "REDIS_URL") {
				t.Fatalf("error %q", err)
			}
			return
		}
		s := c.String()
		back, err := redisconn.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) ok but Parse(String() = %q): %v", in, s, err)
		}
		if back.String() != s {
			t.Fatalf("round trip of %q: %q != %q", in, back.String(), s)
		}
	})
}
