package rox

import "strconv"

// Decoding of the send request and response, in one validating pass over
// the body with jscan (jsontext, see jsonscan.go).

// DecodeSendRequest reads a ROX_API_Request. Trailing commas before } or ]
// are accepted (the document's examples carry them). The numbered
// recipients must run "1".."Count" with Count present and at most
// MaxRecipients; the contents are not validated (call Validate). Errors are
// *FieldError.
func DecodeSendRequest(body []byte) (*SendRequest, error) {
	var r SendRequest
	err := scanTolerant(body, func(s *jscan) error {
		r = SendRequest{}
		return s.body(func(key []byte) error {
			switch {
			case match(key, "Name"):
				return at(s.strInto(&r.Name, ""), "Name")
			case match(key, "Version"):
				return at(s.floatInto(&r.Version, ""), "Version")
			case match(key, "Product"):
				return at(s.strInto(&r.Product, ""), "Product")
			case match(key, "Sender"):
				return decodeSender(s, &r.Sender)
			case match(key, "Messages"):
				m, isObj, err := decodeMessages(s)
				if err == nil && !isObj {
					err = fieldErr("Messages", "not a JSON object")
				}
				r.Messages = m
				return err
			default:
				return s.skipOrErr("body")
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeSendResponse reads a ROX_API_Response (trailing commas accepted).
// Results[i] is the entry under key i+1; a missing or null Messages decodes
// as empty (a failed request may carry none). Errors are *FieldError.
func DecodeSendResponse(body []byte) (*SendResponse, error) {
	var r SendResponse
	err := scanTolerant(body, func(s *jscan) error {
		r = SendResponse{}
		return s.body(func(key []byte) error {
			switch {
			case match(key, "Name"):
				return at(s.strInto(&r.Name, ""), "Name")
			case match(key, "Version"):
				return at(s.floatInto(&r.Version, ""), "Version")
			case match(key, "Result"):
				v := string(r.Result)
				err := s.strInto(&v, "")
				r.Result = Code(v)
				return at(err, "Result")
			case match(key, "ResultText"):
				return at(s.strInto(&r.ResultText, ""), "ResultText")
			case match(key, "Messages"):
				m, err := decodeResponseMessages(s)
				r.Messages = m
				return err
			default:
				return s.skipOrErr("body")
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// at names field in a *FieldError that has none yet; other errors pass.
func at(err error, field string) error {
	if fe, ok := err.(*FieldError); ok && fe.Field == "" {
		fe.Field = field
	}
	return err
}

func decodeSender(s *jscan, out *Sender) error {
	_, err := s.object("Sender", func(key []byte) error {
		switch {
		case match(key, "AccountId"):
			return at(s.strInto(&out.AccountID, ""), "Sender.AccountId")
		case match(key, "Username"):
			return at(s.strInto(&out.Username, ""), "Sender.Username")
		case match(key, "Password"):
			return at(s.strInto(&out.Password, ""), "Sender.Password")
		default:
			return s.skipOrErr("Sender")
		}
	})
	return err
}

// UnmarshalJSON reads control fields and numbered recipients. The keys must
// run "1".."Count" without gaps, Count must be present and equal their
// number, and there are at most MaxRecipients; errors are *FieldError naming
// the field. It does not validate contents (see Validate).
func (m *Messages) UnmarshalJSON(data []byte) error {
	var out Messages
	err := scanTolerant(data, func(s *jscan) error {
		var isObj bool
		var err error
		out, isObj, err = decodeMessages(s)
		if err == nil && !isObj {
			err = fieldErr("Messages", "not a JSON object")
		}
		if err == nil {
			err = s.end("Messages")
		}
		return err
	})
	if err != nil {
		return err
	}
	*m = out
	return nil
}

// UnmarshalJSON reads a response's Messages. Results[i] holds key i+1.
// null decodes as empty. Count, when present, must equal the number of
// results.
func (r *ResponseMessages) UnmarshalJSON(data []byte) error {
	var out ResponseMessages
	err := scanTolerant(data, func(s *jscan) error {
		var err error
		out, err = decodeResponseMessages(s)
		if err == nil {
			err = s.end("Messages")
		}
		return err
	})
	if err != nil {
		return err
	}
	*r = out
	return nil
}

func recField(i int, name string) string { return "Messages." + strconv.Itoa(i) + "." + name }

func decodeMessages(s *jscan) (Messages, bool, error) {
	const path = "Messages"
	var (
		out      Messages
		seen     numbered
		count    int
		hasCount bool
		later    string
	)
	isObj, err := s.object(path, func(key []byte) error {
		i, numeric, err := recipientKey(key, path)
		if err != nil {
			return err
		}
		if numeric {
			out.Recipients = grow(out.Recipients, i)
			seen.add(i)
			return readRecipient(s, &out.Recipients[i-1], i)
		}
		switch {
		case match(key, "ReceiptFlag"):
			flag := int(out.ReceiptFlag)
			_, err = s.intInto(&flag, "")
			out.ReceiptFlag = ReceiptFlag(flag)
			return at(err, path+".ReceiptFlag")
		case match(key, "ReceiptCallbackURL"):
			return at(s.strInto(&out.ReceiptCallbackURL, ""), path+".ReceiptCallbackURL")
		case match(key, "ReplyType"):
			v := string(out.ReplyType)
			err = s.strInto(&v, "")
			out.ReplyType = ReplyType(v)
			return at(err, path+".ReplyType")
		case match(key, "ReplyCallbackURL"):
			return at(s.strInto(&out.ReplyCallbackURL, ""), path+".ReplyCallbackURL")
		case match(key, "TimeZoneOffset"):
			_, err = s.intInto(&out.TimeZoneOffset, "")
			return at(err, path+".TimeZoneOffset")
		case match(key, "SendLater"):
			return at(s.strInto(&later, ""), path+".SendLater")
		case match(key, "Count"):
			var ok bool
			ok, err = s.intInto(&count, "")
			hasCount = hasCount || ok
			return at(err, path+".Count")
		case match(key, "GlobalText"):
			return at(s.strInto(&out.GlobalText, ""), path+".GlobalText")
		default:
			return s.skipOrErr(path)
		}
	})
	if err != nil || !isObj {
		return Messages{}, isObj, err
	}
	if later != "" {
		t, err := ParseSendLater(later, out.TimeZoneOffset)
		if err != nil {
			return Messages{}, true, fieldErr(path+".SendLater", "%s is not dd-Mon-yyyy HH:MM:SS", quoteShort(later))
		}
		out.SendLater = t
	}
	n, err := seen.check(path)
	if err != nil {
		return Messages{}, true, err
	}
	if !hasCount {
		return Messages{}, true, fieldErr(path+".Count", "missing")
	}
	if count != n {
		return Messages{}, true, fieldErr(path+".Count", "is %d but %d recipients follow", count, n)
	}
	out.Count = count
	out.Recipients = out.Recipients[:n:n]
	return out, true, nil
}

func readRecipient(s *jscan, r *Recipient, i int) error {
	*r = Recipient{} // the last duplicate key wins, whole
	_, err := s.object("", func(key []byte) error {
		var err error
		name := ""
		switch {
		case match(key, "DestTn"):
			name, err = "DestTn", s.strInto(&r.DestTn, "")
		case match(key, "DestName"):
			name, err = "DestName", s.strInto(&r.DestName, "")
		case match(key, "DestEmail"):
			name, err = "DestEmail", s.strInto(&r.DestEmail, "")
		case match(key, "SMSText"):
			name, err = "SMSText", s.strInto(&r.SMSText, "")
		default:
			err = s.skipOrErr("")
		}
		if err != nil && name != "" {
			return at(err, recField(i, name))
		}
		return err
	})
	return at(err, "Messages."+strconv.Itoa(i))
}

func decodeResponseMessages(s *jscan) (ResponseMessages, error) {
	const path = "Messages"
	var (
		out      ResponseMessages
		seen     numbered
		count    int
		hasCount bool
	)
	isObj, err := s.object(path, func(key []byte) error {
		i, numeric, err := recipientKey(key, path)
		if err != nil {
			return err
		}
		if numeric {
			out.Results = grow(out.Results, i)
			seen.add(i)
			return readResult(s, &out.Results[i-1], i)
		}
		switch {
		case match(key, "Count"):
			var ok bool
			ok, err = s.intInto(&count, "")
			hasCount = hasCount || ok
			return at(err, path+".Count")
		case match(key, "RequestId"):
			return at(s.strInto(&out.RequestID, ""), path+".RequestId")
		default:
			return s.skipOrErr(path)
		}
	})
	if err != nil || !isObj { // null: empty
		return ResponseMessages{}, err
	}
	n, err := seen.check(path)
	if err != nil {
		return ResponseMessages{}, err
	}
	if hasCount && count != n {
		return ResponseMessages{}, fieldErr(path+".Count", "is %d but %d results follow", count, n)
	}
	out.Count = n
	out.Results = out.Results[:n:n]
	return out, nil
}

func readResult(s *jscan, r *RecipientResult, i int) error {
	*r = RecipientResult{}
	_, err := s.object("", func(key []byte) error {
		var err error
		name := ""
		switch {
		case match(key, "SMSId"):
			name, err = "SMSId", s.strInto(&r.SMSID, "")
		case match(key, "DestTn"):
			name, err = "DestTn", s.strInto(&r.DestTn, "")
		case match(key, "Result"):
			v := string(r.Result)
			name, err = "Result", s.strInto(&v, "")
			r.Result = Code(v)
		case match(key, "ResultText"):
			name, err = "ResultText", s.strInto(&r.ResultText, "")
		case match(key, "Timestamp"):
			name, err = "Timestamp", s.strInto(&r.Timestamp, "")
		default:
			err = s.skipOrErr("")
		}
		if err != nil && name != "" {
			return at(err, recField(i, name))
		}
		return err
	})
	return at(err, "Messages."+strconv.Itoa(i))
}
