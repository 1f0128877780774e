package config

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFlags(t *testing.T) {
	m := complete()
	m["ROXD_MAX_ATTEMPTS"] = "7"
	m["ROXD_QUEUE"] = "from-env"
	c, err := Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("roxd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	for _, secret := range []string{"rox-password", "api-token", "callback-token"} {
		if fs.Lookup(secret) != nil {
			t.Fatalf("secret flag -%s registered", secret)
		}
	}
	if f := fs.Lookup("max-attempts"); f == nil || f.DefValue != "7" {
		t.Fatalf("-max-attempts default should be the env value: %+v", f)
	}
	err = fs.Parse([]string{"-http-addr", "127.0.0.1:9090", "-roles=worker", "-dashboard-readonly",
		"-rox-timeout", "5s", "-default-region", "gb", "-permanent-codes", "2015, 2016"})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:9090" || !reflect.DeepEqual(c.Roles, []string{"worker"}) || !c.DashboardReadOnly ||
		c.ROXTimeout != 5*time.Second || c.DefaultRegion != "GB" || len(c.PermanentCodes) != 2 ||
		c.MaxAttempts != 7 || c.Queue != "from-env" {
		t.Fatalf("after flags: %v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	fs2 := flag.NewFlagSet("roxd", flag.ContinueOnError)
	fs2.SetOutput(io.Discard)
	c.RegisterFlags(fs2)
	err = fs2.Parse([]string{"-max-attempts", "many"})
	if err == nil || !strings.Contains(err.Error(), "ROXD_MAX_ATTEMPTS") {
		t.Fatalf("bad flag error %v should name the variable", err)
	}
	if FlagName("ROX_API_URL") != "rox-api-url" || FlagName("LOG_LEVEL") != "log-level" {
		t.Fatal("FlagName")
	}
}
