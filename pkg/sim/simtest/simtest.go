// Package simtest starts upstream-sim inside tests.
package simtest

import (
	"context"
	"testing"

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

// Seed is a small world with every quirk of the seeds.
func Seed() *sim.Seed {
	s := &sim.Seed{}
	str := func(v string) *string { return &v }
	id := func(v int64) *int64 { return &v }
	s.ActivePlatform.Tokens = []string{APToken}
	s.ActivePlatform.Accounts = []sim.APAccount{
		{ID: 1000123, Name: "Acme Hosting LLC", Status: "active", Balance: "453.2", CurrentDebt: str("0.00"), FinancialBlockingThreshold: str("500.00"),
			Currency: "USD", OwnerID: id(501), ManagerID: id(77), FirstName: "Jane", LastName: "Roe", Email: "jane.roe@acme.example", Phone: "+15550100",
			CustomAttributes: map[string]string{"passport_number": "AB1234567", "tier": "gold"}},
		{ID: 1000124, Name: "Globex Cloud GmbH", Status: "credit hold", Balance: "-120.50", BalanceAsNumber: true, CurrentDebt: str("620.00"),
			FinancialBlockingThreshold: str("600.00"), Currency: "EUR"},
		{ID: 1000125, Name: "Initech", Status: "administrative_hold", Balance: "0"},
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

// Start serves seed on a random loopback port until the test ends.
func Start(t testing.TB, seed *sim.Seed, opts ...sim.Option) (*sim.Server, string) {
	t.Helper()
	s, err := sim.New(seed, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, err := s.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return s, url
}
