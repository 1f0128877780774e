package rox

import "strconv"

// Code is a ROX result code, a four-digit string such as "0000" or "2011".
type Code string

// CodeOK is success (for a recipient: queued).
const CodeOK Code = "0000"

// Class is the family of a result code.
type Class int

const (
	ClassUnknown Class = iota // not a code the document defines
	ClassSuccess              // "0000"
	ClassAuth                 // "2001".."2010": authentication errors
	ClassSending              // "2011".."2100": sending errors
)

func (c Class) String() string {
	switch c {
	case ClassSuccess:
		return "success"
	case ClassAuth:
		return "authentication"
	case ClassSending:
		return "sending"
	default:
		return "unknown"
	}
}

// Class returns the family of c.
func (c Code) Class() Class {
	if c == CodeOK {
		return ClassSuccess
	}
	if len(c) != 4 {
		return ClassUnknown
	}
	n, err := strconv.Atoi(string(c))
	if err != nil {
		return ClassUnknown
	}
	switch {
	case n >= 2001 && n <= 2010:
		return ClassAuth
	case n >= 2011 && n <= 2100:
		return ClassSending
	default:
		return ClassUnknown
	}
}

// OK reports whether c is success.
func (c Code) OK() bool { return c == CodeOK }
