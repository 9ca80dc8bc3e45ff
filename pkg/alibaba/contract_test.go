package alibaba_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/upstream"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// upstreamAnswering serves body with status to every request, counting them.
func upstreamAnswering(t *testing.T, status int, body string) (alibaba.Config, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.Header().Set("x-ratelimit-user-api", "Limit:10,Remain:0,TimeLeft:20,Reset:0")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return cfg(srv.URL), &n
}

// TestDocumentedExamples: the response example of each documented action
// (testdata, copied from the documents; see testdata/README.md) decodes
// through the real client with the values the document shows.
func TestDocumentedExamples(t *testing.T) {
	ctx := context.Background()
	t.Run("BSS GetCustomerAccountInfo", func(t *testing.T) {
		for name, want := range map[string]string{
			"bss.GetCustomerAccountInfo.example": "FREEZE Freeze 1051360339779133 1 true xxxx@aliyun.com",
			"bss.GetCustomerAccountInfo.earlier": "Trusteeship Thaw 123******567 1 true a***@example.net",
		} {
			c, _ := upstreamAnswering(t, 200, fixture(t, name))
			got, err := bss(t, c).GetCustomerAccountInfo(ctx, "1051360339779133")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if s := fmt.Sprint(got.HostingStatus, " ", got.CreditLimitStatus, " ", got.Mpk, " ", got.AccountType, " ", got.IsCertified, " ", got.LoginEmail); s != want {
				t.Errorf("%s: %s, want %s", name, s, want)
			}
		}
	})
	t.Run("BSS CreateAgAccount", func(t *testing.T) {
		c, _ := upstreamAnswering(t, 200, fixture(t, "bss.CreateAgAccount.example"))
		rel, err := bss(t, c).CreateAgAccount(ctx, alibaba.AgAccount{LoginEmail: "685741089H@chinaunicom.cn", AccountAttr: "1"})
		if !errors.Is(err, alibaba.ErrAlreadyExists) || rel == nil || rel.Pk != "1728240534507590" || rel.Mpk != "1785287436011964" || rel.Type != "FINACE_CLOUD" || rel.RamAdminRoleName != "admin-role" {
			t.Fatalf("the documented sample (Success true, LOGIN_EMAIL_HAS_BEEN_USED) is an existing account: %+v %v", rel, err)
		}
		if rel.Evidence.RequestID != "EAE08A27-386C-579E-966D-8853EC3C5D0E" {
			t.Errorf("request id %q", rel.Evidence.RequestID)
		}
		c, _ = upstreamAnswering(t, 200, fixture(t, "bss.CreateAgAccount.earlier"))
		rel, err = bss(t, c).CreateAgAccount(ctx, alibaba.AgAccount{LoginEmail: "a@example.net", AccountAttr: "1"})
		if err != nil || rel.Pk != "502******012" || rel.Type != "BID" || rel.Mpk != "562******369" {
			t.Fatalf("earlier version's created answer: %+v %v", rel, err)
		}
	})
	t.Run("BSS GetCustomerList", func(t *testing.T) {
		for _, name := range []string{"bss.GetCustomerList.example", "bss.GetCustomerList.numbers"} {
			c, _ := upstreamAnswering(t, 200, fixture(t, name))
			uids, err := bss(t, c).GetCustomerList(ctx)
			if err != nil || fmt.Sprint(uids) != "[6210322125051645960]" {
				t.Errorf("%s: %v %v", name, uids, err)
			}
		}
	})
	t.Run("CAMS QueryPhoneBusinessProfile", func(t *testing.T) {
		c, _ := upstreamAnswering(t, 200, fixture(t, "cams.QueryPhoneBusinessProfile.example"))
		p, err := cams(t, c).QueryPhoneBusinessProfile(ctx, "293483938849", "8613800000")
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(p.Vertical, "|", p.Description, "|", p.Email, "|", p.Address, "|", p.ProfilePictureURL, "|", p.Websites, "|", p.About, "|", p.Evidence.RequestID)
		if want := "Retail|Description|example@aliyun.com|Changsha|https://example.img|[https://alibaba.com]|business profile|90E63D28-E31D-1EB2-8939-A94866411B2O"; got != want {
			t.Errorf("%s, want %s", got, want)
		}
	})
	t.Run("CAMS QueryChatappPhoneNumbers", func(t *testing.T) {
		c, _ := upstreamAnswering(t, 200, fixture(t, "cams.QueryChatappPhoneNumbers.example"))
		nums, err := cams(t, c).QueryChatappPhoneNumbers(ctx, "293483938849")
		if err != nil || len(nums) != 1 || nums[0] != (alibaba.PhoneNumber{PhoneNumber: "8613800000", VerifiedName: "Alibaba", Status: "CONNECTED"}) {
			t.Fatalf("%+v %v", nums, err)
		}
	})
}

// TestSuccessPerAction: each action's own success Code, and no other, is a
// success; Codes as numbers and Success as a string are read; Success false
// fails an answer whatever its Code.
func TestSuccessPerAction(t *testing.T) {
	ctx := context.Background()
	data := `"Data":{"HostingStatus":"FREEZE","UidList":["1"]}`
	for _, c := range []struct {
		name, body string
		call       func(alibaba.Config) error
		ok         bool
	}{
		{"GetCustomerAccountInfo Success", `{"Code":"Success","Success":true,` + data + `}`, gcai, true},
		{"GetCustomerAccountInfo Success as strings", `{"Code":"Success","Success":"true",` + data + `}`, gcai, true},
		{"GetCustomerAccountInfo 200 is another action's", `{"Code":"200","Success":true,` + data + `}`, gcai, false},
		{"GetCustomerAccountInfo Success false", `{"Code":"Success","Success":false,` + data + `}`, gcai, false},
		{"GetCustomerList 200", `{"Code":"200",` + data + `}`, gcl, true},
		{"GetCustomerList the number 200", `{"Code":200,"Success":true,` + data + `}`, gcl, true},
		{"GetCustomerList OK is CAMS's", `{"Code":"OK",` + data + `}`, gcl, false},
		{"CAMS OK", `{"Code":"OK","Success":true,"Data":{"Vertical":"Retail"}}`, profile, true},
		{"CAMS Success is BSS's", `{"Code":"Success","Success":true,"Data":{"Vertical":"Retail"}}`, profile, false},
		{"CreateAgAccount created", `{"Code":"Success","Success":true,"AgRelationDto":{"Pk":"17","Type":"FINACE_CLOUD"}}`, create, true},
		{"CreateAgAccount domain refused", `{"Code":"EMAIL_DOMAIN_NOT_AUTHORIZED","Success":false}`, create, false},
		{"CreateAgAccount earlier domain refused", `{"code":"EMAIL_DOMAIN_NOT_AUTHORIZED"}`, create, false},
	} {
		conf, _ := upstreamAnswering(t, 200, c.body)
		if err := c.call(conf); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	_ = ctx
}

func gcai(c alibaba.Config) error {
	b, _ := alibaba.NewBSS(c)
	_, err := b.GetCustomerAccountInfo(context.Background(), "1")
	return err
}

func gcl(c alibaba.Config) error {
	b, _ := alibaba.NewBSS(c)
	_, err := b.GetCustomerList(context.Background())
	return err
}

func profile(c alibaba.Config) error {
	cl, _ := alibaba.NewCAMS(c)
	_, err := cl.QueryPhoneBusinessProfile(context.Background(), "s", "1")
	return err
}

func create(c alibaba.Config) error {
	b, _ := alibaba.NewBSS(c)
	_, err := b.CreateAgAccount(context.Background(), alibaba.AgAccount{LoginEmail: "a@b.example", AccountAttr: "1"})
	return err
}

// TestLimitControlIsThrottling: CAMS's System.LimitControl, as HTTP 400 (its
// error table) or in a 200 body, is throttling: retried after a back-off,
// never anything else; the other documented errors are what they say.
func TestLimitControlIsThrottling(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		kind   error
		tries  int32
	}{
		{400, "System.LimitControl", upstream.ErrThrottled, 3}, // each server its own endpoint: its own pacer
		{200, "System.LimitControl", upstream.ErrThrottled, 3},
		{400, "Product.Unsubscript", upstream.ErrUnauthorized, 1},
		{400, "Ram.PermissionDeny", upstream.ErrUnauthorized, 1},
		{400, "Unknown.ResourceOwnerId", upstream.ErrNotFound, 1},
	} {
		conf, n := upstreamAnswering(t, c.status, fmt.Sprintf(`{"RequestId":"r","Code":%q,"Message":"m"}`, c.code))
		err := profile(conf)
		if !errors.Is(err, c.kind) || upstream.CodeOf(err) != c.code || n.Load() != c.tries {
			t.Errorf("HTTP %d %s: %v after %d requests (want %v after %d)", c.status, c.code, err, n.Load(), c.kind, c.tries)
		}
	}
}

// TestPacingSharedPerAccessKey: CAMS's 10 QPS is per user, so two
// connections with the same AccessKey share one pace: together they are
// never throttled by a server that enforces the limit per key (each paced on
// its own, they would send 20 a second).
func TestPacingSharedPerAccessKey(t *testing.T) {
	s, url := simtest.Start(t, simtest.Seed())
	c := cfg(url)
	c.Retry = &upstream.Retry{Attempts: 1}
	a, b := cams(t, c), cams(t, c)
	var wg sync.WaitGroup
	var errs atomic.Int32
	for _, cl := range []*alibaba.CAMS{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 12 {
				if _, err := cl.QueryPhoneBusinessProfile(context.Background(), simtest.Space, "8613800000001"); err != nil {
					errs.Add(1)
					t.Log(err)
				}
			}
		}()
	}
	wg.Wait()
	if errs.Load() != 0 || s.Stats()["cams.QueryPhoneBusinessProfile"] != 24 {
		t.Fatalf("%d of 24 calls failed (%d requests)", errs.Load(), s.Stats()["cams.QueryPhoneBusinessProfile"])
	}
}

// TestVariedAnswersMeanTheSame: the simulator's Alibaba answers, varied in
// every way the documents allow, decode to what its documented ones do.
func TestVariedAnswersMeanTheSame(t *testing.T) {
	_, plain := simtest.Start(t, simtest.Seed())
	_, varied := simtest.Start(t, simtest.Seed(), sim.WithVariation(3))
	read := func(url string) string {
		ctx := context.Background()
		b, c := bss(t, cfg(url)), cams(t, cfg(url))
		var out []string
		uids, err := b.GetCustomerList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range uids {
			cu, err := b.GetCustomerAccountInfo(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(u, strings.ToUpper(cu.HostingStatus), cu.CreditLimitStatus, cu.Mpk, cu.AccountType, cu.IsCertified))
		}
		p, err := c.QueryPhoneBusinessProfile(ctx, simtest.Space, "8613800000001")
		if err != nil {
			t.Fatal(err)
		}
		nums, err := c.QueryChatappPhoneNumbers(ctx, simtest.Space)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(out, p.Vertical, p.Websites, p.About, nums)
	}
	want := read(plain)
	for range 6 {
		if got := read(varied); got != want {
			t.Fatalf("varied %s\ndocumented %s", got, want)
		}
	}
}

// TestCreateAgAccountAnswerLost: CreateAgAccount is not idempotent. When an
// attempt fails without an answer (the document's InternalError, HTTP 500)
// and the client's retry is answered with the document's sample
// (LOGIN_EMAIL_HAS_BEEN_USED, Success true), the account is the one the
// lost attempt created: returned as this call's (Retried), not as someone
// else's. Found by the clean-room conformance run (conformance/).
func TestCreateAgAccountAnswerLost(t *testing.T) {
	internalError := `{"RequestId":"5E2E3A7C-0000-4B3C-9E4F-000000000500","HostId":"business.aliyuncs.com","Code":"InternalError","Message":"The request processing has failed due to some unknown error."}`
	throttled := `{"RequestId":"5E2E3A7C-0000-4B3C-9E4F-000000000400","HostId":"business.aliyuncs.com","Code":"Throttling.User","Message":"Request was denied due to user flow control."}`
	cases := []struct {
		name        string
		first       int
		firstBody   string
		wantRetried bool
	}{
		{"a 500 before the email-used answer: created by the lost attempt", 500, internalError, true},
		{"throttled before the email-used answer: refused, not served: someone else's", 400, throttled, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json;charset=utf-8")
				if n.Add(1) == 1 {
					w.WriteHeader(tc.first)
					fmt.Fprint(w, tc.firstBody)
					return
				}
				fmt.Fprint(w, fixture(t, "bss.CreateAgAccount.example"))
			}))
			t.Cleanup(srv.Close)
			rel, err := bss(t, cfg(srv.URL)).CreateAgAccount(context.Background(), alibaba.AgAccount{LoginEmail: "685741089H@chinaunicom.cn", AccountAttr: "1"})
			if n.Load() != 2 {
				t.Fatalf("%d requests, want 2", n.Load())
			}
			if rel == nil || rel.Pk != "1728240534507590" {
				t.Fatalf("relation %+v (%v)", rel, err)
			}
			if tc.wantRetried {
				if err != nil || !rel.Retried {
					t.Fatalf("want this call's account (Retried): %+v %v", rel, err)
				}
				return
			}
			if !errors.Is(err, alibaba.ErrAlreadyExists) || rel.Retried {
				t.Fatalf("want ErrAlreadyExists: %+v %v", rel, err)
			}
		})
	}
}
