package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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
	c, err := client()
	if err != nil {
		return err
	}
	raw, err := c.call(ctx, method, "/v1/messages/"+url.PathEscape(pos[0]), nil)
	if err != nil {
		return err
	}
	return apiPrintJSON(stdout, raw)
}
