package app

import (
	"strings"
	"testing"

	"github.com/redoxygen/roxd/config"
)

// TestDevBannerRedactsRedisPassword: `roxd dev` with REDIS_URL set prints
// it twice (the redis line and the `roxd tail` hint); both showed the
// password: "redis        redis://:<password>@host:6379/0".
func TestDevBannerRedactsRedisPassword(t *testing.T) {
	for _, raw := range []string{
		"redis://:hunter2@redis.example.com:6379/0",
		"rediss://roxd:hunter2@redis.example.com:6380/1",
		"redis-sentinel://:hunter2@10.0.0.1:26379,10.0.0.2:26379/mymaster/0?sentinel_password=sentinel3",
	} {
		var out strings.Builder
		printBanner(&out, DevInfo{RedisURL: raw, Token: "tok", Curl: "curl"}, config.Config{RedisURL: raw})
		for _, secret := range []string{"hunter2", "sentinel3"} {
			if strings.Contains(out.String(), secret) {
				t.Errorf("banner for %s shows %q:\n%s", raw, secret, out.String())
			}
		}
		if n := strings.Count(out.String(), "REDACTED"); n < 2 {
			t.Errorf("banner for %s: %d REDACTED, want the redis line and the tail hint redacted:\n%s", raw, n, out.String())
		}
	}
	// Without a password the tail hint is the URL to copy, as it was.
	var out strings.Builder
	const plain = "redis://127.0.0.1:39677/0"
	printBanner(&out, DevInfo{RedisURL: plain, EmbeddedRedis: true}, config.Config{RedisURL: plain})
	if !strings.Contains(out.String(), "REDIS_URL="+plain+" go run ./cmd/roxd tail") || strings.Contains(out.String(), "REDACTED") {
		t.Errorf("banner without a password:\n%s", out.String())
	}
}
