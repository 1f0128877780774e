package httpapi

import (
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		h, tok string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER AbC", "AbC", true}, // the token keeps its case
		{"bEaReR   abc  ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", true}, // an empty token: never equal to a configured one (>= 16 characters)
		{"Bearerabc", "", false},
		{"Bearer\tabc", "", false}, // RFC 9110: 1*SP after the scheme
		{"Basic abc", "", false},
		{" Bearer abc", "", false},
		{"", "", false},
	} {
		tok, ok := bearerToken(tc.h)
		if tok != tc.tok || ok != tc.ok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tc.h, tok, ok, tc.tok, tc.ok)
		}
	}
}

// FuzzBearerToken: a header is Bearer exactly when it starts with the
// scheme in any case and a space, and the token is the rest as given.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer abc", "BEARER  x ", "Basic abc", "Bearer", "bearer\tx", "Bearerx", "BeArer "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := bearerToken(h)
		want := len(h) >= 7 && strings.EqualFold(h[:7], "bearer ")
		if ok != want {
			t.Fatalf("bearerToken(%q) ok = %v, want %v", h, ok, want)
		}
		if ok && tok != strings.TrimSpace(h[7:]) {
			t.Fatalf("bearerToken(%q) = %q", h, tok)
		}
	})
}
