package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
)

func init() {
	register("status", "show a message's status and history", func(ctx context.Context, args []string) error {
		return runStatus(ctx, args, os.Stdout, os.Stderr)
	})
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := apiFlagSet("status", "status ID", stderr)
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
	raw, err := c.call(ctx, "GET", "/v1/messages/"+url.PathEscape(pos[0]), nil)
	if err != nil {
		return err
	}
	return apiPrintJSON(stdout, raw)
}
