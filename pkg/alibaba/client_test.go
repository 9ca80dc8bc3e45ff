package alibaba_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/upstream"
)

var fastRetry = upstream.Retry{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond, MaxRetryAfter: 3 * time.Second}

func cfg(url string) alibaba.Config {
	return alibaba.Config{AccessKeyID: simtest.AccessKeyID, AccessKeySecret: simtest.AccessSecret,
		Endpoint: strings.TrimPrefix(url, "http://"), Protocol: "http", Retry: &fastRetry, Timeout: 2 * time.Second}
}

func bss(t *testing.T, c alibaba.Config) *alibaba.BSS {
	t.Helper()
	b, err := alibaba.NewBSS(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cams(t *testing.T, c alibaba.Config) *alibaba.CAMS {
	t.Helper()
	cl, err := alibaba.NewCAMS(c)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestGetCustomerAccountInfoBothSignatures(t *testing.T) {
	_, url := simtest.Start(t, simtest.Seed())
	for _, legacy := range []bool{false, true} {
		c := cfg(url)
		c.LegacySignature = legacy
		b := bss(t, c)
		got, err := b.GetCustomerAccountInfo(context.Background(), "1234567890123456")
		if err != nil {
			t.Fatalf("legacy=%v: %v", legacy, err)
		}
		if got.HostingStatus != "TRUSTEESHIP" || got.CreditLimitStatus != "Thaw" || got.Mpk != simtest.Mpk || !got.IsCertified || got.AccountType != "1" {
			t.Fatalf("customer %+v", got)
		}
		if got.Evidence.RequestID == "" || len(got.Evidence.ResponseSHA256) != 64 || got.Evidence.Endpoint != "GetCustomerAccountInfo" {
			t.Fatalf("evidence %+v", got.Evidence)
		}
		// Mpk sent as a string decodes the same.
		other, err := b.GetCustomerAccountInfo(context.Background(), "1234567890123457")
		if err != nil || other.Mpk != simtest.Mpk || other.HostingStatus != "FREEZE" || other.CreditLimitStatus != "Freeze" {
			t.Fatalf("%+v %v", other, err)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	cases := []struct {
		name     string
		mutate   func(*alibaba.Config)
		owner    string
		fault    *sim.Fault
		kind     error
		code     string
		requests int
	}{
		{"wrong secret", func(c *alibaba.Config) { c.AccessKeySecret = "not-the-secret" }, "1234567890123456", nil, upstream.ErrUnauthorized, "SignatureDoesNotMatch", 1},
		{"unknown key", func(c *alibaba.Config) { c.AccessKeyID = "LTAIunknown" }, "1234567890123456", nil, upstream.ErrUnauthorized, "InvalidAccessKeyId.NotFound", 1},
		{"no data", nil, "999", nil, upstream.ErrNotFound, "VnoNoDataError", 1},
		{"not authorised", nil, "1234567890123456", &sim.Fault{Status: 400, Code: "NotAuthorized"}, upstream.ErrUnauthorized, "NotAuthorized", 1},
		{"internal error retried", nil, "1234567890123456", &sim.Fault{Status: 500}, upstream.ErrTransient, "InternalError", 3},
		{"internal error once", nil, "1234567890123456", &sim.Fault{Status: 500, Times: 1}, nil, "", 2},
		{"malformed", nil, "1234567890123456", &sim.Fault{Body: sim.BodyMalformed}, upstream.ErrMalformed, "", 1},
		{"html", nil, "1234567890123456", &sim.Fault{Body: sim.BodyWrongContentType}, upstream.ErrMalformed, "", 1},
		{"huge", func(c *alibaba.Config) { c.MaxBody = 1 << 20 }, "1234567890123456", &sim.Fault{Body: sim.BodyHuge}, upstream.ErrMalformed, "", 1},
		{"truncated once", nil, "1234567890123456", &sim.Fault{Body: sim.BodyTruncated, Times: 1}, nil, "", 2},
		{"timeout", func(c *alibaba.Config) { c.Timeout = 200 * time.Millisecond }, "1234567890123456", &sim.Fault{Latency: 2 * time.Second}, upstream.ErrTransient, "", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, url := simtest.Start(t, simtest.Seed())
			if c.fault != nil {
				if err := s.Faults.Set("bss.GetCustomerAccountInfo", *c.fault); err != nil {
					t.Fatal(err)
				}
			}
			conf := cfg(url)
			if c.mutate != nil {
				c.mutate(&conf)
			}
			got, err := bss(t, conf).GetCustomerAccountInfo(context.Background(), c.owner)
			if c.kind == nil {
				if err != nil || got == nil {
					t.Fatalf("want success, got %v", err)
				}
			} else {
				if !errors.Is(err, c.kind) || got != nil {
					t.Fatalf("want %v, got %v", c.kind, err)
				}
				if c.code != "" && upstream.CodeOf(err) != c.code {
					t.Fatalf("code %q, want %q (%v)", upstream.CodeOf(err), c.code, err)
				}
				for _, secret := range []string{simtest.AccessSecret, "not-the-secret"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("secret in error: %v", err)
					}
				}
			}
			if n := s.Stats()["bss.GetCustomerAccountInfo"]; n != c.requests {
				t.Fatalf("simulator saw %d requests, want %d", n, c.requests)
			}
		})
	}
}

func TestThrottlingHonoursRetryAfter(t *testing.T) {
	seed := simtest.Seed()
	seed.Alibaba.RateLimits = map[string]float64{"GetCustomerAccountInfo": 2}
	s, url := simtest.Start(t, seed)
	b := bss(t, cfg(url))
	ctx := context.Background()
	for i := range 4 {
		if _, err := b.GetCustomerAccountInfo(ctx, "1234567890123456"); err != nil {
			t.Fatalf("call %d: throttling must be waited out: %v", i, err)
		}
	}
	if n := s.Stats()["bss.GetCustomerAccountInfo"]; n <= 4 {
		t.Fatalf("the simulator should have throttled some of the calls (saw %d requests)", n)
	}
	// Without retries the caller sees the typed error and the server's retry-after.
	c := cfg(url)
	c.Retry = &upstream.Retry{Attempts: 1}
	one := bss(t, c)
	var err error
	for range 5 {
		if _, err = one.GetCustomerAccountInfo(ctx, "1234567890123456"); err != nil {
			break
		}
	}
	if !errors.Is(err, upstream.ErrThrottled) || upstream.CodeOf(err) != "Throttling.User" || upstream.RetryAfterOf(err) <= 0 {
		t.Fatalf("want Throttling.User with a retry-after, got %v (%v)", err, upstream.RetryAfterOf(err))
	}
}

func TestCAMSThrottlingAndClientPacing(t *testing.T) {
	s, url := simtest.Start(t, simtest.Seed())
	c := cfg(url)
	c.QPS = -1 // no client-side pacing: the server's 10 QPS limit bites
	c.Retry = &upstream.Retry{Attempts: 1}
	unpaced := cams(t, c)
	var mu sync.Mutex
	var throttled []error
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := unpaced.QueryPhoneBusinessProfile(context.Background(), simtest.Space, "8613800000001"); err != nil {
				mu.Lock()
				throttled = append(throttled, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(throttled) == 0 {
		t.Fatal("30 concurrent calls should exceed CAMS's 10 QPS")
	}
	for _, err := range throttled {
		if !errors.Is(err, upstream.ErrThrottled) || upstream.CodeOf(err) != "System.LimitControl" || upstream.RetryAfterOf(err) <= 0 {
			t.Fatalf("want System.LimitControl with retry-after, got %v", err)
		}
	}
	// The default client paces itself at 10 QPS and is never throttled.
	time.Sleep(1100 * time.Millisecond) // let the server's bucket refill
	before := s.Stats()["cams.QueryPhoneBusinessProfile"]
	c = cfg(url)
	c.Retry = &upstream.Retry{Attempts: 1}
	paced := cams(t, c)
	for i := range 15 {
		if _, err := paced.QueryPhoneBusinessProfile(context.Background(), simtest.Space, "8613800000001"); err != nil {
			t.Fatalf("paced call %d: %v", i, err)
		}
	}
	if n := s.Stats()["cams.QueryPhoneBusinessProfile"] - before; n != 15 {
		t.Fatalf("%d requests for 15 calls", n)
	}
}

func TestCreateAgAccount(t *testing.T) {
	s, url := simtest.Start(t, simtest.Seed())
	b := bss(t, cfg(url))
	ctx := context.Background()
	rel, err := b.CreateAgAccount(ctx, alibaba.AgAccount{LoginEmail: "new.member@partner.example", AccountAttr: "1", EnterpriseName: "New Member Ltd"})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Pk == "" || rel.Mpk != simtest.Mpk || rel.Type != "FINACE_CLOUD" {
		t.Fatalf("relation %+v", rel)
	}
	if c, ok := s.State.Customer(rel.Pk); !ok || c.LoginEmail != "new.member@partner.example" {
		t.Fatal("created account not in the simulator")
	}
	again, err := b.CreateAgAccount(ctx, alibaba.AgAccount{LoginEmail: "new.member@partner.example", AccountAttr: "1"})
	if !errors.Is(err, alibaba.ErrAlreadyExists) || again == nil || again.Pk != rel.Pk {
		t.Fatalf("used email: %+v %v", again, err)
	}
	for email, code := range map[string]string{"someone@gmail.example": "EMAIL_DOMAIN_NOT_AUTHORIZED", "not an email": "InvalidParameter.LoginEmail"} {
		_, err := b.CreateAgAccount(ctx, alibaba.AgAccount{LoginEmail: email, AccountAttr: "1"})
		if !errors.Is(err, upstream.ErrRejected) || upstream.CodeOf(err) != code {
			t.Fatalf("%s: %v", email, err)
		}
	}
	before := s.Stats()["bss.CreateAgAccount"]
	for _, a := range []alibaba.AgAccount{{LoginEmail: "x@partner.example"}, {AccountAttr: "1"}} {
		if _, err := b.CreateAgAccount(ctx, a); !errors.Is(err, upstream.ErrRejected) || !strings.Contains(err.Error(), "required") {
			t.Fatalf("%+v: %v", a, err)
		}
	}
	if s.Stats()["bss.CreateAgAccount"] != before {
		t.Fatal("a request without a required parameter went upstream")
	}
	uids, err := b.GetCustomerList(ctx)
	if err != nil || len(uids) != 3 {
		t.Fatalf("uids %v %v", uids, err)
	}
}

func TestCAMSProfileAndDiscovery(t *testing.T) {
	s, url := simtest.Start(t, simtest.Seed())
	c := cams(t, cfg(url))
	ctx := context.Background()
	p, err := c.QueryPhoneBusinessProfile(ctx, simtest.Space, "8613800000001")
	if err != nil {
		t.Fatal(err)
	}
	if p.Vertical != "RETAIL" || len(p.Websites) != 1 || p.Email != "support@acme.example" || p.Evidence.ResponseSHA256 == "" {
		t.Fatalf("profile %+v", p)
	}
	nums, err := c.QueryChatappPhoneNumbers(ctx, simtest.Space)
	if err != nil || len(nums) != 1 || nums[0].PhoneNumber != "8613800000001" {
		t.Fatalf("%+v %v", nums, err)
	}
	for name, call := range map[string]func() error{
		"unknown space":  func() error { _, err := c.QueryPhoneBusinessProfile(ctx, "nope", "1"); return err },
		"unknown number": func() error { _, err := c.QueryPhoneBusinessProfile(ctx, simtest.Space, "1"); return err },
	} {
		if err := call(); !errors.Is(err, upstream.ErrNotFound) {
			t.Errorf("%s: %v", name, err)
		}
	}
	s.Faults.Set("cams.QueryPhoneBusinessProfile", sim.Fault{Status: 200, Code: "Product.Unsubscript"})
	if _, err := c.QueryPhoneBusinessProfile(ctx, simtest.Space, "8613800000001"); !errors.Is(err, upstream.ErrUnauthorized) || upstream.CodeOf(err) != "Product.Unsubscript" {
		t.Fatalf("code in a 200 body must be authoritative: %v", err)
	}
}

func TestCancelledContextReturnsPromptly(t *testing.T) {
	s, url := simtest.Start(t, simtest.Seed())
	s.Faults.Set("bss.GetCustomerAccountInfo", sim.Fault{Latency: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := bss(t, cfg(url)).GetCustomerAccountInfo(ctx, "1234567890123456")
	if !errors.Is(err, upstream.ErrTransient) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("%v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, c := range map[string]alibaba.Config{
		"no key":    {Endpoint: "x"},
		"url":       {AccessKeyID: "a", AccessKeySecret: "b", Endpoint: "https://business.aliyuncs.com/"},
		"bad proto": {AccessKeyID: "a", AccessKeySecret: "b", Endpoint: "x", Protocol: "ftp"},
	} {
		if _, err := alibaba.NewBSS(c); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
