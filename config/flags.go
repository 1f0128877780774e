package config

import (
	"context"
	"flag"
	"fmt"
	"reflect"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// FlagName is the command-line flag of variable name: without the ROXD_
// prefix, lower case, dashes for underscores (ROXD_HTTP_ADDR is -http-addr,
// LOG_LEVEL is -log-level).
func FlagName(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "ROXD_")), "_", "-")
}

// RegisterFlags adds a flag for every variable except the secrets (a
// password or token on a command line is visible to every user of the
// machine). Each flag's default is c's current value, so the precedence is
// flag, then environment, then built-in default: Load first, then
// RegisterFlags, parse, and Validate.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("secret") == "true" {
			continue
		}
		name := envName(f)
		fs.Var(&fieldFlag{name: name, index: f.Index, field: v.Field(i)}, FlagName(name), f.Tag.Get("desc")+" (env "+name+")")
	}
}

// fieldFlag is a flag.Value over one Config field, parsed like the
// environment variable.
type fieldFlag struct {
	name  string
	index []int
	field reflect.Value
}

func (f *fieldFlag) String() string {
	if f == nil || !f.field.IsValid() {
		return ""
	}
	if f.field.Kind() == reflect.Slice {
		parts := make([]string, f.field.Len())
		for i := range parts {
			parts[i] = f.field.Index(i).String()
		}
		return strings.Join(parts, ",")
	}
	if f.name == "REDIS_URL" {
		return redactURL(f.field.String())
	}
	return fmt.Sprint(f.field.Interface())
}

// Set parses s with the same library and rules as Load.
func (f *fieldFlag) Set(s string) error {
	env := map[string]string{f.name: strings.TrimSpace(s)}
	if env[f.name] == "" {
		for _, v := range Table() {
			if v.Name == f.name {
				if err := v.checkBlank(); err != nil {
					return err
				}
			}
		}
		delete(env, f.name) // empty means unset: the default
	}
	var tmp Config
	err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &tmp,
		Lookuper: envconfig.MapLookuper(env)})
	if err != nil {
		return loadError(err)
	}
	f.field.Set(reflect.ValueOf(tmp).FieldByIndex(f.index))
	if f.name == "ROXD_DEFAULT_REGION" {
		f.field.SetString(strings.ToUpper(f.field.String()))
	}
	return nil
}

// IsBoolFlag lets boolean variables be given as a bare -flag.
func (f *fieldFlag) IsBoolFlag() bool { return f.field.Kind() == reflect.Bool }
