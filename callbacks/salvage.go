package callbacks

import (
	"context"
	"fmt"

	"github.com/redoxygen/roxd/rox"
)

// salvageStop applies the opt-out of a callback the receiver refuses (not
// an authentic-looking ROX_API_Reply: wrong Name, a field missing or of
// another type, another account, a reply posted to the receipt URL): when
// the body still holds Messages.Reply with a stop keyword and a readable
// ReplyFrom, the number goes on the suppression list, because a STOP must
// opt the number out whatever else in the callback is odd, and not sending
// is the safe side of a doubt. Only STOP is salvaged: a refused START
// changes nothing. Callers have checked the token (an unauthenticated
// request never changes the list). It returns the number suppressed, or
// "" when there was nothing to salvage; the callback is still refused.
func (r *Receiver) salvageStop(ctx context.Context, body []byte) (string, error) {
	lr, ok := rox.DecodeReplyLoose(body)
	if !ok || r.kw.classify(lr.ReplyText) != KeywordStop {
		return "", nil
	}
	num := optOutNumber(lr.ReplyFrom, r.cfg.DefaultRegion)
	if num == "" {
		if lr.SMSID == "" {
			return "", nil
		}
		// The number the message was sent to, when the SMSId is known.
		e := &event{SMSID: lr.SMSID}
		if err := r.st.locate(ctx, []*event{e}); err != nil {
			return "", nil
		}
		k := r.st.shards[r.st.shardOf(e)].keys
		mid, err := r.st.rdb.Get(ctx, k.SMS(lr.SMSID)).Result()
		if err != nil {
			return "", nil
		}
		if num, err = r.st.rdb.HGet(ctx, k.Msg(mid), "to").Result(); err != nil || num == "" {
			return "", nil
		}
	}
	pipe := r.st.rdb.Pipeline()
	for _, sk := range r.st.shards {
		pipe.SAdd(ctx, sk.keys.Suppressed(), num)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("callbacks: suppress after a refused STOP: %w", err)
	}
	return num, nil
}
