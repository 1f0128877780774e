// Package consumer reads the callback streams that roxd's receiver writes
// (rox:receipts and rox:replies by default) for downstream services.
//
// A Consumer reads one stream through a Redis consumer group (XREADGROUP):
// several processes sharing a group split the entries between them. Each
// entry is parsed into an Event holding a typed Receipt or Reply and handed
// to the handler; a nil error acknowledges it (XACK). An entry whose handler
// failed, or whose consumer died before acknowledging it, stays pending and
// is claimed again (XAUTOCLAIM) once it has been idle for Config.MinIdle, by
// whichever consumer of the group looks first. Delivery is therefore at
// least once: make handlers idempotent, e.g. on Receipt.EventID.
//
// On start, Run creates the group when missing (MKSTREAM; "BUSYGROUP" is
// fine) and first re-reads the entries this consumer name had been handed
// but not acknowledged.
package consumer
