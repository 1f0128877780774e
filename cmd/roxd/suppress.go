package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/redoxygen/roxd/producer/httpapi"
)

func init() {
	register("suppress", "read or change the opt-out list: list|add|remove|check", func(ctx context.Context, args []string) error {
		return runSuppress(ctx, args, os.Stdout, os.Stderr)
	})
}

// suppressMaxPages bounds `suppress list` so a misbehaving server cannot keep it
// looping.
const suppressMaxPages = 100_000

func runSuppress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := apiFlagSet("suppress", "suppress list [--cursor N --count N] | add NUMBER | remove NUMBER | check NUMBER", stderr)
	client := apiFlags(fs)
	cursor := fs.String("cursor", "", "list only: print only the page at this cursor (0 is the first)")
	count := fs.Int("count", 500, fmt.Sprintf("list only: page size, 1..%d", httpapi.MaxListCount))
	pos, err := apiParseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: want list, add, remove or check", errUsage)
	}
	verb := pos[0]
	method := map[string]string{"add": "PUT", "remove": "DELETE", "check": "GET"}[verb]
	switch {
	case verb == "list" && len(pos) == 1:
	case method != "" && len(pos) == 2:
	default:
		fs.Usage()
		return fmt.Errorf("%w: want list, or add|remove|check NUMBER", errUsage)
	}
	// --cursor and --count shape the list's pages: add, remove and check
	// act on one number and have nothing they could do.
	var listOnly []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "cursor" || f.Name == "count" {
			listOnly = append(listOnly, "--"+f.Name)
		}
	})
	if verb != "list" && len(listOnly) > 0 {
		fs.Usage()
		return fmt.Errorf("%w: %s: only for suppress list, not %s", errUsage, strings.Join(listOnly, ", "), verb)
	}
	if *count < 1 || *count > httpapi.MaxListCount {
		fs.Usage()
		return fmt.Errorf("%w: --count %d: want 1..%d", errUsage, *count, httpapi.MaxListCount)
	}
	c, err := client()
	if err != nil {
		return err
	}
	if method != "" {
		if err := pathArg("number", pos[1]); err != nil {
			return err
		}
		raw, err := c.call(ctx, method, "/v1/suppressions/"+url.PathEscape(pos[1]), nil)
		if err != nil {
			return err
		}
		return apiPrintJSON(stdout, raw)
	}
	page := func(cur string) ([]byte, error) {
		return c.call(ctx, "GET", "/v1/suppressions?count="+strconv.Itoa(*count)+"&cursor="+url.QueryEscape(cur), nil)
	}
	if *cursor != "" {
		raw, err := page(*cursor)
		if err != nil {
			return err
		}
		return apiPrintJSON(stdout, raw)
	}
	// Every page, merged: SSCAN may repeat a number, so dedupe.
	seen := map[string]bool{}
	cur := "0"
	for i := 0; ; i++ {
		if i == suppressMaxPages {
			return fmt.Errorf("suppression list did not end after %d pages", suppressMaxPages)
		}
		raw, err := page(cur)
		if err != nil {
			return err
		}
		var p struct {
			Numbers    []string `json:"numbers"`
			NextCursor uint64   `json:"next_cursor"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("suppression list page: %w", err)
		}
		for _, n := range p.Numbers {
			seen[n] = true
		}
		if p.NextCursor == 0 {
			break
		}
		cur = strconv.FormatUint(p.NextCursor, 10)
	}
	nums := make([]string, 0, len(seen))
	for n := range seen {
		nums = append(nums, n)
	}
	sort.Strings(nums)
	raw, err := json.Marshal(struct {
		Numbers []string `json:"numbers"`
		Count   int      `json:"count"`
	}{nums, len(nums)})
	if err != nil {
		return err
	}
	return apiPrintJSON(stdout, raw)
}
