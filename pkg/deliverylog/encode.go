package deliverylog

import (
	"strconv"
	"sync"

	"github.com/accountwatch/accountwatch/pkg/jsonappend"
)

// The log's writer encodes a record without reflection, into a reused
// buffer: a record is written for every attempt of every sink, and
// json.Marshal cost each one a heap copy of the record, its reflective walk
// and a new buffer. The bytes are json.Marshal's, to the byte
// (TestAppendJSONIsMarshal, FuzzAppendJSON), so readers decode them with
// encoding/json as before.

// maxPooled bounds the buffers kept for reuse (a record with a full
// response and a long error fits).
const maxPooled = 8 << 10

var recordBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendJSON appends r as json.Marshal writes it.
func (r *Record) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = jsonappend.Field(b, `{"sink":`, r.Sink)
	b = jsonappend.Field(b, `,"receiver":`, r.Receiver)
	b = jsonappend.Field(b, `,"event_id":`, r.EventID)
	if r.Attempt != 0 {
		b = strconv.AppendUint(append(b, `,"attempt":`...), r.Attempt, 10)
	}
	if b, err = jsonappend.Time(append(b, `,"at":`...), r.At); err != nil {
		return nil, err
	}
	b = jsonappend.Field(b, `,"outcome":`, r.Outcome)
	b = jsonappend.OmitEmpty(b, `,"destination":`, r.Destination)
	if r.Status != 0 {
		b = strconv.AppendInt(append(b, `,"status":`...), int64(r.Status), 10)
	}
	if r.LatencyMS != 0 {
		if b, err = jsonappend.Float(append(b, `,"latency_ms":`...), r.LatencyMS); err != nil {
			return nil, err
		}
	}
	b = jsonappend.OmitEmpty(b, `,"error":`, r.Error)
	b = jsonappend.OmitEmpty(b, `,"response":`, r.Response)
	if r.Retry != nil {
		if b, err = jsonappend.Time(append(b, `,"retry_at":`...), *r.Retry); err != nil {
			return nil, err
		}
	}
	b = jsonappend.OmitEmpty(b, `,"reason":`, r.Reason)
	if r.Until != nil {
		if b, err = jsonappend.Time(append(b, `,"until":`...), *r.Until); err != nil {
			return nil, err
		}
	}
	b = jsonappend.OmitEmpty(b, `,"notification":`, r.Notification)
	if r.Events != 0 {
		b = strconv.AppendInt(append(b, `,"events":`...), int64(r.Events), 10)
	}
	if r.Redrive {
		b = append(b, `,"redrive":true`...)
	}
	if r.Test {
		b = append(b, `,"test":true`...)
	}
	b = jsonappend.OmitEmpty(b, `,"kind":`, r.Kind)
	if r.Seq != 0 {
		b = strconv.AppendUint(append(b, `,"seq":`...), r.Seq, 10)
	}
	return append(b, '}'), nil
}
