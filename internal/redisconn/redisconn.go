package redisconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// EnvVar is the environment variable that holds the URL; errors name it.
const EnvVar = "REDIS_URL"

// Default ports when an address has none.
const (
	DefaultPort         = "6379"
	DefaultSentinelPort = "26379"
)

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid " + EnvVar)

// Kind is the topology a URL names.
type Kind string

// Kinds of deployment.
const (
	KindSingle   Kind = "single"
	KindSentinel Kind = "sentinel"
	KindCluster  Kind = "cluster"
)

// Conn is a parsed REDIS_URL. The zero value is not usable; get one from
// Parse. Conn is a value: copying it is cheap and safe.
type Conn struct {
	kind             Kind
	tls              bool
	addrs            []string
	username         string
	password         string
	sentinelPassword string
	master           string
	db               int
}

// redacted replaces secrets in String.
const redacted = "REDACTED"

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Parse reads a Redis URL in one of the forms listed in the package
// documentation. Its errors wrap ErrInvalid, name REDIS_URL and never contain
// the password.
func Parse(raw string) (Conn, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Conn{}, invalid("empty; want e.g. redis://localhost:6379/0")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Conn{}, invalid("no scheme; want e.g. redis://localhost:6379/0")
	}
	var c Conn
	switch strings.ToLower(scheme) {
	case "redis":
		c.kind = KindSingle
	case "rediss":
		c.kind, c.tls = KindSingle, true
	case "redis-sentinel":
		c.kind = KindSentinel
	case "rediss-sentinel":
		c.kind, c.tls = KindSentinel, true
	case "redis-cluster":
		c.kind = KindCluster
	case "rediss-cluster":
		c.kind, c.tls = KindCluster, true
	default:
		return Conn{}, invalid("unsupported scheme %q: want redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", scheme)
	}

	// The authority ends at the first '/', '?' or '#'. A password holding
	// one of those must be percent-encoded, as in every URL.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if !strings.Contains(authority, "@") && strings.Contains(tail, "@") {
		// Most likely a password with an unescaped '/', '?' or '#': say
		// nothing about the text, it may be part of the password.
		return Conn{}, invalid("'@' after the host list: percent-encode '/', '?', '#' and '@' in the user name and password")
	}
	hostList := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if err := c.parseUserinfo(authority[:at]); err != nil {
			return Conn{}, err
		}
		hostList = authority[at+1:]
	}
	if err := c.parseHosts(hostList); err != nil {
		return Conn{}, err
	}

	if strings.Contains(tail, "#") {
		return Conn{}, invalid("a fragment (#...) is not allowed")
	}
	path, rawQuery, _ := strings.Cut(tail, "?")
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		// The query may hold sentinel_password: do not echo it.
		return Conn{}, invalid("malformed query string")
	}
	segs, err := pathSegments(path)
	if err != nil {
		return Conn{}, err
	}
	switch c.kind {
	case KindSingle:
		err = c.parseSingle(segs, query)
	case KindSentinel:
		err = c.parseSentinel(segs, query)
	case KindCluster:
		err = c.parseCluster(segs, query)
	}
	if err != nil {
		return Conn{}, err
	}
	return c, nil
}

func (c *Conn) parseUserinfo(s string) error {
	user, pass, hasPass := strings.Cut(s, ":")
	var err error
	if c.username, err = url.PathUnescape(user); err != nil {
		return invalid("malformed user name escape")
	}
	if hasPass {
		if c.password, err = url.PathUnescape(pass); err != nil {
			return invalid("malformed password escape (percent-encode special characters)")
		}
	}
	return nil
}

func (c *Conn) parseHosts(list string) error {
	if list == "" {
		return invalid("no host; want e.g. redis://localhost:6379/0")
	}
	hosts := strings.Split(list, ",")
	if c.kind == KindSingle && len(hosts) > 1 {
		return invalid("%d hosts in a single-server URL: use redis-sentinel:// or redis-cluster://", len(hosts))
	}
	port := DefaultPort
	if c.kind == KindSentinel {
		port = DefaultSentinelPort
	}
	for _, h := range hosts {
		addr, err := normalizeAddr(h, port)
		if err != nil {
			return err
		}
		c.addrs = append(c.addrs, addr)
	}
	return nil
}

// normalizeAddr returns host:port, adding def when h has no port.
func normalizeAddr(h, def string) (string, error) {
	if h == "" {
		return "", invalid("empty host in host list")
	}
	host, port := h, def
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		var err error
		if host, port, err = net.SplitHostPort(h); err != nil {
			if !strings.HasPrefix(h, "[") || !strings.HasSuffix(h, "]") {
				return "", invalid("bad address %q: want host:port", h)
			}
			host, port = strings.Trim(h, "[]"), def
		}
	} else if strings.Contains(h, ":") {
		return "", invalid("bad address %q: put an IPv6 address in brackets, e.g. [::1]:6379", h)
	}
	if host == "" {
		return "", invalid("bad address %q: no host name", h)
	}
	if !validHost(host) {
		return "", invalid("bad host name in %q", h)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", invalid("bad port in %q: want 1-65535", h)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// validHost accepts a DNS name, an IPv4 address or an IPv6 address (no
// zone).
func validHost(h string) bool {
	if strings.Contains(h, ":") {
		parsed := net.ParseIP(h)
		return parsed != nil && parsed.To4() == nil
	}
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

func pathSegments(p string) ([]string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil, nil
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" {
			return nil, invalid("malformed path %q", "/"+p)
		}
		segs[i] = u
	}
	return segs, nil
}

func parseDB(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, invalid("database %q: want a number >= 0", s)
	}
	return n, nil
}

func onlyParams(q url.Values, allowed ...string) error {
	for k := range q {
		if !slices.Contains(allowed, k) {
			if q.Has("sentinel_password") {
				// An unescaped '&' in the password makes its tail look
				// like a parameter name: do not echo it.
				return invalid("unknown query parameter: want only %s", strings.Join(allowed, ", "))
			}
			if len(allowed) == 0 {
				return invalid("query parameter %q: this form takes none", k)
			}
			return invalid("query parameter %q: want one of %s", k, strings.Join(allowed, ", "))
		}
		if len(q[k]) > 1 {
			return invalid("query parameter %q given %d times", k, len(q[k]))
		}
	}
	return nil
}

func (c *Conn) parseSingle(segs []string, q url.Values) error {
	if err := onlyParams(q); err != nil {
		return err
	}
	switch len(segs) {
	case 0:
		return nil
	case 1:
		var err error
		c.db, err = parseDB(segs[0])
		return err
	default:
		return invalid("path: want at most /db, e.g. redis://localhost:6379/0")
	}
}

func (c *Conn) parseSentinel(segs []string, q url.Values) error {
	if err := onlyParams(q, "master", "db", "sentinel_password"); err != nil {
		return err
	}
	c.sentinelPassword = q.Get("sentinel_password")
	dbText := q.Get("db")
	switch len(segs) {
	case 0:
	case 1:
		c.master = segs[0]
	case 2:
		c.master = segs[0]
		if dbText != "" && dbText != segs[1] {
			return invalid("database given twice (path and db=)")
		}
		dbText = segs[1]
	default:
		return invalid("path: want /master[/db], e.g. redis-sentinel://host:26379/mymaster/0")
	}
	if m := q.Get("master"); m != "" {
		if c.master != "" && c.master != m {
			return invalid("master name given twice (path and master=)")
		}
		c.master = m
	}
	if c.master == "" {
		return invalid("no master name: want e.g. redis-sentinel://host:26379/mymaster")
	}
	if dbText != "" {
		var err error
		c.db, err = parseDB(dbText)
		return err
	}
	return nil
}

func (c *Conn) parseCluster(segs []string, q url.Values) error {
	if err := onlyParams(q); err != nil {
		return err
	}
	if len(segs) > 1 || (len(segs) == 1 && segs[0] != "0") {
		return invalid("Redis Cluster has only database 0: drop the path")
	}
	return nil
}

// Kind reports the topology.
func (c Conn) Kind() Kind { return c.kind }

// TLS reports whether connections use TLS.
func (c Conn) TLS() bool { return c.tls }

// Addrs returns the addresses (sentinels for KindSentinel, seed nodes for
// KindCluster), each as host:port.
func (c Conn) Addrs() []string { return slices.Clone(c.addrs) }

// DB is the database number (always 0 for a cluster).
func (c Conn) DB() int { return c.db }

// MasterName is the Sentinel master name, empty for other kinds.
func (c Conn) MasterName() string { return c.master }

// tlsConfig returns a fresh TLS config using the system roots, or nil.
// For one server the name to verify is its host; for Sentinel and Cluster
// it is left empty so that each dialled node is verified against its own
// host name (crypto/tls derives it from the address).
func (c Conn) tlsConfig() *tls.Config {
	if !c.tls {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.kind == KindSingle {
		host, _, _ := net.SplitHostPort(c.addrs[0])
		cfg.ServerName = host
	}
	return cfg
}

// Options returns go-redis options for this URL.
func (c Conn) Options() *redis.UniversalOptions {
	o := &redis.UniversalOptions{
		Addrs:     slices.Clone(c.addrs),
		Username:  c.username,
		Password:  c.password,
		DB:        c.db,
		TLSConfig: c.tlsConfig(),
		// Budgets (budget.go): a hung Redis costs a bounded time, and a
		// caller's context deadline reaches the socket.
		DialTimeout:           DialTimeout,
		DialerRetries:         DialerRetries,
		ReadTimeout:           ReadTimeout,
		WriteTimeout:          WriteTimeout,
		PoolTimeout:           PoolTimeout,
		MaxRetries:            MaxRetries,
		ContextTimeoutEnabled: true,
	}
	switch c.kind {
	case KindSentinel:
		o.MasterName = c.master
		o.SentinelPassword = c.sentinelPassword
	case KindCluster:
		o.IsClusterMode = true
	}
	return o
}

// Client returns a new go-redis client (a *redis.Client, a failover client
// or a *redis.ClusterClient). The caller closes it. It panics only for a
// zero Conn, which Parse never returns.
func (c Conn) Client() redis.UniversalClient {
	return redis.NewUniversalClient(c.Options())
}

// Asynq returns the asynq connection option for the same Redis:
// asynq.RedisClientOpt, asynq.RedisFailoverClientOpt or
// asynq.RedisClusterClientOpt.
func (c Conn) Asynq() asynq.RedisConnOpt {
	switch c.kind {
	case KindSentinel:
		return asynq.RedisFailoverClientOpt{
			MasterName:       c.master,
			SentinelAddrs:    slices.Clone(c.addrs),
			SentinelPassword: c.sentinelPassword,
			Username:         c.username,
			Password:         c.password,
			DB:               c.db,
			TLSConfig:        c.tlsConfig(),
			DialTimeout:      DialTimeout,
			ReadTimeout:      ReadTimeout,
			WriteTimeout:     WriteTimeout,
		}
	case KindCluster:
		return asynq.RedisClusterClientOpt{
			Addrs:        slices.Clone(c.addrs),
			Username:     c.username,
			Password:     c.password,
			TLSConfig:    c.tlsConfig(),
			DialTimeout:  DialTimeout,
			ReadTimeout:  ReadTimeout,
			WriteTimeout: WriteTimeout,
		}
	default:
		var addr string
		if len(c.addrs) > 0 {
			addr = c.addrs[0]
		}
		return asynq.RedisClientOpt{
			Addr:         addr,
			Username:     c.username,
			Password:     c.password,
			DB:           c.db,
			TLSConfig:    c.tlsConfig(),
			DialTimeout:  DialTimeout,
			ReadTimeout:  ReadTimeout,
			WriteTimeout: WriteTimeout,
		}
	}
}

// String is the URL in canonical form with every password replaced by
// REDACTED: safe for logs and startup banners.
func (c Conn) String() string {
	var b strings.Builder
	b.WriteString("redis")
	if c.tls {
		b.WriteString("s")
	}
	switch c.kind {
	case KindSingle:
	case KindSentinel:
		b.WriteString("-sentinel")
	case KindCluster:
		b.WriteString("-cluster")
	default:
		return "<invalid redis url>"
	}
	b.WriteString("://")
	if c.username != "" || c.password != "" {
		b.WriteString(url.User(c.username).String())
		if c.password != "" {
			b.WriteString(":" + redacted)
		}
		b.WriteString("@")
	}
	b.WriteString(strings.Join(c.addrs, ","))
	switch c.kind {
	case KindSingle:
		b.WriteString("/" + strconv.Itoa(c.db))
	case KindSentinel:
		b.WriteString("/" + url.PathEscape(c.master) + "/" + strconv.Itoa(c.db))
		if c.sentinelPassword != "" {
			b.WriteString("?sentinel_password=" + redacted)
		}
	}
	return b.String()
}
