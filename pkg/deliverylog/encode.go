package deliverylog

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The log's writer encodes a record without reflection, into a reused
// buffer: a record is written for every attempt of every sink, and
// json.Marshal cost each one a heap copy of the record, its reflective walk
// and a new buffer. The bytes are json.Marshal's, to the byte
// (TestAppendJSONIsMarshal, FuzzAppendJSON), so readers decode them with
// encoding/json as before.

// errBadTime is json.Marshal's refusal of a time it cannot write as RFC 3339.
var errBadTime = errors.New("deliverylog: a record's time is outside years 0 to 9999")

// maxPooled bounds the buffers kept for reuse (a record with a full
// response and a long error fits).
const maxPooled = 8 << 10

var recordBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendJSON appends r as json.Marshal writes it.
func (r *Record) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = appendKey(b, `{"sink":`, r.Sink)
	b = appendKey(b, `,"receiver":`, r.Receiver)
	b = appendKey(b, `,"event_id":`, r.EventID)
	if r.Attempt != 0 {
		b = strconv.AppendUint(append(b, `,"attempt":`...), r.Attempt, 10)
	}
	if b, err = appendTime(append(b, `,"at":`...), r.At); err != nil {
		return nil, err
	}
	b = appendKey(b, `,"outcome":`, r.Outcome)
	b = appendOmit(b, `,"destination":`, r.Destination)
	if r.Status != 0 {
		b = strconv.AppendInt(append(b, `,"status":`...), int64(r.Status), 10)
	}
	if r.LatencyMS != 0 {
		if b, err = appendFloat(append(b, `,"latency_ms":`...), r.LatencyMS); err != nil {
			return nil, err
		}
	}
	b = appendOmit(b, `,"error":`, r.Error)
	b = appendOmit(b, `,"response":`, r.Response)
	if r.Retry != nil {
		if b, err = appendTime(append(b, `,"retry_at":`...), *r.Retry); err != nil {
			return nil, err
		}
	}
	b = appendOmit(b, `,"reason":`, r.Reason)
	if r.Until != nil {
		if b, err = appendTime(append(b, `,"until":`...), *r.Until); err != nil {
			return nil, err
		}
	}
	b = appendOmit(b, `,"notification":`, r.Notification)
	if r.Events != 0 {
		b = strconv.AppendInt(append(b, `,"events":`...), int64(r.Events), 10)
	}
	if r.Redrive {
		b = append(b, `,"redrive":true`...)
	}
	if r.Test {
		b = append(b, `,"test":true`...)
	}
	b = appendOmit(b, `,"kind":`, r.Kind)
	if r.Seq != 0 {
		b = strconv.AppendUint(append(b, `,"seq":`...), r.Seq, 10)
	}
	return append(b, '}'), nil
}

func appendKey(b []byte, key, v string) []byte { return appendString(append(b, key...), v) }

// appendOmit is an omitempty string field.
func appendOmit(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendKey(b, key, v)
}

// appendTime is time.Time's MarshalJSON.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, errBadTime
	}
	b = append(b, '"')
	return append(t.AppendFormat(b, time.RFC3339Nano), '"'), nil
}

// appendFloat is encoding/json's float64: the shortest decimal, in
// exponent form only for magnitudes below 1e-6 or from 1e21, with a
// one-digit negative exponent unpadded.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, errors.New("deliverylog: a record's latency is not a finite number")
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

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string, HTML-safe as it writes by
// default: quotes, backslashes, control bytes and <, >, & escaped, invalid
// UTF-8 as U+FFFD, and U+2028 and U+2029 escaped (JavaScript's line ends).
func appendString(b []byte, s string) []byte {
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
