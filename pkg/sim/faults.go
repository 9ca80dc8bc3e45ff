package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Endpoints names every simulated endpoint, for faults and stats.
var Endpoints = []string{
	"ap.get", "ap.list",
	"bss.GetCustomerAccountInfo", "bss.GetCustomerList", "bss.CreateAgAccount",
	"cams.QueryPhoneBusinessProfile", "cams.QueryChatappPhoneNumbers",
}

// Body faults.
const (
	BodyMalformed        = "malformed"          // syntactically broken JSON
	BodyTruncated        = "truncated"          // the connection drops halfway through the body
	BodyHuge             = "huge"               // 64 MiB of JSON
	BodyWrongContentType = "wrong_content_type" // a 200 HTML error page from a proxy
	// BodyBadField makes one field (Field) of one account (Account) of an
	// ActivePlatform answer an object: that account cannot be read, the
	// others can.
	BodyBadField = "bad_field"
)

// FaultHeader marks an answer a body fault corrupted (simtest does not hold
// it to the documents).
const FaultHeader = "X-Sim-Fault"

// Fault is injected into one endpoint's answers.
type Fault struct {
	// Latency delays the answer.
	Latency time.Duration `json:"latency,omitempty" yaml:"latency"`
	// Status answers with this HTTP status and a provider-shaped error body.
	Status int `json:"status,omitempty" yaml:"status"`
	// Code overrides the error code of an Alibaba error (e.g. Product.Unsubscript;
	// with Status 200 the error comes in a 200 body, as CAMS does).
	Code string `json:"code,omitempty" yaml:"code"`
	// Throttle answers as the provider's rate limiter does (CAMS: HTTP 400,
	// or with Status 200 the same error in a 200 body).
	Throttle bool `json:"throttle,omitempty" yaml:"throttle"`
	// Body corrupts an otherwise good answer: malformed, truncated, huge, wrong_content_type.
	Body string `json:"body,omitempty" yaml:"body"`
	// Times is how many requests the fault hits; 0 means until cleared.
	Times int `json:"times,omitempty" yaml:"times"`
	// Account and Field say which account's field bad_field spoils.
	Account int64  `json:"account,omitempty" yaml:"account"`
	Field   string `json:"field,omitempty" yaml:"field"`
}

// Validate checks a fault.
func (f Fault) Validate() error {
	switch f.Body {
	case "", BodyMalformed, BodyTruncated, BodyHuge, BodyWrongContentType:
	case BodyBadField:
		if f.Account <= 0 || f.Field == "" {
			return fmt.Errorf("fault body bad_field needs account and field")
		}
	default:
		return fmt.Errorf("fault body %q (want malformed, truncated, huge, wrong_content_type or bad_field)", f.Body)
	}
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		return fmt.Errorf("fault status %d", f.Status)
	}
	if f.Latency < 0 || f.Times < 0 {
		return fmt.Errorf("fault latency and times must not be negative")
	}
	if f.Latency == 0 && f.Status == 0 && !f.Throttle && f.Body == "" {
		return fmt.Errorf("fault does nothing: set latency, status, throttle or body")
	}
	return nil
}

// Faults holds the injected faults per endpoint.
type Faults struct {
	mu sync.Mutex
	m  map[string]*Fault
}

// NewFaults is an empty fault table.
func NewFaults() *Faults { return &Faults{m: map[string]*Fault{}} }

// Set injects f into endpoint ep.
func (fs *Faults) Set(ep string, f Fault) error {
	known := false
	for _, e := range Endpoints {
		known = known || e == ep
	}
	if !known {
		return fmt.Errorf("unknown endpoint %q (one of %s)", ep, strings.Join(Endpoints, ", "))
	}
	if err := f.Validate(); err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.m[ep] = &f
	return nil
}

// Clear removes the fault of ep ("" clears all).
func (fs *Faults) Clear(ep string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if ep == "" {
		fs.m = map[string]*Fault{}
		return
	}
	delete(fs.m, ep)
}

// List returns the active faults.
func (fs *Faults) List() map[string]Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := map[string]Fault{}
	for k, v := range fs.m {
		out[k] = *v
	}
	return out
}

// take returns ep's fault, counting one use.
func (fs *Faults) take(ep string, body bool) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f, ok := fs.m[ep]
	if !ok || (body != (f.Body != "")) {
		return Fault{}, false
	}
	out := *f
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			delete(fs.m, ep)
		}
	}
	return out, true
}

// apply runs ep's request-level fault (latency, status, throttle). It reports
// whether it answered the request.
func (fs *Faults) apply(ep string, w http.ResponseWriter, r *http.Request) bool {
	f, ok := fs.take(ep, false)
	if !ok {
		return false
	}
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return true
		}
	}
	ap := strings.HasPrefix(ep, "ap.")
	switch {
	case f.Throttle && ap:
		w.Header().Set("Retry-After", "1")
		apError(w, http.StatusTooManyRequests, "Too Many Requests")
	case f.Throttle:
		throttledAnswer(w, r, strings.SplitN(ep, ".", 2)[0], time.Second, f.Status == http.StatusOK)
	case f.Status != 0 && ap && !f.Throttle:
		apError(w, f.Status, http.StatusText(f.Status))
	case f.Status != 0:
		code := f.Code
		if code == "" {
			code = "InternalError"
			if f.Status == http.StatusServiceUnavailable {
				code = "ServiceUnavailable"
			}
		}
		aliError(w, r, f.Status, code, "The request processing has failed due to some unknown error.", 0)
	default:
		return false // latency only
	}
	return true
}

// writeBody writes a 200 answer, corrupted if ep has a body fault.
func (fs *Faults) writeBody(ep string, w http.ResponseWriter, body []byte) {
	f, ok := fs.take(ep, true)
	if !ok {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(body)
		return
	}
	w.Header().Set(FaultHeader, f.Body) // an answer that is not the document's, on purpose
	switch f.Body {
	case BodyMalformed:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(append(bytes.TrimRight(body[:len(body)/2], "\n"), []byte(`,,"x":}`)...))
	case BodyTruncated:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		// Returning with fewer bytes than announced makes net/http drop the connection.
	case BodyHuge:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(`{"padding":"`))
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 64 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		w.Write([]byte(`"}`))
	case BodyWrongContentType:
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>"))
	case BodyBadField:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(spoil(body, f.Account, f.Field))
	}
}

// FaultList is the JSON of GET /admin/faults.
func (fs *Faults) MarshalJSON() ([]byte, error) {
	l := fs.List()
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m := make(map[string]Fault, len(l))
	for _, k := range keys {
		m[k] = l[k]
	}
	return json.Marshal(m)
}

// spoil makes field of the account with id an object, in an account answer
// or a listing of them.
func spoil(body []byte, id int64, field string) []byte {
	var accounts []map[string]json.RawMessage
	single := false
	if json.Unmarshal(body, &accounts) != nil {
		var one map[string]json.RawMessage
		if json.Unmarshal(body, &one) != nil {
			return body
		}
		accounts, single = []map[string]json.RawMessage{one}, true
	}
	for _, a := range accounts {
		if string(a["id"]) == strconv.FormatInt(id, 10) {
			a[field] = json.RawMessage(`{"spoiled":true}`)
		}
	}
	var out []byte
	if single {
		out, _ = json.Marshal(accounts[0])
	} else {
		out, _ = json.Marshal(accounts)
	}
	return out
}
