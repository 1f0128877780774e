package store

import (
	"fmt"
	"testing"
)

func TestSuppression(t *testing.T) {
	b := setupMsg(t)
	if ok, err := b.s.IsSuppressed(b.ctx, "+61400000001"); err != nil || ok {
		t.Fatalf("fresh number suppressed: %v %v", ok, err)
	}
	for i := 0; i < 250; i++ {
		if err := b.s.Suppress(b.ctx, fmt.Sprintf("+614%08d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.s.Suppress(b.ctx, "+61400000001"); err != nil { // twice is fine
		t.Fatal(err)
	}
	if ok, err := b.s.IsSuppressed(b.ctx, "+61400000001"); err != nil || !ok {
		t.Fatalf("suppressed number: %v %v", ok, err)
	}
	if err := b.s.Unsuppress(b.ctx, "+61400000001"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.s.IsSuppressed(b.ctx, "+61400000001"); ok {
		t.Fatal("still suppressed after Unsuppress")
	}
	seen := map[string]bool{}
	var cursor uint64
	pages := 0
	for {
		nums, next, err := b.s.ListSuppressed(b.ctx, cursor, 50)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, n := range nums {
			seen[n] = true
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if len(seen) != 249 || seen["+61400000001"] || !seen["+61400000249"] {
		t.Errorf("listed %d numbers (%d pages), want 249 without +61400000001", len(seen), pages)
	}
	if pages < 2 {
		t.Errorf("250 numbers in %d page(s) of 50", pages)
	}
}
