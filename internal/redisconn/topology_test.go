package redisconn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/testutil"
)

// These tests start private redis-server processes (a master and a
// sentinel; three cluster nodes), all with passwords, and drive them through
// the URL forms, with go-redis and asynq alike.

func TestLiveSentinel(t *testing.T) {
	needRedisServer(t)
	const masterPass, sentinelPass = "master-pw", "sentinel-pw"
	master := startRedis(t, "--requirepass", masterPass)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	sport := freePort(t)
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nrequirepass %s\n"+
		"sentinel monitor mymaster 127.0.0.1 %d 1\nsentinel auth-pass mymaster %s\n"+
		"sentinel down-after-milliseconds mymaster 5000\n", sport, dir, sentinelPass, master, masterPass)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, sport, sentinelPass, "redis-server", conf, "--sentinel")

	url := fmt.Sprintf("redis-sentinel://:%s@127.0.0.1:%d/mymaster/0?sentinel_password=%s", masterPass, sport, sentinelPass)
	c, err := redisconn.Parse(url)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if strings.Contains(c.String(), masterPass) || strings.Contains(c.String(), sentinelPass) {
		t.Fatalf("String() leaks a password: %s", c)
	}
	exercise(t, c)

	// asynq's own form reaches the same master.
	c2, err := redisconn.Parse(fmt.Sprintf("redis-sentinel://:%s@127.0.0.1:%d?master=mymaster&sentinel_password=%s", masterPass, sport, sentinelPass))
	if err != nil {
		t.Fatalf("Parse asynq form: %v", err)
	}
	exercise(t, c2)
}

func TestLiveCluster(t *testing.T) {
	needRedisServer(t)
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not on PATH")
	}
	const pass = "cluster-pw"
	var addrs []string
	for range 3 {
		dir := t.TempDir()
		p := startRedis(t, "--requirepass", pass, "--masterauth", pass, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--dir", dir)
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-a", pass, "--no-auth-warning", "--cluster", "create"}, addrs...)
	args = append(args, "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		n := redis.NewClient(&redis.Options{Addr: a, Password: pass})
		testutil.Eventually(t, 20*time.Second, func() bool {
			info, err := n.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		}, "cluster node %s not ok", a)
		_ = n.Close()
	}

	c, err := redisconn.Parse("redis-cluster://:" + pass + "@" + strings.Join(addrs[:2], ","))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	exercise(t, c)
}

// exercise pings through go-redis, enqueues with asynq and reads the queue
// back through an asynq.Inspector and through go-redis.
func exercise(t *testing.T, c redisconn.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rdb := c.Client()
	defer rdb.Close()
	testutil.Eventually(t, 15*time.Second, func() bool { return rdb.Ping(ctx).Err() == nil },
		"go-redis cannot ping %s", c)

	queue := testutil.Name("topo")
	client := asynq.NewClient(c.Asynq())
	defer client.Close()
	if err := client.Ping(); err != nil {
		t.Fatalf("asynq ping %s: %v", c, err)
	}
	insp := asynq.NewInspector(c.Asynq())
	defer insp.Close()
	if _, err := client.EnqueueContext(ctx, asynq.NewTask("t:topo", nil), asynq.Queue(queue)); err != nil {
		t.Fatalf("enqueue on %s: %v", c, err)
	}
	info, err := insp.GetQueueInfo(queue)
	if err != nil || info.Pending != 1 {
		t.Fatalf("inspector on %s: %+v, %v", c, info, err)
	}
	if n, err := rdb.LLen(ctx, "asynq:{"+queue+"}:pending").Result(); err != nil || n != 1 {
		t.Fatalf("go-redis on %s sees LLEN %d, %v; want 1", c, n, err)
	}
}

func needRedisServer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not on PATH under CI=true")
		}
		t.Skip("redis-server not on PATH")
	}
}

// startRedis starts a private redis-server on a free loopback port with no
// persistence and returns the port. It is killed when the test ends.
func startRedis(t *testing.T, extra ...string) int {
	t.Helper()
	port := freePort(t)
	if slices.Contains(extra, "--cluster-enabled") {
		// A cluster node also listens on port+10000 (its bus), so its port
		// must be <= 55535 with that one free too.
		for i := 0; port > 55535 || !portFree(port+10000); i++ {
			if i == 100 {
				t.Fatal("no free port pair for a cluster node")
			}
			port = freePort(t)
		}
	}
	dir := t.TempDir()
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log")}
	pass := ""
	for i, a := range extra {
		if a == "--requirepass" && i+1 < len(extra) {
			pass = extra[i+1]
		}
	}
	startProcess(t, port, pass, "redis-server", append(args, extra...)...)
	return port
}

func startProcess(t *testing.T, port int, pass, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Password: pass, MaxRetries: -1})
	defer c.Close()
	testutil.Eventually(t, 10*time.Second, func() bool {
		return c.Ping(context.Background()).Err() == nil
	}, "%s on port %d did not answer", name, port)
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestLiveTLS serves Redis over TLS with a certificate for "localhost" from a
// throw-away CA. rediss:// must verify it: against the system roots it fails
// with an unknown authority; with the CA added to the options Parse built,
// go-redis and asynq both connect (so the server name is right too).
func TestLiveTLS(t *testing.T) {
	needRedisServer(t)
	dir := t.TempDir()
	pool := writeTestCert(t, dir)
	port := freePort(t)
	startTLSRedis(t, dir, port)

	c, err := redisconn.Parse(fmt.Sprintf("rediss://localhost:%d/0", port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rdb := c.Client()
	err = rdb.Ping(ctx).Err()
	_ = rdb.Close()
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("ping with system roots: %v, want x509.UnknownAuthorityError", err)
	}

	o := c.Options()
	o.TLSConfig.RootCAs = pool
	trusted := redis.NewUniversalClient(o)
	defer trusted.Close()
	if err := trusted.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping with the CA trusted: %v", err)
	}
	ao := c.Asynq().(asynq.RedisClientOpt)
	ao.TLSConfig.RootCAs = pool
	ac := asynq.NewClient(ao)
	defer ac.Close()
	if err := ac.Ping(); err != nil {
		t.Fatalf("asynq ping with the CA trusted: %v", err)
	}

	// The wrong name fails even with the CA trusted.
	c2, err := redisconn.Parse(fmt.Sprintf("rediss://127.0.0.1:%d/0", port))
	if err != nil {
		t.Fatal(err)
	}
	o2 := c2.Options()
	o2.TLSConfig.RootCAs = pool
	wrong := redis.NewUniversalClient(o2)
	defer wrong.Close()
	var hostErr x509.HostnameError
	if err := wrong.Ping(ctx).Err(); !errors.As(err, &hostErr) {
		t.Fatalf("ping 127.0.0.1 with a localhost certificate: %v, want x509.HostnameError", err)
	}
}

func startTLSRedis(t *testing.T, dir string, port int) {
	t.Helper()
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "cert.pem"), "--tls-key-file", filepath.Join(dir, "key.pem"),
		"--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	testutil.Eventually(t, 10*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err == nil
	}, "TLS redis-server on port %d did not listen (built without TLS?)", port)
}

// writeTestCert writes cert.pem and key.pem for "localhost", signed by a
// fresh CA, and returns a pool holding that CA.
func writeTestCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "roxd test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cert.pem", "CERTIFICATE", der)
	write("key.pem", "PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}
