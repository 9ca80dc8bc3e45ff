package activeplatform_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/activeplatform"
	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/upstream"
)

var fastRetry = upstream.Retry{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond, MaxRetryAfter: 10 * time.Millisecond}

func client(t *testing.T, url, token string, opts ...activeplatform.Option) *activeplatform.Client {
	t.Helper()
	c, err := activeplatform.New(url, token, append([]activeplatform.Option{activeplatform.WithRetry(fastRetry)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGetDecodesTheSeedQuirks(t *testing.T) {
	_, url := simtest.Start(t, simtest.Seed())
	c := client(t, url, simtest.APToken)
	ctx := context.Background()
	a, err := c.Get(ctx, "1000123")
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != "active" || a.Balance.String() != "453.2" || a.BalanceRaw != "453.2" || a.CurrentDebt.String() != "0" ||
		a.FinancialBlockingThreshold.String() != "500" || a.SubscriptionCreditLimit.String() != "0" || a.OwnerID != "501" || a.ManagerID != "77" ||
		a.CustomAttributes["Tier"] != "gold" || a.CustomAttributes["Passport number"] != "AB1234567" || a.CustomAttributes["Seats"] != "25" {
		t.Fatalf("account %+v", a)
	}
	if a.Evidence.RequestID == "" || len(a.Evidence.ResponseSHA256) != 64 {
		t.Fatalf("evidence %+v", a.Evidence)
	}
	b, err := c.Get(ctx, "1000124")
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != "credit hold" || b.Balance.String() != "-120.5" || b.BalanceRaw != "-120.50" {
		t.Fatalf("number-typed balance: %+v", b)
	}
	n, err := c.Get(ctx, "1000125")
	if err != nil {
		t.Fatal(err)
	}
	if n.CurrentDebt != nil || n.FinancialBlockingThreshold != nil {
		t.Fatalf("nulls must stay nil: %+v", n)
	}
}

func TestErrorPaths(t *testing.T) {
	cases := []struct {
		name     string
		token    string
		id       string
		fault    *sim.Fault
		kind     error
		requests int // requests the simulator saw
	}{
		{"bad token", "wrong-token", "1000123", nil, upstream.ErrUnauthorized, 1},
		{"unknown id", simtest.APToken, "999", nil, upstream.ErrNotFound, 1},
		{"5xx twice then ok", simtest.APToken, "1000123", &sim.Fault{Status: 503, Times: 2}, nil, 3},
		{"5xx persists", simtest.APToken, "1000123", &sim.Fault{Status: 500}, upstream.ErrTransient, 3},
		{"throttled", simtest.APToken, "1000123", &sim.Fault{Throttle: true}, upstream.ErrThrottled, 1},
		{"malformed not retried", simtest.APToken, "1000123", &sim.Fault{Body: sim.BodyMalformed}, upstream.ErrMalformed, 1},
		{"truncated once is retried", simtest.APToken, "1000123", &sim.Fault{Body: sim.BodyTruncated, Times: 1}, nil, 2},
		{"huge body bounded", simtest.APToken, "1000123", &sim.Fault{Body: sim.BodyHuge}, upstream.ErrMalformed, 1},
		{"html from a proxy", simtest.APToken, "1000123", &sim.Fault{Body: sim.BodyWrongContentType}, upstream.ErrMalformed, 1},
		{"timeout", simtest.APToken, "1000123", &sim.Fault{Latency: 2 * time.Second}, upstream.ErrTransient, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, url := simtest.Start(t, simtest.Seed())
			if c.fault != nil {
				if err := s.Faults.Set("ap.get", *c.fault); err != nil {
					t.Fatal(err)
				}
			}
			// Only the timeout case needs a short one: a loaded machine may
			// take longer than that to serve a huge body up to the bound.
			timeout := 30 * time.Second
			if c.fault != nil && c.fault.Latency > 0 {
				timeout = 200 * time.Millisecond
			}
			cl := client(t, url, c.token, activeplatform.WithHTTPClient(&http.Client{Timeout: timeout}), activeplatform.WithMaxBody(1<<20))
			a, err := cl.Get(context.Background(), c.id)
			if c.kind == nil {
				if err != nil || a == nil {
					t.Fatalf("want success, got %v", err)
				}
			} else {
				if !errors.Is(err, c.kind) || a != nil {
					t.Fatalf("want %v, got %v (%v)", c.kind, err, a)
				}
				for _, secret := range []string{simtest.APToken, "wrong-token"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("api token in error: %v", err)
					}
				}
			}
			if got := s.Stats()["ap.get"]; got != c.requests {
				t.Fatalf("simulator saw %d requests, want %d", got, c.requests)
			}
			if c.kind == upstream.ErrThrottled && upstream.RetryAfterOf(err) != time.Second {
				t.Fatalf("retry-after %v", upstream.RetryAfterOf(err))
			}
		})
	}
}

func TestTokenNeverInTransportErrors(t *testing.T) {
	c := client(t, "http://127.0.0.1:1", "sup3r-secret-token")
	_, err := c.Get(context.Background(), "1")
	if !errors.Is(err, upstream.ErrTransient) || strings.Contains(err.Error(), "sup3r-secret-token") {
		t.Fatalf("%v", err)
	}
	if _, err := activeplatform.New("ftp://x", "t"); err == nil {
		t.Fatal("bad base URL accepted")
	}
}

func TestListPagesOverThousandAccounts(t *testing.T) {
	seed := simtest.Seed()
	seed.ActivePlatform.Generate.Count = 1234
	s, url := simtest.Start(t, seed)
	c := client(t, url, simtest.APToken)
	seen := map[string]int{}
	err := c.List(context.Background(), activeplatform.ListOptions{PerPage: 100}, func(a *activeplatform.Account) error {
		seen[a.ID]++
		if a.Evidence.ResponseSHA256 == "" {
			t.Fatalf("no evidence for %s", a.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1237 {
		t.Fatalf("listed %d accounts, want 1237", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s listed %d times", id, n)
		}
	}
	if pages := s.Stats()["ap.list"]; pages != 13 {
		t.Fatalf("%d pages requested, want 13 (the last one short)", pages)
	}
}

func TestIncrementalListing(t *testing.T) {
	seed := simtest.Seed()
	seed.ActivePlatform.Generate.Count = 50
	clock := time.Now().Add(-time.Hour)
	s, url := simtest.Start(t, seed, sim.WithClock(func() time.Time { return clock }))
	_ = s
	since := clock.Add(30 * time.Minute)
	clock = since.Add(time.Minute)
	if err := s.State.SetAP(1000123, map[string]any{"status": "credit_hold"}); err != nil {
		t.Fatal(err)
	}
	c := client(t, url, simtest.APToken)
	var got []string
	if err := c.List(context.Background(), activeplatform.ListOptions{UpdatedSince: since}, func(a *activeplatform.Account) error {
		got = append(got, a.ID+"="+a.Status)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "1000123=credit_hold" {
		t.Fatalf("incremental scan listed %v", got)
	}
}

func TestRateLimiterHoldsRequests(t *testing.T) {
	s, url := simtest.Start(t, simtest.Seed())
	c := client(t, url, simtest.APToken, activeplatform.WithRateLimit(0.001, 1))
	if _, err := c.Get(context.Background(), "1000123"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "1000123"); err == nil {
		t.Fatal("second request within the rate limit should have waited past its deadline")
	}
	if n := s.Stats()["ap.get"]; n != 1 {
		t.Fatalf("limiter let %d requests through, want 1", n)
	}
}

func TestListStopsOnCallbackError(t *testing.T) {
	_, url := simtest.Start(t, simtest.Seed())
	c := client(t, url, simtest.APToken)
	stop := errors.New("stop")
	n := 0
	err := c.List(context.Background(), activeplatform.ListOptions{PerPage: 1}, func(*activeplatform.Account) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("%v after %d", err, n)
	}
	_ = strconv.Itoa
}

// TestListingTotalHeader: the next page's request may go out before a page is
// split when X-Total-Count announces it, but the listing is the same whatever
// the header says (absent, right, too low, too high) and however many
// accounts the server serves per page: every account once, in order. A short
// page ends the listing only where the header confirms it; otherwise one more
// page is asked for, and an empty one ends it. A server that ignores the page
// parameter is an error, not an endless listing.
func TestListingTotalHeader(t *testing.T) {
	const per = 10
	for _, tc := range []struct {
		name     string
		accounts int
		served   int // accounts the server serves per page (its cap)
		total    func(n int) string
		maxReqs  int
		repeats  bool
	}{
		{"no header", 25, per, func(int) string { return "" }, 4, false},
		{"right", 25, per, strconv.Itoa, 3, false},
		{"right, last page full", 30, per, strconv.Itoa, 4, false},
		{"too low", 25, per, func(n int) string { return strconv.Itoa(n - per) }, 3, false},
		{"too high", 25, per, func(n int) string { return strconv.Itoa(n + 2*per) }, 4, false},
		{"garbage", 25, per, func(int) string { return "many" }, 4, false},
		{"empty", 0, per, strconv.Itoa, 1, false},
		{"capped, right header", 25, 4, strconv.Itoa, 7, false},
		{"capped, no header", 25, 4, func(int) string { return "" }, 8, false},
		{"page ignored", 25, per, func(int) string { return "" }, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqs.Add(1)
				page, _ := strconv.Atoi(r.URL.Query().Get("page"))
				if tc.repeats {
					page = 1
				}
				var items []string
				for i := (page - 1) * tc.served; i < min(page*tc.served, tc.accounts); i++ {
					items = append(items, fmt.Sprintf(`{"id":%d,"status":"active"}`, 1000+i))
				}
				if h := tc.total(tc.accounts); h != "" {
					w.Header().Set("X-Total-Count", h)
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, "[%s]", strings.Join(items, ","))
			}))
			defer srv.Close()
			c := client(t, srv.URL, "tok")
			var got []string
			err := c.List(context.Background(), activeplatform.ListOptions{PerPage: per}, func(a *activeplatform.Account) error {
				got = append(got, a.ID)
				return nil
			})
			if tc.repeats {
				if !errors.Is(err, upstream.ErrMalformed) || !strings.Contains(err.Error(), activeplatform.ErrRepeatedPage.Error()) {
					t.Fatalf("a repeated page: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.accounts {
				t.Fatalf("listed %d accounts, want %d", len(got), tc.accounts)
			}
			for i, id := range got {
				if id != strconv.Itoa(1000+i) {
					t.Fatalf("account %d is %s", i, id)
				}
			}
			if n := int(reqs.Load()); n > tc.maxReqs {
				t.Fatalf("%d requests, want at most %d", n, tc.maxReqs)
			}
		})
	}
}

// TestListRawPredicted: a listing predicted from the last one hands out
// exactly what an unpredicted listing does, whatever changed in between (an
// account's bytes and length, one gone, one new, the order shifted), with or
// without X-Total-Count; a malformed page still fails, after the accounts
// before the fault.
func TestListRawPredicted(t *testing.T) {
	const per = 4
	type raw struct {
		item string
		fp   upstream.Fingerprint
	}
	for _, header := range []bool{true, false} {
		t.Run(fmt.Sprintf("header=%v", header), func(t *testing.T) {
			var accounts []string
			for i := range 10 {
				accounts = append(accounts, fmt.Sprintf(`{"id":%d,"status":"active","name":"n%d"}`, 1000+i, i))
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				page, _ := strconv.Atoi(r.URL.Query().Get("page"))
				lo, hi := min((page-1)*per, len(accounts)), min(page*per, len(accounts))
				if header {
					w.Header().Set("X-Total-Count", strconv.Itoa(len(accounts)))
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, "[%s]", strings.Join(accounts[lo:hi], ", "))
			}))
			defer srv.Close()
			c := client(t, srv.URL, "tok")
			list := func(predict activeplatform.Predictor) ([]raw, error) {
				var out []raw
				err := c.ListRaw(context.Background(), activeplatform.ListOptions{PerPage: per, Predict: predict}, func(item []byte, fp upstream.Fingerprint, _ upstream.Evidence) error {
					out = append(out, raw{string(item), fp})
					return nil
				})
				return out, err
			}
			last, err := list(nil)
			if err != nil || len(last) != 10 {
				t.Fatal(err, len(last))
			}
			accounts[2] = `{"id":1002,"status":"credit hold","name":"n2"}`
			accounts = append(accounts[:5], accounts[6:]...)
			accounts = append(accounts[:7], append([]string{`{"id":2000,"status":"active"}`}, accounts[7:]...)...)
			asked := 0
			k := 0
			predict := func() (int, upstream.Fingerprint, bool) {
				asked++
				if k >= len(last) {
					return 0, upstream.Fingerprint{}, false
				}
				k++
				return len(last[k-1].item), last[k-1].fp, true
			}
			want, err := list(nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := list(predict)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 10 {
				t.Fatalf("predicted:\n%v\nunpredicted:\n%v", got, want)
			}
			if header != (asked > 0) {
				t.Fatalf("%d predictions asked for; header %v", asked, header)
			}
			accounts[5] = `{"id":1006,"status":"active"` // page 2 breaks after its first account
			var n int
			err = c.ListRaw(context.Background(), activeplatform.ListOptions{PerPage: per, Predict: predict}, func([]byte, upstream.Fingerprint, upstream.Evidence) error {
				n++
				return nil
			})
			if !errors.Is(err, upstream.ErrMalformed) {
				t.Fatalf("malformed page: %v", err)
			}
			if wantN := map[bool]int{true: 5, false: 4}[header]; n != wantN {
				t.Fatalf("%d accounts before the fault, want %d", n, wantN)
			}
		})
	}
}

// A 503 that says when the service is back (Retry-After, RFC 9110 10.2.3,
// in either form) is not asked again sooner, and one that asks for longer
// than the policy waits fails at once with the wait in the error.
func TestUnavailableHonoursRetryAfter(t *testing.T) {
	soon := upstream.Retry{Attempts: 2, Base: time.Millisecond, Max: 5 * time.Millisecond, MaxRetryAfter: 3 * time.Second}
	cases := []struct {
		name       string
		retryAfter func() string
		requests   int
		min, max   time.Duration // the error's RetryAfter
	}{
		{"seconds, waited", func() string { return "1" }, 2, time.Second, time.Second},
		{"seconds, too long", func() string { return "120" }, 1, 120 * time.Second, 120 * time.Second},
		{"http date, too long", func() string { return time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat) }, 1, 100 * time.Second, 121 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var at []time.Time
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				at = append(at, time.Now())
				mu.Unlock()
				w.Header().Set("Retry-After", c.retryAfter())
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"error":"maintenance"}`)
			}))
			defer srv.Close()
			cl := client(t, srv.URL, "tok", activeplatform.WithRetry(soon))
			_, err := cl.Get(context.Background(), "1000123")
			if !errors.Is(err, upstream.ErrTransient) {
				t.Fatalf("want transient, got %v", err)
			}
			if got := upstream.RetryAfterOf(err); got < c.min || got > c.max {
				t.Fatalf("retry-after %v, want %v..%v", got, c.min, c.max)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(at) != c.requests {
				t.Fatalf("%d requests, want %d", len(at), c.requests)
			}
			if len(at) == 2 && at[1].Sub(at[0]) < time.Second {
				t.Fatalf("asked again after %v, before the Retry-After of 1s", at[1].Sub(at[0]))
			}
		})
	}
}
