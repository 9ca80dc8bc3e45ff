package provider_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/upstream"
	"github.com/accountwatch/accountwatch/services/poller/internal/config"
	_ "github.com/accountwatch/accountwatch/services/poller/internal/provider"
	"github.com/accountwatch/accountwatch/services/poller/internal/source"
)

type noMemory struct{}

func (noMemory) Known(upstream.Fingerprint, []byte) (string, bool) { return "", false }
func (noMemory) Predict() (int, upstream.Fingerprint, bool)        { return 0, upstream.Fingerprint{}, false }

// TestListingAdaptsToTheUpstream: an ActivePlatform upstream that refuses
// the incremental filter's format, or the page size asked for (the document
// names neither), is listed all the same: without the filter, at its default
// page size; every account once, the listing complete.
func TestListingAdaptsToTheUpstream(t *testing.T) {
	const accounts = 120
	var rejected atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		per, _ := strconv.Atoi(q.Get("per_page"))
		if q.Get("filters[updated_at]") != "" || per > 50 || q.Get("sorting[reversed]") == "" {
			rejected.Add(1)
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprint(w, `{"error":"unprocessable"}`)
			return
		}
		page, _ := strconv.Atoi(q.Get("page"))
		var items []string
		for i := (page - 1) * per; i < min(page*per, accounts); i++ {
			items = append(items, fmt.Sprintf(`{"id":%d,"status":"active","custom_attributes":[{"name":"Tier","value":"gold"}]}`, 1000+i))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "[%s]", strings.Join(items, ","))
	}))
	defer srv.Close()
	c := config.Connection{Name: "ap", Provider: event.ProviderActivePlatform, URL: srv.URL, APIToken: "t", PerPage: 500}
	src, err := source.New(c, event.DefaultAllowList.With(`custom_attributes["tier"]`), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		seen := map[string]int{}
		complete, err := src.List(context.Background(), false, time.Now().Add(-time.Hour), noMemory{}, func(l source.Listed) {
			seen[l.AccountID]++
			if l.Obs == nil || l.Obs.Attrs[event.AttributeKey("Tier")] != "gold" {
				t.Fatalf("account %s: %+v", l.AccountID, l.Obs)
			}
		})
		if err != nil || !complete || len(seen) != accounts {
			t.Fatalf("round %d: %d accounts, complete %v, %v", round, len(seen), complete, err)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("%s listed %d times", id, n)
			}
		}
	}
	if n := rejected.Load(); n != 2 {
		t.Fatalf("%d refused requests: the adapter should learn from the first two", n)
	}
}
