package api

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/subscription"
)

// FuzzDecodeEndpoint feeds any body to the create/update decoding and
// validation: it never panics, and what it accepts is one JSON object within
// every limit, whose custom headers golang.org/x/net's httpguts (the HTTP
// stack's own checker, not ours) also accepts, and whose rate limit is in
// bounds. Seeds: testdata/fuzz/FuzzDecodeEndpoint.
func FuzzDecodeEndpoint(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var in input
		if err := decodeJSON(bytes.NewReader(body), &in); err != nil {
			return
		}
		var e subscription.Endpoint
		in.apply(&e)
		if err := e.Validate(); err != nil {
			if !strings.Contains(err.Error(), "invalid endpoint: ") {
				t.Fatalf("an error that names no field: %v", err)
			}
			return
		}
		if len(e.URL) > subscription.MaxURL || len(e.Description) > subscription.MaxDescription || len(e.Headers) > subscription.MaxHeaders {
			t.Fatalf("over a limit: %d %d %d", len(e.URL), len(e.Description), len(e.Headers))
		}
		if e.RateLimit != 0 && (e.RateLimit < subscription.MinRateLimit || e.RateLimit > subscription.MaxRateLimit) {
			t.Fatalf("rate_limit %v accepted", e.RateLimit)
		}
		for k, v := range e.Headers {
			if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
				t.Fatalf("header %q: %q accepted, httpguts refuses it", k, v)
			}
			if strings.HasPrefix(strings.ToLower(k), "ce-") || http.CanonicalHeaderKey(k) == "Webhook-Signature" {
				t.Fatalf("reserved header %q accepted", k)
			}
		}
	})
}
