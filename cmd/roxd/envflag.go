package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/redoxygen/roxd/config"
)

// envString registers the string flag name backed by the environment
// variable env: the one rule of every subcommand (config.Flags for the
// server's settings) is that a flag given wins over the variable, which
// wins over def. The returned function gives the value once fs is parsed.
// A value set but empty (flag or variable) is an error naming it when def
// is not empty: an empty REDIS_URL is a mistake, not a wish for the
// default. secret values are never shown in -h, and a URL's password
// (a variable named *_URL) is shown redacted (config.RedactURL).
func envString(fs *flag.FlagSet, name, env, def, usage string, secret bool) func() (string, error) {
	shown := def
	if !secret {
		if v, ok := environ(env); ok && strings.TrimSpace(v) != "" {
			shown = strings.TrimSpace(v)
		}
	} else {
		shown = ""
	}
	help := usage + " (env " + env
	if def != "" {
		help += ", default " + def
	}
	help += ")"
	if shown != "" && shown != def {
		if strings.HasSuffix(env, "_URL") {
			shown = config.RedactURL(shown) // a password in REDIS_URL, ROXD_API_URL
		}
		help += " (now " + shown + ")"
	}
	p := fs.String(name, "", help)
	return func() (string, error) {
		given := false
		fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
		if given {
			v := strings.TrimSpace(*p)
			if v == "" && def != "" {
				return "", fmt.Errorf("%w: --%s is empty: leave it out for %s (or the default %s)", errUsage, name, env, def)
			}
			return v, nil
		}
		if v, ok := environ(env); ok {
			v = strings.TrimSpace(v)
			if v == "" && def != "" {
				return "", fmt.Errorf("%s: set but empty: unset it for the default %s, or give a value", env, def)
			}
			if v != "" {
				return v, nil
			}
		}
		return def, nil
	}
}
