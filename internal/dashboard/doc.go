// Package dashboard serves the asynq dashboard (github.com/hibiken/asynqmon)
// behind HTTP Basic authentication, for the internal listener: any user
// name, the API token as the password. Batches of roxd are asynq tasks, so
// operators inspect, retry and archive them there; a read-only switch turns
// every mutating call away.
package dashboard
