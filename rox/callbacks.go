package rox

import (
	"encoding/json"
	"errors"
)

// ReceiptResponse is our answer to a receipt: ROX_API_Receipt_Response,
// Result "0000".
func ReceiptResponse() CallbackResponse {
	return CallbackResponse{Name: NameReceiptResponse, Version: Version, Result: CodeOK, ResultText: "OK"}
}

// ReplyResponse is our answer to a reply: ROX_API_Reply_Response, Result
// "0000".
func ReplyResponse() CallbackResponse {
	return CallbackResponse{Name: NameReplyResponse, Version: Version, Result: CodeOK, ResultText: "OK"}
}

// DecodeReceipt reads the body ROX posts to ReceiptCallbackURL. It accepts
// trailing commas before } or ] (the document's own examples carry them),
// requires Name ROX_API_Receipt and a Messages.Receipt.SMSId, and returns
// problems as *FieldError.
func DecodeReceipt(body []byte) (*Receipt, error) {
	var r Receipt
	if err := scanCallback(body, func(s *jscan) error {
		r = Receipt{}
		return decodeTop(s, &r.Name, &r.Version, func(key []byte) (bool, error) {
			switch {
			case match(key, "Sender"):
				return true, decodeCallbackSender(s, &r.Sender)
			case match(key, "Messages"):
				_, err := s.object("Messages", func(key []byte) error {
					switch {
					case match(key, "RequestId"):
						return at(s.strInto(&r.Messages.RequestID, ""), "Messages.RequestId")
					case match(key, "Receipt"):
						return decodeReceiptDetail(s, &r.Messages.Receipt)
					default:
						return s.skipOrErr("Messages")
					}
				})
				return true, err
			}
			return false, nil
		})
	}); err != nil {
		return nil, err
	}
	if r.Name != NameReceipt {
		return nil, fieldErr("Name", "is %s, want %s", quoteShort(r.Name), NameReceipt)
	}
	if r.Messages.Receipt.SMSID == "" {
		return nil, fieldErr("Messages.Receipt.SMSId", "missing")
	}
	return &r, nil
}

// DecodeReply reads the body ROX posts to ReplyCallbackURL. It accepts
// trailing commas, requires Name ROX_API_Reply or ROX_API_Reply_Response
// (the document uses both) and a Messages.Reply.SMSId, and returns problems
// as *FieldError.
func DecodeReply(body []byte) (*Reply, error) {
	var r Reply
	if err := scanCallback(body, func(s *jscan) error {
		r = Reply{}
		return decodeTop(s, &r.Name, &r.Version, func(key []byte) (bool, error) {
			switch {
			case match(key, "Sender"):
				return true, decodeCallbackSender(s, &r.Sender)
			case match(key, "Messages"):
				_, err := s.object("Messages", func(key []byte) error {
					switch {
					case match(key, "RequestId"):
						return at(s.strInto(&r.Messages.RequestID, ""), "Messages.RequestId")
					case match(key, "Reply"):
						return decodeReplyDetail(s, &r.Messages.Reply)
					default:
						return s.skipOrErr("Messages")
					}
				})
				return true, err
			}
			return false, nil
		})
	}); err != nil {
		return nil, err
	}
	if r.Name != NameReply && r.Name != NameReplyResponse {
		return nil, fieldErr("Name", "is %s, want %s or %s", quoteShort(r.Name), NameReply, NameReplyResponse)
	}
	if r.Messages.Reply.SMSID == "" {
		return nil, fieldErr("Messages.Reply.SMSId", "missing")
	}
	return &r, nil
}

// DecodeCallbackResponse reads a ROX_API_Receipt_Response or
// ROX_API_Reply_Response (trailing commas accepted, as in the document).
func DecodeCallbackResponse(body []byte) (*CallbackResponse, error) {
	var r CallbackResponse
	if err := scanCallback(body, func(s *jscan) error {
		r = CallbackResponse{}
		return decodeTop(s, &r.Name, &r.Version, func(key []byte) (bool, error) {
			switch {
			case match(key, "Result"):
				return true, at(s.codeInto(&r.Result, ""), "Result")
			case match(key, "ResultText"):
				return true, at(s.strInto(&r.ResultText, ""), "ResultText")
			}
			return false, nil
		})
	}); err != nil {
		return nil, err
	}
	return &r, nil
}

// The callback bodies are read with jscan (jsonscan.go) to the rules
// encoding/json applies to the structs of types.go, errors included: the
// differential tests of callbacks_std_test.go hold them to
// unmarshalTolerant (encoding/json, the reader used before).

// scanCallback runs read over body as unmarshalTolerant would read it with
// encoding/json: a body that is not valid JSON is read again without its
// trailing commas, and when that fails too the error is the body's syntax
// error; a type error stands only in valid JSON (encoding/json checks the
// whole body's syntax before it reads any field). null reads as an empty
// object.
func scanCallback(body []byte, read func(s *jscan) error) error {
	p := getScan(body)
	err := read(&p.jscan)
	syntax := p.syntax
	putScan(p)
	if err == nil {
		return nil
	}
	if !syntax && json.Valid(body) {
		return err // a type or range error, as encoding/json reports it
	}
	if fixed, changed := stripTrailingCommas(body); changed {
		p := getScan(fixed)
		err2 := read(&p.jscan)
		putScan(p)
		if err2 == nil {
			return nil
		}
	}
	var v any
	if serr := json.Unmarshal(body, &v); serr != nil {
		return asFieldError(serr) // the body's syntax error
	}
	return err
}

// decodeTop reads the top-level object of a callback (null reads as
// empty): Name and Version here, other fields by more, which reports
// whether it read the value; unknown names are skipped.
func decodeTop(s *jscan, name *string, version *float64, more func(key []byte) (bool, error)) error {
	if s.dec.PeekKind() == 'n' {
		if _, err := s.dec.ReadToken(); err != nil {
			return s.synErr("body", err)
		}
		return s.end("body")
	}
	return s.body(func(key []byte) error {
		switch {
		case match(key, "Name"):
			return at(s.strInto(name, ""), "Name")
		case match(key, "Version"):
			return at(s.floatInto(version, ""), "Version")
		}
		done, err := more(key)
		if done || err != nil {
			return err
		}
		return s.skipOrErr("body")
	})
}

func decodeCallbackSender(s *jscan, out *CallbackSender) error {
	_, err := s.object("Sender", func(key []byte) error {
		switch {
		case match(key, "AccountId"):
			return at(s.strInto(&out.AccountID, ""), "Sender.AccountId")
		case match(key, "Username"):
			return at(s.strInto(&out.Username, ""), "Sender.Username")
		default:
			return s.skipOrErr("Sender")
		}
	})
	return err
}

func decodeReceiptDetail(s *jscan, out *ReceiptDetail) error {
	const p = "Messages.Receipt"
	_, err := s.object(p, func(key []byte) error {
		switch {
		case match(key, "SMSId"):
			return at(s.strInto(&out.SMSID, ""), p+".SMSId")
		case match(key, "DestTn"):
			return at(s.strInto(&out.DestTn, ""), p+".DestTn")
		case match(key, "Result"):
			return at(s.codeInto(&out.Result, ""), p+".Result")
		case match(key, "ResultText"):
			return at(s.strInto(&out.ResultText, ""), p+".ResultText")
		case match(key, "Timestamp"):
			return at(s.strInto(&out.Timestamp, ""), p+".Timestamp")
		default:
			return s.skipOrErr(p)
		}
	})
	return err
}

func decodeReplyDetail(s *jscan, out *ReplyDetail) error {
	const p = "Messages.Reply"
	_, err := s.object(p, func(key []byte) error {
		switch {
		case match(key, "SMSId"):
			return at(s.strInto(&out.SMSID, ""), p+".SMSId")
		case match(key, "ReplyFrom"):
			return at(s.strInto(&out.ReplyFrom, ""), p+".ReplyFrom")
		case match(key, "ReplyText"):
			return at(s.strInto(&out.ReplyText, ""), p+".ReplyText")
		case match(key, "SMSText"):
			return at(s.strInto(&out.SMSText, ""), p+".SMSText")
		case match(key, "Timestamp"):
			return at(s.strInto(&out.Timestamp, ""), p+".Timestamp")
		default:
			return s.skipOrErr(p)
		}
	})
	return err
}

// unmarshalTolerant decodes strictly first; only if the body is not valid
// JSON does it retry with trailing commas removed. Errors are *FieldError.
func unmarshalTolerant(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if fixed, changed := stripTrailingCommas(body); changed {
			if err2 := json.Unmarshal(fixed, v); err2 == nil {
				return nil
			}
		}
	}
	return asFieldError(err)
}

// asFieldError turns an encoding/json error into a *FieldError naming the
// field. Values are never quoted.
func asFieldError(err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "body"
		}
		return fieldErr(field, "wrong type: JSON %s where %s is expected", te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fieldErr("body", "not valid JSON at byte %d: %v", se.Offset, se)
	}
	return fieldErr("body", "%v", err)
}

// stripTrailingCommas removes every comma that is followed (after optional
// whitespace) by } or ], outside strings. It returns the body unchanged and
// false when there is none.
func stripTrailingCommas(body []byte) ([]byte, bool) {
	var out []byte // allocated at the first comma dropped
	inString, escaped := false, false
	last := 0 // body[last:i] not yet copied to out
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ',':
			j := i + 1
			for j < len(body) && (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r') {
				j++
			}
			if j < len(body) && (body[j] == '}' || body[j] == ']') {
				if out == nil {
					out = make([]byte, 0, len(body))
				}
				out = append(out, body[last:i]...)
				last = i + 1
			}
		}
	}
	if out == nil {
		return body, false
	}
	return append(out, body[last:]...), true
}
