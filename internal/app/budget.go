package app

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// BatchBudgetFactor is how many ROXD_API_TIMEOUTs POST /v1/messages/batch
// (up to 10,000 messages) gets.
const BatchBudgetFactor = 4

// ReadyzBudget is the time /readyz gives Redis to answer.
const ReadyzBudget = time.Second

// withBudget gives every API request a context deadline of budget (batch
// intake BatchBudgetFactor times it). The Redis client honours context
// deadlines (redisconn sets ContextTimeoutEnabled), so a hung or unreachable
// Redis makes the call fail within its budget and the API answers 503.
func withBudget(budget time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := budget
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/batch") {
			d *= BatchBudgetFactor
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
