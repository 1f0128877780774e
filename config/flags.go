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
// RegisterFlags, parse, and Validate. The subcommands use Flags, which has
// the same precedence and also tells which variables a flag set.
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
	if isURLVar(f.name) {
		return RedactURL(f.field.String())
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
	} else {
		n, err := numberText(f.name, env[f.name])
		if err != nil {
			return err
		}
		env[f.name] = n
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

// Flags registers on fs a flag for every variable except the secrets and
// returns the lookup to pass to Load once fs is parsed: a variable given as
// a flag takes the flag's value, any other the value env gives it. This is
// the one precedence rule of every roxd subcommand: flag, then environment,
// then default. `roxd dev` applies its development defaults only to
// variables that neither a flag nor the environment sets, so a flag wins
// there too. A flag's value is checked as it is parsed, like the variable's
// (an *Error naming the variable; an empty value follows the variable's
// Empty rule).
func Flags(fs *flag.FlagSet, env func(string) (string, bool)) func(string) (string, bool) {
	given := map[string]string{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("secret") == "true" {
			continue
		}
		v := Var{Name: envName(f), Default: envDefault(f), EmptyIsUnset: f.Tag.Get("empty") == "default"}
		shown := v.Default
		if s, ok := env(v.Name); ok && strings.TrimSpace(s) != "" {
			shown = strings.TrimSpace(s)
		}
		if isURLVar(v.Name) {
			shown = RedactURL(shown)
		}
		fs.Var(&lookupFlag{v: v, given: given, shown: shown, isBool: f.Type.Kind() == reflect.Bool},
			FlagName(v.Name), f.Tag.Get("desc")+" (env "+v.Name+")")
	}
	return func(name string) (string, bool) {
		if s, ok := given[name]; ok {
			return s, true
		}
		return env(name)
	}
}

// lookupFlag records a variable given on the command line.
type lookupFlag struct {
	v      Var
	given  map[string]string
	shown  string
	isBool bool
}

func (f *lookupFlag) String() string {
	if f == nil {
		return ""
	}
	return f.shown
}

func (f *lookupFlag) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		if err := f.v.checkBlank(); err != nil {
			return err
		}
	} else {
		n, err := numberText(f.v.Name, s)
		if err != nil {
			return err
		}
		var tmp Config
		err = envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &tmp,
			Lookuper: envconfig.MapLookuper(map[string]string{f.v.Name: n})})
		if err != nil {
			return loadError(err)
		}
	}
	f.given[f.v.Name] = s // Load reads it as the variable, through numberText
	return nil
}

func (f *lookupFlag) IsBoolFlag() bool { return f.isBool }
