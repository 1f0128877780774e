// Package redisconn turns REDIS_URL into a go-redis client factory and the
// matching asynq connection option, so that roxd's own keys and asynq's
// queues always live on the same Redis.
//
// Accepted forms (the password is percent-encoded; String redacts it):
//
//	redis://[user:pass@]host[:6379][/db]                  one server
//	rediss://[user:pass@]host[:6379][/db]                 one server over TLS
//	redis-sentinel://[user:pass@]h1[:26379],h2/master[/db] Sentinel
//	redis-sentinel://[user:pass@]h1,h2?master=name[&db=N]  Sentinel, asynq's form
//	redis-cluster://[user:pass@]h1[:6379],h2               Redis Cluster
//
// rediss-sentinel:// and rediss-cluster:// are the TLS variants. TLS uses the
// system roots; the server name is the host name of the address dialled. For
// Sentinel, user and password are the master's; a password for the sentinels
// themselves goes in the query parameter sentinel_password.
package redisconn
