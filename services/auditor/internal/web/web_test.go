package web_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/standing"
	"github.com/accountwatch/accountwatch/services/auditor/internal/web"
)

func index(n int) *standing.Index {
	accts := make([]standing.Account, n)
	for i := range accts {
		s := []string{standing.Good}
		switch i % 40 {
		case 0:
			s = []string{standing.CreditHold, standing.OverThreshold}
		case 1:
			s = []string{standing.Frozen}
		}
		accts[i] = standing.Account{Provider: event.ProviderActivePlatform, Instance: "ap-main", ID: fmt.Sprintf("%07d", i), Name: fmt.Sprintf("Customer %d <b>", i),
			Standings: s, Status: "active", Debt: "12.5", ChangedAt: time.Unix(int64(i), 0), Events: 3}
	}
	return standing.NewIndex(accts)
}

// signedIn is a console request with a valid session cookie.
func signedIn(t testing.TB, h http.Handler, path string) *http.Request {
	t.Helper()
	rec := httptest.NewRecorder()
	login := httptest.NewRequest("POST", "/login", strings.NewReader("token=web-test-token-0123456789"))
	login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(rec, login)
	req := httptest.NewRequest("GET", path, nil)
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	return req
}

func server(t testing.TB, n int) http.Handler {
	s := &web.Server{Token: "web-test-token-0123456789", Index: index(n), Logger: slog.New(slog.DiscardHandler)}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

func TestOverviewEscapesAndPages(t *testing.T) {
	h := server(t, 1000)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signedIn(t, h, "/?standing=credit_hold&page=2"))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "25 of 1000 accounts") || !strings.Contains(body, "Page 1 of 1") {
		t.Errorf("%d %s", rec.Code, body[:min(len(body), 300)])
	}
	if strings.Contains(body, "Customer 40 <b>") || !strings.Contains(body, "Customer 40 &lt;b&gt;") {
		t.Error("an account name is not escaped")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
		t.Errorf("without a session: %d %s", rec.Code, rec.Header().Get("Location"))
	}
}

// BenchmarkOverview100k renders the overview page over 100,000 accounts
// (counts by standing, the newest 50).
func BenchmarkOverview100k(b *testing.B) {
	h := server(b, 100_000)
	req := signedIn(b, h, "/")
	b.ResetTimer()
	for range b.N {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
