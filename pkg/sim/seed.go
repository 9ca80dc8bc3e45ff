// Package sim is upstream-sim: a simulator of the ActivePlatform vendor API,
// Alibaba Cloud BSS (GetCustomerAccountInfo, GetCustomerList, CreateAgAccount)
// and CAMS (QueryPhoneBusinessProfile, QueryChatappPhoneNumbers), written from
// the providers' published documents, not from accountwatch's clients: the
// documented response models with every field, the documented errors with
// their HTTP statuses, required parameters enforced, signatures checked,
// throttling, pagination, scriptable state, fault injection and timed
// scenarios; WithVariation varies every shape the documents allow.
// simtest.Start holds every answer to the schema written from its document
// (schemas/upstream). It is the upstream of `make run` and of every
// end-to-end test; services/upstream-sim is its command.
package sim

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/config"
)

// Seed is the initial state, loaded from YAML.
type Seed struct {
	ActivePlatform APSeed      `yaml:"activeplatform"`
	Alibaba        AlibabaSeed `yaml:"alibaba"`
}

// APSeed is the ActivePlatform part of a seed.
type APSeed struct {
	// Tokens are the valid api_token values.
	Tokens   []string    `yaml:"tokens"`
	Accounts []APAccount `yaml:"accounts"`
	// Generate adds synthetic accounts (load tests: 100,000 accounts).
	Generate struct {
		Count   int   `yaml:"count"`
		StartID int64 `yaml:"start_id"`
	} `yaml:"generate"`
	// MaxPerPage caps per_page (the vendor API's own cap).
	MaxPerPage int `yaml:"max_per_page"`
}

// APAccount is an ActivePlatform account with every field of the response
// model of "Get Account Info by ID" (the vendor API document), in its order.
// Money fields hold decimal text; nil pointers are JSON nulls (the
// documented example has them: manager_id, the new_owner_* fields).
type APAccount struct {
	ID             int64  `yaml:"id" json:"id"`
	Name           string `yaml:"name" json:"name"`
	AccountClassID *int64 `yaml:"account_class_id" json:"account_class_id"`
	AccountClass   string `yaml:"account_class" json:"account_class"`
	PrimaryName    string `yaml:"primary_name" json:"primary_name"`
	// The contract person and the contact information: personal data.
	FirstName  string `yaml:"first_name" json:"first_name"`
	MiddleName string `yaml:"middle_name" json:"middle_name"`
	LastName   string `yaml:"last_name" json:"last_name"`
	Country    string `yaml:"country" json:"country"`
	Region     string `yaml:"region" json:"region"`
	City       string `yaml:"city" json:"city"`
	Street     string `yaml:"street" json:"street"`
	Building   string `yaml:"building" json:"building"`
	Office     string `yaml:"office" json:"office"`
	Zip        string `yaml:"zip" json:"zip"`
	Phone      string `yaml:"phone" json:"phone"`
	Email      string `yaml:"email" json:"email"`
	// Status is one of the documented "active", "administrative hold",
	// "credit hold", "deleted" (the example spells it "credit_hold": both
	// spellings are served as the seed gives them).
	Status string `yaml:"status" json:"status"`
	// Balance is a "float" in the model and a string in the example: it is
	// sent as a string unless BalanceAsNumber.
	Balance                             *string `yaml:"balance" json:"balance"`
	BalanceAsNumber                     bool    `yaml:"balance_as_number" json:"balance_as_number,omitempty"`
	AccountTypeID                       *int64  `yaml:"account_type_id" json:"account_type_id"`
	AccountType                         string  `yaml:"account_type" json:"account_type"`
	DefaultPaymentModel                 string  `yaml:"default_payment_model" json:"default_payment_model"`
	CurrentDebt                         *string `yaml:"current_debt" json:"current_debt"`
	FinancialBlockingThresholdUseSystem bool    `yaml:"financial_blocking_threshold_use_system" json:"financial_blocking_threshold_use_system"`
	FinancialBlockingThreshold          *string `yaml:"financial_blocking_threshold" json:"financial_blocking_threshold"`
	SubscriptionCreditLimitUseSystem    bool    `yaml:"subscription_credit_limit_use_system" json:"subscription_credit_limit_use_system"`
	SubscriptionCreditLimit             *string `yaml:"subscription_credit_limit" json:"subscription_credit_limit"`
	ManagerID                           *int64  `yaml:"manager_id" json:"manager_id"`
	OwnerID                             *int64  `yaml:"owner_id" json:"owner_id"`
	// An owner change in progress (personal data; null without one).
	NewOwnerFirstName  *string `yaml:"new_owner_first_name" json:"new_owner_first_name"`
	NewOwnerLastName   *string `yaml:"new_owner_last_name" json:"new_owner_last_name"`
	NewOwnerMiddleName *string `yaml:"new_owner_middle_name" json:"new_owner_middle_name"`
	NewOwnerEmail      *string `yaml:"new_owner_email" json:"new_owner_email"`
	TechUserID         *int64  `yaml:"tech_user_id" json:"tech_user_id"`
	BillUserID         *int64  `yaml:"bill_user_id" json:"bill_user_id"`
	// CustomAttributes is the documented array of {name, value}; a value
	// "depends on the attribute": any JSON value.
	CustomAttributes []Attribute `yaml:"custom_attributes" json:"custom_attributes"`
	CreatedAt        time.Time   `yaml:"created_at" json:"created_at"`
	UpdatedAt        time.Time   `yaml:"updated_at" json:"updated_at"`
}

// Attribute is one custom attribute of an account.
type Attribute struct {
	Name  string `yaml:"name" json:"name"`
	Value any    `yaml:"value" json:"value"`
}

// AlibabaSeed is the Alibaba Cloud part of a seed.
type AlibabaSeed struct {
	Credentials []Credential `yaml:"credentials"`
	// Mpk is the reseller's master account (returned in Data.Mpk and AgRelationDto).
	Mpk string `yaml:"mpk"`
	// AgEmailDomains: CreateAgAccount accepts login emails of these domains only
	// (empty: any domain).
	AgEmailDomains []string `yaml:"ag_email_domains"`
	// RateLimits per action, in requests per second per access key. CAMS actions
	// default to 10 QPS, as documented.
	RateLimits map[string]float64 `yaml:"rate_limits"`
	Customers  []BSSCustomer      `yaml:"customers"`
	CustSpaces []CustSpace        `yaml:"cust_spaces"`
	// Generate adds synthetic BSS customers.
	Generate struct {
		Count    int   `yaml:"count"`
		StartUID int64 `yaml:"start_uid"`
	} `yaml:"generate"`
}

// Credential is an AccessKey pair.
type Credential struct {
	AccessKeyID     string `yaml:"access_key_id"`
	AccessKeySecret string `yaml:"access_key_secret"`
	// Deny lists actions this key may not call: BSS answers them with
	// NotAuthorized (HTTP 400), CAMS with Ram.PermissionDeny (HTTP 400).
	Deny []string `yaml:"deny"`
	// Unsubscribed lists products ("cams") the key's account has not
	// subscribed to: Product.Unsubscript (HTTP 400).
	Unsubscribed []string `yaml:"unsubscribed"`
}

// BSSCustomer is a reseller's end customer as GetCustomerAccountInfo reports it.
type BSSCustomer struct {
	UID               string `yaml:"uid" json:"uid"`
	LoginEmail        string `yaml:"login_email" json:"login_email"`
	HostingStatus     string `yaml:"hosting_status" json:"hosting_status"`
	CreditLimitStatus string `yaml:"credit_limit_status" json:"credit_limit_status"`
	AccountType       string `yaml:"account_type" json:"account_type"`
	IsCertified       bool   `yaml:"is_certified" json:"is_certified"`
	// MpkAsString sends Data.Mpk as a string instead of a number (both occur in the docs).
	MpkAsString bool `yaml:"mpk_as_string" json:"mpk_as_string,omitempty"`
}

// CustSpace is an ISV sub-customer space of CAMS with its WhatsApp numbers.
type CustSpace struct {
	ID     string  `yaml:"id" json:"id"`
	Phones []Phone `yaml:"phones" json:"phones"`
}

// Phone is a WhatsApp business number and its profile.
type Phone struct {
	Number       string  `yaml:"number" json:"number"`
	Status       string  `yaml:"status" json:"status"`
	VerifiedName string  `yaml:"verified_name" json:"verified_name"`
	Profile      Profile `yaml:"profile" json:"profile"`
}

// Profile is a WhatsApp business profile.
type Profile struct {
	Vertical          string   `yaml:"vertical" json:"Vertical"`
	Description       string   `yaml:"description" json:"Description"`
	Email             string   `yaml:"email" json:"Email"`
	Address           string   `yaml:"address" json:"Address"`
	ProfilePictureURL string   `yaml:"profile_picture_url" json:"ProfilePictureUrl"`
	Websites          []string `yaml:"websites" json:"Websites"`
	About             string   `yaml:"about" json:"About"`
}

// LoadSeed reads a seed file strictly (unknown keys are errors with their line).
func LoadSeed(path string) (*Seed, error) {
	var s Seed
	if err := config.LoadYAML(path, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks a seed.
func (s *Seed) Validate() error {
	seen := map[int64]bool{}
	for i, a := range s.ActivePlatform.Accounts {
		if a.ID <= 0 {
			return fmt.Errorf("activeplatform.accounts[%d]: id must be positive", i)
		}
		if seen[a.ID] {
			return fmt.Errorf("activeplatform.accounts[%d]: duplicate id %d", i, a.ID)
		}
		seen[a.ID] = true
		for name, v := range map[string]*string{"balance": a.Balance, "current_debt": a.CurrentDebt, "financial_blocking_threshold": a.FinancialBlockingThreshold, "subscription_credit_limit": a.SubscriptionCreditLimit} {
			if v != nil && *v != "" {
				if _, err := decimal.NewFromString(*v); err != nil {
					return fmt.Errorf("activeplatform.accounts[%d].%s: %q is not a decimal", i, name, *v)
				}
			}
		}
		for j, at := range a.CustomAttributes {
			if strings.TrimSpace(at.Name) == "" {
				return fmt.Errorf("activeplatform.accounts[%d].custom_attributes[%d]: name is required", i, j)
			}
		}
	}
	uids := map[string]bool{}
	for i, c := range s.Alibaba.Customers {
		if c.UID == "" || uids[c.UID] {
			return fmt.Errorf("alibaba.customers[%d]: missing or duplicate uid %q", i, c.UID)
		}
		uids[c.UID] = true
	}
	for i, c := range s.Alibaba.Credentials {
		if c.AccessKeyID == "" || c.AccessKeySecret == "" {
			return fmt.Errorf("alibaba.credentials[%d]: access_key_id and access_key_secret are required", i)
		}
	}
	return nil
}

func strp(s string) *string { return &s }
func i64p(v int64) *int64   { return &v }

// generatedAP builds deterministic synthetic accounts: a mix of statuses in
// both spellings, money as strings and numbers, personal data in the contact
// fields and in custom attributes.
func generatedAP(n int, start int64, now time.Time) []APAccount {
	if start == 0 {
		start = 5_000_000
	}
	statuses := []string{"active", "active", "active", "active", "credit hold", "administrative_hold"}
	out := make([]APAccount, n)
	for i := range out {
		id := start + int64(i)
		out[i] = APAccount{
			ID: id, Name: "Synthetic Customer " + strconv.FormatInt(id, 10), AccountClassID: i64p(1), AccountClass: "Default",
			FirstName: "First" + strconv.Itoa(i), LastName: "Last" + strconv.Itoa(i), Country: "US", City: "Springfield",
			Zip: strconv.Itoa(10000 + i%90000), Phone: "+1555" + strconv.Itoa(1000000+i), Email: "customer" + strconv.Itoa(i) + "@example.com",
			Status: statuses[i%len(statuses)], Balance: strp(strconv.Itoa(i%997) + ".50"), BalanceAsNumber: i%2 == 0,
			AccountTypeID: i64p(1564), AccountType: "Personal", DefaultPaymentModel: "prepay",
			CurrentDebt: strp(strconv.Itoa(i%13*10) + ".00"), FinancialBlockingThresholdUseSystem: true, FinancialBlockingThreshold: strp("500.00"),
			SubscriptionCreditLimitUseSystem: true, SubscriptionCreditLimit: strp("0.0"),
			OwnerID: i64p(id + 1), ManagerID: i64p(int64(i%20 + 1)), TechUserID: i64p(id + 1), BillUserID: i64p(id + 1),
			CustomAttributes: []Attribute{{Name: "Passport number", Value: "P" + strconv.Itoa(1000000+i)}, {Name: "Tier", Value: "standard"}},
			CreatedAt:        now.Add(-time.Duration(n-i) * time.Minute), UpdatedAt: now.Add(-time.Duration(n-i) * time.Minute),
		}
	}
	return out
}

func generatedBSS(n int, start int64) []BSSCustomer {
	if start == 0 {
		start = 1_700_000_000_000_000
	}
	out := make([]BSSCustomer, n)
	for i := range out {
		out[i] = BSSCustomer{UID: strconv.FormatInt(start+int64(i), 10), LoginEmail: "member" + strconv.Itoa(i) + "@example.com",
			HostingStatus: "TRUSTEESHIP", CreditLimitStatus: "Thaw", AccountType: "1", IsCertified: true}
	}
	return out
}
