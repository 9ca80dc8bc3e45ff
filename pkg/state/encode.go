package state

import (
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/jsonappend"
)

// An entry is encoded on every write of the state, a million of them at a
// poller's first scan and one for each change after: appendEntry writes it
// without reflection, the bytes json.Marshal writes, to the byte
// (TestAppendEntryIsMarshal, TestAppendEntryCoversEveryField,
// FuzzAppendEntry), so every reader decodes them with encoding/json as
// before.

// appendEntry appends e as json.Marshal writes it.
func appendEntry(b []byte, e *Entry) ([]byte, error) {
	b, err := appendRecord(append(b, `{"record":`...), &e.Record)
	if err != nil {
		return nil, err
	}
	if len(e.Pending) > 0 {
		b = append(b, `,"pending":[`...)
		for i := range e.Pending {
			if i > 0 {
				b = append(b, ',')
			}
			p := &e.Pending[i]
			b = appendHeader(jsonappend.Field(append(b, '{'), `"subject":`, p.Subject), p.Header)
			b = append(jsonappend.Bytes(append(b, `,"data":`...), p.Data), '}')
		}
		b = append(b, ']')
	}
	b = jsonappend.OmitEmpty(b, `,"listing":`, e.Listing)
	return append(b, '}'), nil
}

func appendRecord(b []byte, r *detect.Record) ([]byte, error) {
	var err error
	b = strconv.AppendInt(append(b, `{"v":`...), int64(r.Version), 10)
	b = jsonappend.Field(b, `,"provider":`, string(r.Provider))
	b = jsonappend.Field(b, `,"instance":`, r.Instance)
	b = jsonappend.Field(b, `,"account_id":`, r.AccountID)
	b = jsonappend.OmitEmpty(b, `,"name":`, r.Name)
	b = appendBool(append(b, `,"baseline":`...), r.Baseline)
	b = appendValues(b, `,"enums":`, r.Enums)
	if d := r.Debt; d != nil {
		if b, err = appendDebt(append(b, `,"debt":`...), d); err != nil {
			return nil, err
		}
	}
	b = appendValues(b, `,"profile":`, r.Profile)
	b = appendStrings(b, `,"attrs":`, r.Attrs)
	if b, err = appendOmitTime(b, `,"changed_at":`, r.ChangedAt); err != nil {
		return nil, err
	}
	b = strconv.AppendUint(append(b, `,"chain":{"seq":`...), r.Chain.Seq, 10)
	b = append(jsonappend.Field(b, `,"prev":`, r.Chain.Prev), '}')
	if r.Failures != 0 {
		b = strconv.AppendInt(append(b, `,"failures":`...), int64(r.Failures), 10)
	}
	if b, err = appendOmitTime(b, `,"failing_since":`, r.FailingSince); err != nil {
		return nil, err
	}
	if r.Degraded {
		b = append(b, `,"degraded":true`...)
	}
	b = jsonappend.OmitEmpty(b, `,"last_error":`, r.LastError)
	if r.Removed {
		b = append(b, `,"removed":true`...)
	}
	if v := r.Balance; v != nil {
		b = jsonappend.Field(append(b, `,"balance":`...), `{"value":`, v.Value)
		b = jsonappend.OmitEmpty(b, `,"current":`, v.Current)
		if v.Below {
			b = append(b, `,"below":true`...)
		}
		b = jsonappend.OmitEmpty(b, `,"floor":`, v.Floor)
		b = append(jsonappend.OmitEmpty(b, `,"currency":`, v.Currency), '}')
	}
	if b, err = appendOmitTime(b, `,"bad_since":`, r.BadSince); err != nil {
		return nil, err
	}
	b = appendStrings(b, `,"labels":`, r.Labels)
	return append(b, '}'), nil
}

func appendDebt(b []byte, d *detect.DebtState) ([]byte, error) {
	var err error
	b = jsonappend.Field(b, `{"value":`, d.Value)
	b = jsonappend.OmitEmpty(b, `,"raw":`, d.Raw)
	if d.Above {
		b = append(b, `,"above":true`...)
	}
	b = jsonappend.OmitEmpty(b, `,"step":`, d.Step)
	b = jsonappend.OmitEmpty(b, `,"current":`, d.Current)
	b = jsonappend.OmitEmpty(b, `,"threshold":`, d.Threshold)
	b = jsonappend.OmitEmpty(b, `,"threshold_source":`, d.ThresholdSource)
	b = jsonappend.OmitEmpty(b, `,"currency":`, d.Currency)
	if len(d.History) > 0 {
		b = append(b, `,"history":[`...)
		for i, s := range d.History {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = jsonappend.Time(append(b, `{"at":`...), s.At); err != nil {
				return nil, err
			}
			b = append(jsonappend.Field(b, `,"value":`, s.Value), '}')
		}
		b = append(b, ']')
	}
	if f := d.Forecast; f != nil {
		if b, err = jsonappend.Time(append(b, `,"forecast":{"eta":`...), f.ETA); err != nil {
			return nil, err
		}
		b = jsonappend.Field(b, `,"rate_per_day":`, f.RatePerDay)
		if b, err = jsonappend.Time(append(b, `,"at":`...), f.At); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// appendValues is an omitempty map of values, its keys sorted as
// encoding/json sorts them.
func appendValues(b []byte, key string, m map[string]event.Value) []byte {
	if len(m) == 0 {
		return b
	}
	b = append(b, key...)
	for i, k := range sortedKeys(m) {
		b = append(b, "{,"[min(i, 1)])
		v := m[k]
		b = jsonappend.Field(jsonappend.String(b, k), `:{"value":`, v.Value)
		b = jsonappend.OmitEmpty(b, `,"raw":`, v.Raw)
		if len(v.Items) > 0 {
			b = appendList(append(b, `,"items":`...), v.Items)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendStrings is an omitempty map of strings.
func appendStrings(b []byte, key string, m map[string]string) []byte {
	if len(m) == 0 {
		return b
	}
	b = append(b, key...)
	for i, k := range sortedKeys(m) {
		b = append(b, "{,"[min(i, 1)])
		b = jsonappend.String(append(jsonappend.String(b, k), ':'), m[k])
	}
	return append(b, '}')
}

// appendHeader is a message's header (no omitempty: nil is null).
func appendHeader(b []byte, h nats.Header) []byte {
	b = append(b, `,"header":`...)
	if h == nil {
		return append(b, "null"...)
	}
	if len(h) == 0 {
		return append(b, "{}"...)
	}
	for i, k := range sortedKeys(h) {
		b = append(b, "{,"[min(i, 1)])
		b = appendList(append(jsonappend.String(b, k), ':'), h[k])
	}
	return append(b, '}')
}

// appendList is a []string (nil is null).
func appendList(b []byte, l []string) []byte {
	if l == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonappend.String(b, s)
	}
	return append(b, ']')
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendOmitTime is an omitzero time field.
func appendOmitTime(b []byte, key string, t time.Time) ([]byte, error) {
	if t.IsZero() {
		return b, nil
	}
	return jsonappend.Time(append(b, key...), t)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}
