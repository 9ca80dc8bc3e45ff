package activeplatform_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/activeplatform"
	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// serve answers with body, as an upstream would (a listing's pages after the
// first are empty).
func serve(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("X-Request-Id", "req-1")
		if p := r.URL.Query().Get("page"); p != "" && p != "1" {
			fmt.Fprint(w, "[]")
			return
		}
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestDocumentedExample: the response example of the document "Get Account
// Info by ID" (testdata, copied as data) decodes through the real client, with
// the values the document shows: custom_attributes as the documented array,
// balance a string, status "credit_hold", nulls, new_owner_* fields, dates
// with milliseconds and an offset.
func TestDocumentedExample(t *testing.T) {
	body, err := os.ReadFile("testdata/activeplatform.GetAccountInfoByID.example.json")
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, serve(t, string(body)), "vY5fwetestK3gJXZH5uHCw")
	a, err := c.Get(context.Background(), "431")
	if err != nil {
		t.Fatalf("the documented example does not decode: %v", err)
	}
	want := map[string]string{
		"id": a.ID, "name": a.Name, "status": a.Status, "balance": a.Balance.String(), "balance raw": a.BalanceRaw,
		"current_debt": a.CurrentDebt.String(), "financial_blocking_threshold": a.FinancialBlockingThreshold.String(),
		"subscription_credit_limit": a.SubscriptionCreditLimit.String(), "owner_id": a.OwnerID, "manager_id": a.ManagerID,
		"account_class": a.Class, "account_type": a.Type, "default_payment_model": a.PaymentModel,
		"updated_at": a.UpdatedAt.Format("2006-01-02T15:04:05.000Z07:00"), "request": a.Evidence.RequestID,
	}
	for k, v := range map[string]string{
		"id": "431", "name": "Jane Lane", "status": "credit_hold", "balance": "453.2", "balance raw": "453.2", "current_debt": "24",
		"financial_blocking_threshold": "100", "subscription_credit_limit": "0", "owner_id": "23", "manager_id": "",
		"account_class": "Default", "account_type": "Personal", "default_payment_model": "prepay",
		"updated_at": "2019-05-11T22:22:52.853Z", "request": "req-1",
	} {
		if want[k] != v {
			t.Errorf("%s = %q, want %q", k, want[k], v)
		}
	}
	attrs := map[string]string{"Personal number": "A4411111BB1123", "Birth date": "10.08.2016", "Issued": "01.07.2016",
		"Passport number": "1124111111123", "Issued by": "Government"}
	if fmt.Sprint(a.CustomAttributes) != fmt.Sprint(attrs) {
		t.Errorf("custom attributes %v, want %v", a.CustomAttributes, attrs)
	}
	// The example as a listing page (the listing's model is the same account).
	list := client(t, serve(t, "["+string(body)+"]"), "tok")
	var ids []string
	if err := list.List(context.Background(), activeplatform.ListOptions{}, func(a *activeplatform.Account) error {
		ids = append(ids, a.ID+"="+a.Status)
		return nil
	}); err != nil || strings.Join(ids, ",") != "431=credit_hold" {
		t.Fatalf("listed %v: %v", ids, err)
	}
}

// TestLiberalDecoding: every shape the documents allow decodes; a field of an
// unexpected type that a snapshot does not need never fails the account; one
// it needs fails it with the field named, never its value.
func TestLiberalDecoding(t *testing.T) {
	base := `"id":7,"status":"active"`
	for _, c := range []struct {
		name, extra string
		check       func(*activeplatform.Account) bool
	}{
		{"attribute values of every type", `"custom_attributes":[{"name":"S","value":"x"},{"name":"N","value":12.50},{"name":"B","value":false},{"name":"Null","value":null},{"name":"L","value":[1,"a"]},{"name":"O","value":{"k":1}},{"value":"nameless"},null,5,{"name":" Padded ","value":"p"}]`,
			func(a *activeplatform.Account) bool {
				return fmt.Sprint(a.CustomAttributes) == `map[B:false L:[1,"a"] N:12.50 O:{"k":1} Padded:p S:x]`
			}},
		{"attributes as an object", `"custom_attributes":{"Tier":"gold","n":1}`, func(a *activeplatform.Account) bool {
			return a.CustomAttributes["Tier"] == "gold" && a.CustomAttributes["n"] == "1"
		}},
		{"attributes null", `"custom_attributes":null`, func(a *activeplatform.Account) bool { return a.CustomAttributes == nil }},
		{"attributes of another type", `"custom_attributes":"none"`, func(a *activeplatform.Account) bool { return a.CustomAttributes == nil }},
		{"status with a space", `"status":"credit hold"`, func(a *activeplatform.Account) bool { return a.Status == "credit hold" }},
		{"money as strings and numbers", `"balance":-1.5,"current_debt":"24.0","financial_blocking_threshold":100,"subscription_credit_limit":" 0.0 "`,
			func(a *activeplatform.Account) bool {
				return a.Balance.String() == "-1.5" && a.CurrentDebt.String() == "24" && a.CurrentDebtRaw == "24.0" && a.FinancialBlockingThreshold.String() == "100" && a.SubscriptionCreditLimit.IsZero()
			}},
		{"nulls everywhere", `"name":null,"balance":null,"current_debt":null,"owner_id":null,"manager_id":null,"updated_at":null,"account_class":null`,
			func(a *activeplatform.Account) bool {
				return a.Name == "" && a.Balance == nil && a.CurrentDebt == nil && a.OwnerID == ""
			}},
		{"missing optional fields", ``, func(a *activeplatform.Account) bool { return a.ID == "7" && a.CurrentDebt == nil }},
		{"dates with offsets and without", `"updated_at":"2019-05-12T01:22:52.853+03:00"`, func(a *activeplatform.Account) bool { return a.UpdatedAt.Format("15:04:05.000") == "22:22:52.853" }},
		{"a date not understood", `"updated_at":"last Tuesday"`, func(a *activeplatform.Account) bool { return a.UpdatedAt.IsZero() }},
		{"an id as a string", `"id":"7"`, func(a *activeplatform.Account) bool { return a.ID == "7" }},
		{"unused fields of any type", `"email":{"x":1},"phone":[1],"new_owner_email":7,"account_type_id":"x","tech_user_id":{},"x_future":[{"y":null}]`,
			func(a *activeplatform.Account) bool { return a.ID == "7" }},
		{"used-only-as-attribute fields of a wrong type", `"owner_id":{"id":1},"manager_id":1.5,"name":42,"account_class":{"a":1}`,
			func(a *activeplatform.Account) bool {
				return a.OwnerID == "" && a.ManagerID == "" && a.Name == "42" && a.Class == ""
			}},
	} {
		body := "{" + base
		if c.extra != "" {
			body += "," + c.extra
		}
		body += "}"
		a, err := activeplatform.DecodeAccount([]byte(body))
		if err != nil || !c.check(a) {
			t.Errorf("%s: %+v, %v", c.name, a, err)
		}
	}
	for _, c := range []struct{ name, body, field, account string }{
		{"money not a number", `{"id":7,"status":"active","current_debt":"lots of it"}`, "current_debt", "7"},
		{"money of another type", `{"id":7,"status":"active","balance":true}`, "balance", "7"},
		{"status an object", `{"id":7,"status":{"v":"active"}}`, "status", "7"},
		{"no status", `{"id":7}`, "status", "7"},
		{"id not an integer", `{"id":7.5,"status":"active"}`, "id", ""},
		{"no id", `{"status":"active"}`, "id", ""},
	} {
		_, err := activeplatform.DecodeAccount([]byte(c.body))
		var de *activeplatform.DecodeError
		var fe *upstream.FieldError
		if !errors.As(err, &de) || !errors.As(err, &fe) || fe.Field != c.field || de.AccountID != c.account {
			t.Errorf("%s: %v (want field %s of account %q)", c.name, err, c.field, c.account)
		}
		if strings.Contains(fmt.Sprint(err), "lots of it") {
			t.Errorf("%s: the value is in the error: %v", c.name, err)
		}
	}
}

// TestListingShapes: a page is the documented array, or an object holding it.
func TestListingShapes(t *testing.T) {
	for body, want := range map[string]int{
		`[{"id":1,"status":"active"},{"id":2,"status":"deleted"}]`:            2,
		`{"accounts":[{"id":1,"status":"active"}],"total":1}`:                 1,
		`{"data":[{"id":1,"status":"active"}],"meta":{"total":1}}`:            1,
		`{"accounts":[],"data":[{"id":1,"status":"active"}]}`:                 0,
		`{"a":[{"id":1,"status":"active"}],"b":[{"id":2,"status":"active"}]}`: -1,
		`{"total":1}`: -1,
	} {
		list, err := activeplatform.DecodeList([]byte(body))
		if want < 0 && err == nil || want >= 0 && (err != nil || len(list) != want) {
			t.Errorf("%s: %d accounts, %v", body, len(list), err)
		}
	}
}

// TestVariedAnswersMeanTheSame: the simulator's answers varied in every way
// the document allows decode to the same accounts as its documented ones.
func TestVariedAnswersMeanTheSame(t *testing.T) {
	seed := simtest.Seed()
	seed.ActivePlatform.Generate.Count = 30
	_, plainURL := simtest.Start(t, seed)
	_, variedURL := simtest.Start(t, seed, sim.WithVariation(7))
	snapshot := func(url string) map[string]string {
		out := map[string]string{}
		if err := client(t, url, simtest.APToken).List(context.Background(), activeplatform.ListOptions{PerPage: 7}, func(a *activeplatform.Account) error {
			money := func(d interface{ String() string }, isNil bool) string {
				if isNil {
					return "null"
				}
				return d.String()
			}
			out[a.ID] = fmt.Sprint(a.Name, "|", strings.ReplaceAll(a.Status, " ", "_"), "|", money(a.Balance, a.Balance == nil), "|",
				money(a.CurrentDebt, a.CurrentDebt == nil), "|", money(a.FinancialBlockingThreshold, a.FinancialBlockingThreshold == nil), "|",
				a.OwnerID, "|", a.ManagerID, "|", a.CustomAttributes["Tier"], a.CustomAttributes["Passport number"], "|", a.UpdatedAt.Unix())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := snapshot(plainURL)
	if len(want) != 33 {
		t.Fatalf("%d accounts", len(want))
	}
	for range 5 {
		if got := snapshot(variedURL); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("varied:\n%v\ndocumented:\n%v", got, want)
		}
	}
	for _, id := range []string{"1000123", "1000124", "1000125"} {
		a, err := client(t, variedURL, simtest.APToken).Get(context.Background(), id)
		if err != nil || want[id] == "" {
			t.Fatalf("%s: %v", id, err)
		}
		_ = a
	}
}
