package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
)

func init() {
	register("cancel", "cancel a message not yet handed to ROX", func(ctx context.Context, args []string) error {
		return runCancel(ctx, args, os.Stdout, os.Stderr)
	})
}

func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := apiFlagSet("cancel", "cancel ID", stderr)
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
	raw, err := c.call(ctx, "DELETE", "/v1/messages/"+url.PathEscape(pos[0]), nil)
	if err != nil {
		return err
	}
	return apiPrintJSON(stdout, raw)
}
