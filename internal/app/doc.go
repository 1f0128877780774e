// Package app wires roxd's parts into one process: `roxd serve` (Run) with
// the roles the configuration asks for, and `roxd dev` (Dev), which adds an
// embedded Redis and the ROX simulator so the product runs with nothing but
// Go installed.
//
// Shutdown order: the listeners stop taking requests first (the API, then the
// callback receiver, whose in-flight callbacks finish storing or spooling),
// the worker stops forming batches and lets asynq return or finish in-flight
// tasks, the spool replayer stops, and Redis is closed last.
package app
