// Package simtest starts upstream-sim inside tests.
package simtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/schemas"
	"github.com/accountwatch/accountwatch/pkg/sim"
)

// Credentials of Seed.
const (
	APToken      = "test-ap-token"
	AccessKeyID  = "LTAItestkey"
	AccessSecret = "test-secret"
	Mpk          = "1051360339779133"
	Space        = "293483938849"
)

// Seed is a small world in the documents' shapes: custom attributes as the
// documented array of {name, value} (names of free text, personal data
// among them), every contact field, nulls where the example has them,
// balance as a string and as a number, both spellings of a status.
func Seed() *sim.Seed {
	s := &sim.Seed{}
	str := func(v string) *string { return &v }
	id := func(v int64) *int64 { return &v }
	s.ActivePlatform.Tokens = []string{APToken}
	s.ActivePlatform.Accounts = []sim.APAccount{
		{ID: 1000123, Name: "Acme Hosting LLC", AccountClassID: id(1), AccountClass: "Default", PrimaryName: "Acme Hosting LLC",
			FirstName: "Jane", LastName: "Roe", Country: "US", City: "Springfield", Street: "Main St", Zip: "12345",
			Phone: "+15550100", Email: "jane.roe@acme.example", Status: "active", Balance: str("453.2"),
			AccountTypeID: id(1564), AccountType: "Business", DefaultPaymentModel: "postpay", CurrentDebt: str("0.00"),
			FinancialBlockingThreshold: str("500.00"), SubscriptionCreditLimitUseSystem: true, SubscriptionCreditLimit: str("0.0"),
			OwnerID: id(501), ManagerID: id(77), TechUserID: id(501), BillUserID: id(501),
			CustomAttributes: []sim.Attribute{{Name: "Passport number", Value: "AB1234567"}, {Name: "Tier", Value: "gold"}, {Name: "Seats", Value: 25}}},
		{ID: 1000124, Name: "Globex Cloud GmbH", Status: "credit hold", Balance: str("-120.50"), BalanceAsNumber: true, CurrentDebt: str("620.00"),
			FinancialBlockingThreshold: str("600.00"), OwnerID: id(502)},
		{ID: 1000125, Name: "Initech", Status: "administrative_hold", Balance: str("0"), DefaultPaymentModel: "prepay"},
	}
	s.Alibaba.Mpk = Mpk
	s.Alibaba.Credentials = []sim.Credential{{AccessKeyID: AccessKeyID, AccessKeySecret: AccessSecret}}
	s.Alibaba.AgEmailDomains = []string{"partner.example"}
	s.Alibaba.Customers = []sim.BSSCustomer{
		{UID: "1234567890123456", LoginEmail: "ops@partner.example", HostingStatus: "TRUSTEESHIP", CreditLimitStatus: "Thaw", AccountType: "1", IsCertified: true},
		{UID: "1234567890123457", LoginEmail: "fin@partner.example", HostingStatus: "FREEZE", CreditLimitStatus: "Freeze", AccountType: "0", MpkAsString: true},
	}
	s.Alibaba.CustSpaces = []sim.CustSpace{{ID: Space, Phones: []sim.Phone{{Number: "8613800000001", VerifiedName: "Acme", Profile: sim.Profile{
		Vertical: "RETAIL", Description: "Acme support", Email: "support@acme.example", Address: "1 Cloud Way",
		ProfilePictureURL: "https://cdn.acme.example/logo.png", Websites: []string{"https://acme.example"}, About: "Here to help"}}}}}
	return s
}

// Start serves seed on a random loopback port until the test ends. Every
// answer the simulator gives is held to the schema written from its
// document (schemas/upstream): one that does not validate fails the test.
func Start(t testing.TB, seed *sim.Seed, opts ...sim.Option) (*sim.Server, string) {
	t.Helper()
	s, err := sim.New(seed, opts...)
	if err != nil {
		t.Fatal(err)
	}
	v, err := schemas.Upstream()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{v: v}
	srv := &http.Server{Handler: c.wrap(s), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range c.errs {
			t.Errorf("upstream-sim answered against its document: %s", e)
		}
	})
	return s, "http://" + ln.Addr().String()
}

// checker validates the simulator's answers against the documents' schemas.
type checker struct {
	v    *schemas.Validator
	mu   sync.Mutex
	errs []string
}

// checked counts, per schema, the answers Start's servers validated.
var checked sync.Map

// successCode is each Alibaba action's documented success Code (a 200 body
// with another one is an error answer).
var successCode = map[string][]string{
	"GetCustomerAccountInfo": {"Success"}, "GetCustomerList": {"200"}, "QueryPhoneBusinessProfile": {"OK"}, "QueryChatappPhoneNumbers": {"OK"},
}

var products = map[string]string{"GetCustomerAccountInfo": "bss", "GetCustomerList": "bss", "CreateAgAccount": "bss",
	"QueryPhoneBusinessProfile": "cams", "QueryChatappPhoneNumbers": "cams"}

func (c *checker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if rec.Header().Get(sim.FaultHeader) != "" || strings.HasPrefix(r.URL.Path, "/admin") || r.Context().Err() != nil {
			return
		}
		schema := ""
		switch {
		case r.URL.Path == "/api/vendor/v1/accounts.json" && rec.status == http.StatusOK:
			schema = "activeplatform.GetListOfAccounts"
		case strings.HasPrefix(r.URL.Path, "/api/vendor/v1/accounts/") && rec.status == http.StatusOK:
			schema = "activeplatform.GetAccountInfoByID"
		case r.URL.Path == "/":
			action := r.Header.Get("x-acs-action")
			if action == "" {
				form, _ := url.ParseQuery(string(body))
				action = firstNonEmpty(r.URL.Query().Get("Action"), form.Get("Action"))
			}
			if products[action] == "" {
				return
			}
			schema = "alibaba.error"
			var env struct{ Code json.RawMessage }
			json.Unmarshal(rec.body.Bytes(), &env)
			code := strings.Trim(string(env.Code), `"`)
			if rec.status == http.StatusOK && (action == "CreateAgAccount" || slices.Contains(successCode[action], code)) {
				schema = products[action] + "." + action
			}
		default:
			return
		}
		n, _ := checked.LoadOrStore(schema, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if err := c.v.Validate(schema, rec.body.Bytes()); err != nil {
			c.mu.Lock()
			c.errs = append(c.errs, fmt.Sprintf("%s %s (HTTP %d): %v\n%.600s", r.Method, r.URL.Path, rec.status, err, rec.body.Bytes()))
			c.mu.Unlock()
		}
	})
}

// Checked is how many answers Start's servers validated against schema.
func Checked(schema string) int64 {
	if n, ok := checked.Load(schema); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.Header().Get(sim.FaultHeader) == "" {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}
