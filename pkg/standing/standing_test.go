package standing_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/standing"
)

func TestStanding(t *testing.T) {
	enum := func(v string) event.Value { return event.Value{Value: v} }
	cases := []struct {
		r    detect.Record
		want string
	}{
		{detect.Record{Enums: map[string]event.Value{detect.FieldStatus: enum("active")}}, "[good]"},
		{detect.Record{Enums: map[string]event.Value{detect.FieldStatus: enum("credit_hold")}, Debt: &detect.DebtState{Value: "900", Above: true}}, "[credit_hold over_threshold]"},
		{detect.Record{Enums: map[string]event.Value{detect.FieldHostingStatus: enum("freeze")}}, "[frozen]"},
		{detect.Record{Enums: map[string]event.Value{detect.FieldCreditLimitStatus: enum("freeze")}, Degraded: true}, "[frozen degraded]"},
		{detect.Record{Enums: map[string]event.Value{detect.FieldStatus: enum("administrative_hold")}, Removed: true}, "[administrative_hold removed]"},
	}
	for i, c := range cases {
		if got := fmt.Sprint(standing.Of(c.r).Standings); got != c.want {
			t.Errorf("%d: %s, want %s", i, got, c.want)
		}
	}
}

func TestFind(t *testing.T) {
	var accts []standing.Account
	for i := range 250 {
		s := []string{standing.Good}
		if i%10 == 0 {
			s = []string{standing.CreditHold}
		}
		accts = append(accts, standing.Account{Provider: event.ProviderActivePlatform, Instance: "ap-main", ID: fmt.Sprintf("%04d", i), Name: fmt.Sprintf("Customer %d", i),
			Standings: s, ChangedAt: time.Unix(int64(i), 0)})
	}
	ix := standing.NewIndex(accts)
	r := ix.Find(standing.Query{PerPage: 50})
	if r.Total != 250 || r.Pages != 5 || len(r.Accounts) != 50 || r.Accounts[0].ID != "0249" || r.Counts[standing.CreditHold] != 25 {
		t.Errorf("all: total %d pages %d first %s counts %v", r.Total, r.Pages, r.Accounts[0].ID, r.Counts)
	}
	if r := ix.Find(standing.Query{Standing: standing.CreditHold, PerPage: 10, Page: 3}); r.Total != 25 || len(r.Accounts) != 5 || r.Page != 3 {
		t.Errorf("credit hold page 3: %+v", r)
	}
	if r := ix.Find(standing.Query{Q: "customer 12", PerPage: 50}); r.Total != 11 { // 12, 120-129
		t.Errorf("search: %d", r.Total)
	}
	if r := ix.Find(standing.Query{Page: 99, PerPage: 100}); r.Page != 3 {
		t.Errorf("a page past the end is the last: %d", r.Page)
	}
	if _, ok := ix.Get(event.ProviderActivePlatform, "ap-main", "0007"); !ok {
		t.Error("get")
	}
}

func BenchmarkFind100k(b *testing.B) {
	accts := make([]standing.Account, 100_000)
	for i := range accts {
		s := []string{standing.Good}
		if i%50 == 0 {
			s = []string{standing.Frozen}
		}
		accts[i] = standing.Account{Provider: event.ProviderActivePlatform, Instance: "ap-main", ID: fmt.Sprintf("%06d", i), Standings: s, ChangedAt: time.Unix(int64(i), 0)}
	}
	ix := standing.NewIndex(accts)
	b.ResetTimer()
	for range b.N {
		ix.Find(standing.Query{PerPage: 50})
	}
}
