// Package jsonappend writes JSON values by appending them to a buffer, byte
// for byte as encoding/json writes them: the stores that encode a record on
// every write (the delivery log, the poller's state) do it without
// reflection, and their readers decode the bytes with encoding/json as
// before. Each encoder built on it keeps a test that its bytes are
// json.Marshal's.
package jsonappend

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrTime is json.Marshal's refusal of a time RFC 3339 cannot write: a
// year outside 0 to 9999, or a zone offset of a day or more.
var ErrTime = errors.New("jsonappend: a time RFC 3339 cannot write (year outside 0 to 9999, or zone offset a day or more)")

// ErrFloat is json.Marshal's refusal of an infinity or a NaN.
var ErrFloat = errors.New("jsonappend: a number that is not finite")

// Time is time.Time's MarshalJSON: RFC 3339 with the fraction's trailing
// zeros cut, refused as Time.MarshalJSON refuses it.
func Time(b []byte, t time.Time) ([]byte, error) {
	n0 := len(b) + 1
	b = append(t.AppendFormat(append(b, '"'), time.RFC3339Nano), '"')
	end := len(b) - 1 // the closing quote
	switch {
	case b[n0+len("9999")] != '-':
		return nil, ErrTime
	case b[end-1] != 'Z':
		c := b[end-len("Z07:00")]
		if '0' <= c && c <= '9' || 10*(b[end-5]-'0')+(b[end-4]-'0') >= 24 {
			return nil, ErrTime
		}
	}
	return b, nil
}

// Float is encoding/json's float64: the shortest decimal, in exponent form
// only for magnitudes below 1e-6 or from 1e21, with a one-digit negative
// exponent unpadded.
func Float(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, ErrFloat
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// Bytes is a []byte as encoding/json writes it: null when nil, else its
// standard base64 in a string.
func Bytes(b, p []byte) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	return append(base64.StdEncoding.AppendEncode(b, p), '"')
}

// Field is a string field: key (its separator, name and colon, such as
// `,"name":`) and the value.
func Field(b []byte, key, v string) []byte { return String(append(b, key...), v) }

// OmitEmpty is an omitempty string field: nothing when v is empty.
func OmitEmpty(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return Field(b, key, v)
}

const hexDigits = "0123456789abcdef"

// String is encoding/json's string, HTML-safe as it writes by default:
// quotes, backslashes, control bytes and <, >, & escaped, invalid UTF-8 as
// U+FFFD, and U+2028 and U+2029 escaped (JavaScript's line ends).
func String(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(b, s[start:]...), '"')
}
