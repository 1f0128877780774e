package producer

import "github.com/redoxygen/roxd/internal/store"

// AmbiguousMode says what happens to a message if ROX's outcome for it is
// unknown: the worker crashed, or ROX timed out, while its request was in
// flight (docs/ARCHITECTURE.md, "Duplicate guard").
type AmbiguousMode string

// Ambiguous modes; empty means the deployment's ROXD_AMBIGUOUS.
const (
	// AmbiguousReconcile waits ROXD_RECONCILE_WINDOW for the message's
	// receipt or reply and sends it again only without one.
	AmbiguousReconcile AmbiguousMode = store.AmbiguousReconcile
	// AmbiguousResend sends it again at once (a second SMS when ROX had
	// accepted the first).
	AmbiguousResend AmbiguousMode = store.AmbiguousResend
	// AmbiguousFail marks it failed with reason outcome_unknown and never
	// sends it again (e.g. one-time codes, where a late or second copy is
	// worse than none).
	AmbiguousFail AmbiguousMode = store.AmbiguousFail
)

// Valid reports whether m names a mode ("" is valid: the default).
func (m AmbiguousMode) Valid() bool { return store.ValidAmbiguous(string(m)) }

// Priority orders messages for the worker: batches never mix priorities,
// and the worker serves high before normal before bulk (README,
// "Priority").
type Priority string

// Priorities; empty means PriorityNormal.
const (
	// PriorityHigh: one-time codes and alerts, sent ahead of any backlog.
	PriorityHigh Priority = store.PriorityHigh
	// PriorityNormal is the default.
	PriorityNormal Priority = store.PriorityNormal
	// PriorityBulk: campaigns; served after high and normal, with a floor
	// so that it is never starved.
	PriorityBulk Priority = store.PriorityBulk
)

// Valid reports whether p names a priority ("" is valid: normal).
func (p Priority) Valid() bool { return p == "" || store.ValidPriority(string(p)) }
