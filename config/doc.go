// Package config is roxd's configuration: one Config read from environment
// variables (Load), checked for the roles a process runs (Validate), with
// every variable listed by Table (and in docs/CONFIG.md).
//
// Secrets (ROX_PASSWORD, ROXD_API_TOKEN, ROXD_CALLBACK_TOKEN and the
// password of REDIS_URL) never appear in String or in an error.
package config
