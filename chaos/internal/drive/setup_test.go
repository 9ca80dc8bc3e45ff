package drive

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	errNotYet, errFatal := errors.New("not yet"), errors.New("fatal")
	tests := []struct {
		name  string
		f     func(calls int) error
		d     time.Duration
		want  error
		calls int // at least
	}{
		{"succeeds after failures", func(n int) error {
			if n < 3 {
				return errNotYet
			}
			return nil
		}, time.Minute, nil, 3},
		{"stop ends it at once with its error", func(int) error { return Stop(errFatal) }, time.Minute, errFatal, 1},
		{"the deadline returns the last error", func(int) error { return errNotYet }, 20 * time.Millisecond, errNotYet, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Within(context.Background(), tc.d, time.Millisecond, func() error { calls++; return tc.f(calls) })
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if calls < tc.calls {
				t.Fatalf("%d calls, want at least %d", calls, tc.calls)
			}
			if tc.name == "stop ends it at once with its error" && calls != 1 {
				t.Fatalf("%d calls after a Stop, want 1", calls)
			}
		})
	}
}

func TestCreateEndpointAndHTTPOK(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer tok":
			http.Error(w, "who are you", http.StatusUnauthorized)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/endpoints":
			w.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodGet && r.URL.Path == "/readyz":
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx, api := context.Background(), strings.TrimPrefix(srv.URL, "http://")
	if err := CreateEndpoint(ctx, api, "tok", "http://127.0.0.1:1/hook", "test"); err != nil {
		t.Fatal(err)
	}
	if err := CreateEndpoint(ctx, api, "wrong", "http://127.0.0.1:1/hook", "test"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a refused creation: err = %v, want one naming the 401", err)
	}
	if err := HTTPOK(ctx, srv.URL+"/readyz", "tok"); err != nil {
		t.Fatal(err)
	}
	if err := HTTPOK(ctx, srv.URL+"/readyz", ""); err == nil {
		t.Fatal("HTTPOK without the token: want the 401 as an error")
	}
}
