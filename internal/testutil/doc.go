// Package testutil holds helpers shared by the project's tests: a real Redis
// per test (isolated by key prefix and queue name, or a private redis-server
// process for tests that stop and restart Redis), and a poll-with-deadline
// helper so that no test sleeps waiting for a condition.
package testutil
