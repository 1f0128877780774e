package redisconn_test

import (
	"fmt"

	"github.com/redoxygen/roxd/internal/redisconn"
)

func ExampleParse() {
	for _, u := range []string{
		"redis://:secret@localhost:6379/0",
		"rediss://app:secret@redis.example.com:6380/1",
		"redis-sentinel://:secret@s1:26379,s2:26379,s3:26379/mymaster/0",
		"redis-cluster://:secret@n1:7000,n2:7001,n3:7002",
	} {
		c, err := redisconn.Parse(u)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-8s %T %s\n", c.Kind(), c.Asynq(), c)
	}
	_, err := redisconn.Parse("redis-sentinel://:secret@s1,s2")
	fmt.Println(err)
	// Output:
	// single   asynq.RedisClientOpt redis://:REDACTED@localhost:6379/0
	// single   asynq.RedisClientOpt rediss://app:REDACTED@redis.example.com:6380/1
	// sentinel asynq.RedisFailoverClientOpt redis-sentinel://:REDACTED@s1:26379,s2:26379,s3:26379/mymaster/0
	// cluster  asynq.RedisClusterClientOpt redis-cluster://:REDACTED@n1:7000,n2:7001,n3:7002
	// invalid REDIS_URL: no master name: want e.g. redis-sentinel://host:26379/mymaster
}
