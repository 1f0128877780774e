// Package store is roxd's own Redis keyspace: message records and their
// forward-only status, ready lists per coalescing group, batches, the
// SMSId → message map, the suppression list. See docs/ARCHITECTURE.md.
package store
