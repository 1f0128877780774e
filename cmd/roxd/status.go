package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// `roxd status ID` and `roxd cancel ID`: one message, GET or DELETE.
func init() {
	register("status", "show a message's status and history", func(ctx context.Context, args []string) error {
		return runStatus(ctx, args, os.Stdout, os.Stderr)
	})
	register("cancel", "cancel a message not yet handed to ROX", func(ctx context.Context, args []string) error {
		return runCancel(ctx, args, os.Stdout, os.Stderr)
	})
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runMessageCall(ctx, "status", http.MethodGet, args, stdout, stderr)
}

// dashboardLink is the asynq dashboard page of the task named in a
// message's status answer, or "" when it names none.
func dashboardLink(base string, raw []byte) string {
	var m struct {
		Task *struct {
			ID    string `json:"id"`
			Queue string `json:"queue"`
		} `json:"task"`
	}
	if json.Unmarshal(raw, &m) != nil || m.Task == nil || m.Task.ID == "" {
		return ""
	}
	return base + dashboardPath + "/queues/" + url.PathEscape(m.Task.Queue) + "/tasks/" + url.PathEscape(m.Task.ID)
}

// dashboardPath is where roxd serves the asynq dashboard (app.DashboardPath).
const dashboardPath = "/monitor"

func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runMessageCall(ctx, "cancel", http.MethodDelete, args, stdout, stderr)
}

func runMessageCall(ctx context.Context, name, method string, args []string, stdout, stderr io.Writer) error {
	fs := apiFlagSet(name, name+" ID", stderr)
	client := apiFlags(fs)
	pos, err := apiParseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want exactly one message id", errUsage)
	}
	if err := pathArg("message id", pos[0]); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	raw, err := c.call(ctx, method, "/v1/messages/"+url.PathEscape(pos[0]), nil)
	if err != nil {
		return err
	}
	if err := apiPrintJSON(stdout, raw); err != nil {
		return err
	}
	if method == http.MethodGet {
		// On stderr, so that stdout stays one JSON document for scripts.
		if link := dashboardLink(c.public, raw); link != "" {
			fmt.Fprintf(stderr, "dashboard: %s\n", link)
		}
	}
	return nil
}

// pathArg refuses an argument that cannot name anything as one segment of
// an API path: empty or blank (the path would end in "/": "no such
// endpoint"), "." or ".." (HTTP removes them from the path, so the request
// would reach another endpoint). what is "message id" or "number".
func pathArg(what, arg string) error {
	switch {
	case strings.TrimSpace(arg) == "":
		return fmt.Errorf("%w: the %s is empty", errUsage, what)
	case arg == "." || arg == "..":
		return fmt.Errorf("%w: %q is not a %s", errUsage, arg, what)
	}
	return nil
}
