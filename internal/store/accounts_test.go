package store

import (
	"testing"
	"time"
)

func TestGroupAccount(t *testing.T) {
	for _, tc := range []struct{ group, want string }{
		{"now|always|http", DefaultAccount},
		{WithAccount("now|always|http", ""), DefaultAccount},
		{WithAccount("now|always|http", DefaultAccount), DefaultAccount},
		{WithAccount("now|always|http", "mkt"), "mkt"},
		{"now|always|http|@mkt|p=high", "mkt"}, // other tagged parts beside it
	} {
		if got := GroupAccount(tc.group); got != tc.want {
			t.Errorf("GroupAccount(%q) = %q, want %q", tc.group, got, tc.want)
		}
		if _, r, p, err := ParseGroup(tc.group); err != nil || r != "always" || p != "http" {
			t.Errorf("ParseGroup(%q) = %q %q %v", tc.group, r, p, err)
		}
	}
	if WithAccount("now|always|http", DefaultAccount) != "now|always|http" {
		t.Fatal("the default account changes its groups")
	}
	for name, ok := range map[string]bool{"a": true, "mkt-2": true, "x_y": true, "": false, "-a": false, "A": false,
		"a|b": false, "a@b": false, "abcdefghijklmnopqrstuvwxyz0123456": false} {
		if ValidAccountName(name) != ok {
			t.Errorf("ValidAccountName(%q) = %v", name, !ok)
		}
	}
	a := Record{ID: "x", To: "+61400000000", Text: "t"}
	b := a
	b.Account = "mkt"
	c := a
	c.Account = DefaultAccount
	if a.ContentHash() == b.ContentHash() || a.ContentHash() != c.ContentHash() {
		t.Fatal("the account must change the content hash, the default account must not")
	}
}

// Form on one account takes only its groups, under its own auth pause.
func TestFormForAccount(t *testing.T) {
	bb := setupBatch(t)
	bb.add(t, 30, "d", nil)
	bb.add(t, 20, "m", func(i int, r *Record) { r.Account = "mkt" })
	p := FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 64, IDPrefix: "fa-"}
	if err := bb.b.ForAccount("mkt").PauseAuth(bb.ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.b.ForAccount("mkt").Form(bb.ctx, p, time.Now().Add(time.Second)); err != ErrAuthPaused {
		t.Fatalf("paused account: %v", err)
	}
	got, err := bb.b.ForAccount(DefaultAccount).Form(bb.ctx, p, time.Now().Add(time.Second))
	if err != nil || len(got) != 1 || got[0].Size != 30 || GroupAccount(got[0].Group) != DefaultAccount {
		t.Fatalf("default account formed %+v, %v", got, err)
	}
	bb.rdb.Del(bb.ctx, bb.s.Keys().AuthPauseOf("mkt"))
	p.IDPrefix = "fb-"
	got, err = bb.b.ForAccount("mkt").Form(bb.ctx, p, time.Now().Add(time.Second))
	if err != nil || len(got) != 1 || got[0].Size != 20 || GroupAccount(got[0].Group) != "mkt" {
		t.Fatalf("mkt formed %+v, %v", got, err)
	}
	if bb.s.Keys().AuthPauseOf(DefaultAccount) != bb.s.Keys().AuthPause() {
		t.Fatal("the default account's pause key changed name")
	}
}
