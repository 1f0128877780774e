// Command roxd delivers SMS through Red Oxygen's CompleteSMS JSON API.
//
// Usage: roxd <command> [flags]. `roxd help` lists the commands. Each
// command lives in its own file of this package and registers itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand: run gets a context cancelled on SIGINT/SIGTERM
// and the arguments after the command name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

// environ is the environment the commands read (tests replace it).
var environ = os.LookupEnv

func register(name, summary string, run func(ctx context.Context, args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

// errUsage marks a usage error: exit status 2. Wrapped with a reason
// (fmt.Errorf("...: %w", errUsage)) the reason is printed; bare, the command
// printed its usage itself.
var errUsage = errors.New("usage")

// errFlagsPrinted marks a flag error the flag package printed already.
var errFlagsPrinted = errors.New("printed by the flag package")

// usageReason is what a usage error says beyond "usage" ("" when nothing).
func usageReason(err error) string {
	if err == errUsage || errors.Is(err, errFlagsPrinted) {
		return ""
	}
	msg := strings.TrimSuffix(err.Error(), ": "+errUsage.Error())
	return strings.TrimPrefix(msg, errUsage.Error()+": ")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "help" {
		// `roxd help <command>` is `roxd <command> -h`.
		if _, ok := commands[args[1]]; !ok {
			fmt.Fprintf(stderr, "roxd: unknown command %q\n\n", args[1])
			usage(stderr)
			return 2
		}
		args = []string{args[1], "-h"}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "roxd: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // help asked for and printed: not an error
		}
		if errors.Is(err, errUsage) {
			if reason := usageReason(err); reason != "" {
				fmt.Fprintf(stderr, "roxd %s: %s\n", args[0], reason)
			}
			return 2
		}
		fmt.Fprintf(stderr, "roxd %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// parseFlags parses args with fs. -h, -help and --help give flag.ErrHelp
// (exit status 0: the usage was asked for and printed); any other flag error
// is an errUsage (exit status 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w: %v", errUsage, errFlagsPrinted, err)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: roxd <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\n`roxd <command> -h` shows a command's flags.")
}
