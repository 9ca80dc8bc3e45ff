package alibaba

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// BSS version and CreateAgAccount's documented business code.
const (
	BSSVersion = "2017-12-14"
	// CodeEmailUsed is CreateAgAccount's answer for a login email that exists:
	// Success is true, yet nothing was created.
	CodeEmailUsed = "LOGIN_EMAIL_HAS_BEEN_USED"
)

// Each action's success, from its document.
var (
	// GetCustomerAccountInfo: Code "Success".
	customerOK = codes("Success")
	// GetCustomerList: Code "200" (a string; in one published version the
	// number 200); "Success" as its sibling actions answer.
	customerListOK = codes("200", "Success")
)

// agOK is CreateAgAccount's verdict: its sample success answer is Success
// true with the business Code LOGIN_EMAIL_HAS_BEEN_USED (nothing created);
// an earlier published version answers {"code": "SUCCESS"} without Success.
// A created account is Success true (or, without Success, a success Code)
// with any Code that is not an error; the email-used answer is read, not
// failed, so that the caller learns the existing account.
func agOK(code string, success *bool) bool {
	switch {
	case strings.EqualFold(code, CodeEmailUsed):
		return true
	case success != nil:
		return *success && !agFailure[strings.ToUpper(code)]
	}
	return codes("SUCCESS", "Success", "200", "OK")(code, nil)
}

// agFailure are CreateAgAccount's documented error codes, which the earlier
// version answers in a 200 body.
var agFailure = map[string]bool{"NOT_AUTHORIZED": true, "EMAIL_DOMAIN_NOT_AUTHORIZED": true, "NOTAUTHORIZED": true}

// ErrAlreadyExists is returned by CreateAgAccount when the login email is taken.
var ErrAlreadyExists = errors.New("account already exists")

// BSS is a client of the BSS OpenAPI.
type BSS struct{ c *client }

// NewBSS connects to BSS (endpoint business.aliyuncs.com, or upstream-sim).
func NewBSS(cfg Config) (*BSS, error) {
	c, err := newClient(cfg, "bss", BSSVersion, 0)
	if err != nil {
		return nil, err
	}
	return &BSS{c: c}, nil
}

// Customer is the normalised snapshot of GetCustomerAccountInfo. LoginEmail is
// personal data: it stays out of events unless allow-listed.
type Customer struct {
	UID               string
	LoginEmail        string
	HostingStatus     string // FREEZE, TRUSTEESHIP (older: Trusteeship, TrusteeshipCancel), or ""
	CreditLimitStatus string // Freeze, Thaw, Trusteeship, TrusteeshipCancel, or ""
	AccountType       string // "1" enterprise, "0" individual
	IsCertified       bool
	Mpk               string
	Evidence          upstream.Evidence
}

// GetCustomerAccountInfo reads one end customer.
func (b *BSS) GetCustomerAccountInfo(ctx context.Context, ownerID string) (*Customer, error) {
	if ownerID == "" {
		return nil, &upstream.Error{Kind: upstream.ErrRejected, Op: "GetCustomerAccountInfo", Msg: "empty OwnerId"}
	}
	// OwnerId names the customer (the parameter of the action's earlier
	// published version; the current document lists none).
	body, ev, err := b.c.call(ctx, "GetCustomerAccountInfo", map[string]string{"OwnerId": ownerID}, customerOK)
	if err != nil {
		return nil, err
	}
	c, err := DecodeCustomer(body)
	if err != nil {
		e := upstream.Malformed("GetCustomerAccountInfo", ev.RequestID, err)
		e.Account = ownerID
		return nil, e
	}
	c.UID, c.Evidence = ownerID, ev
	return c, nil
}

// DecodeCustomer decodes a GetCustomerAccountInfo answer: a complete Customer
// (without UID, which the caller knows) or an error (an *upstream.FieldError
// names the field). HostingStatus and CreditLimitStatus are what is watched:
// one of them must be there, as text; Mpk, AccountType, IsCertified and
// LoginEmail are read as strings or numbers, booleans or strings, and one
// that cannot be read is left out rather than failing the customer.
func DecodeCustomer(body []byte) (*Customer, error) {
	var w struct {
		Data *struct {
			Mpk               json.RawMessage `json:"Mpk"`
			LoginEmail        json.RawMessage `json:"LoginEmail"`
			HostingStatus     json.RawMessage `json:"HostingStatus"`
			CreditLimitStatus json.RawMessage `json:"CreditLimitStatus"`
			AccountType       json.RawMessage `json:"AccountType"`
			IsCertified       json.RawMessage `json:"IsCertified"`
		} `json:"Data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("GetCustomerAccountInfo JSON: %w", err)
	}
	if w.Data == nil {
		return nil, &upstream.FieldError{Field: "Data", Problem: "missing"}
	}
	d := w.Data
	c := &Customer{}
	var err error
	if c.HostingStatus, err = upstream.Text(d.HostingStatus); err != nil {
		return nil, &upstream.FieldError{Field: "Data.HostingStatus", Problem: "not a string"}
	}
	if c.CreditLimitStatus, err = upstream.Text(d.CreditLimitStatus); err != nil {
		return nil, &upstream.FieldError{Field: "Data.CreditLimitStatus", Problem: "not a string"}
	}
	if c.HostingStatus == "" && c.CreditLimitStatus == "" {
		return nil, &upstream.FieldError{Field: "Data.HostingStatus", Problem: "missing, and so is Data.CreditLimitStatus"}
	}
	c.LoginEmail, _ = upstream.Text(d.LoginEmail)
	c.Mpk, _ = upstream.ID(d.Mpk)
	c.AccountType, _ = upstream.Text(d.AccountType)
	c.IsCertified, _ = upstream.Bool(d.IsCertified)
	return c, nil
}

// GetCustomerList lists the reseller's customers' uids (discovery).
func (b *BSS) GetCustomerList(ctx context.Context) ([]string, error) {
	body, ev, err := b.c.call(ctx, "GetCustomerList", map[string]string{}, customerListOK)
	if err != nil {
		return nil, err
	}
	uids, err := DecodeUIDList(body)
	if err != nil {
		return nil, upstream.Malformed("GetCustomerList", ev.RequestID, err)
	}
	return uids, nil
}

// DecodeUIDList decodes Data.UidList (uids as strings or numbers; the list
// also as an object holding one array, as some RPC answers wrap lists).
func DecodeUIDList(body []byte) ([]string, error) {
	var w struct {
		Data *struct {
			UidList json.RawMessage `json:"UidList"`
		} `json:"Data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("GetCustomerList JSON: %w", err)
	}
	if w.Data == nil {
		return nil, &upstream.FieldError{Field: "Data", Problem: "missing"}
	}
	items, ok := array(w.Data.UidList)
	switch {
	case ok:
	case isNull(w.Data.UidList):
		// No list at all: no customers (a reseller's listing that lost
		// customers is checked account by account before anything is
		// removed).
	default:
		return nil, &upstream.FieldError{Field: "Data.UidList", Problem: "not a list"}
	}
	out := make([]string, 0, len(items))
	for i, raw := range items {
		id, err := upstream.ID(raw)
		if err != nil || id == "" {
			return nil, &upstream.FieldError{Field: fmt.Sprintf("Data.UidList[%d]", i), Problem: "not a uid"}
		}
		out = append(out, id)
	}
	return out, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// array reads a JSON array, or an object whose only member is an array.
func array(raw json.RawMessage) ([]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) == nil {
		return items, true
	}
	var wrap map[string]json.RawMessage
	if json.Unmarshal(raw, &wrap) != nil || len(wrap) != 1 {
		return nil, false
	}
	for _, v := range wrap {
		if json.Unmarshal(v, &items) == nil {
			return items, true
		}
	}
	return nil, false
}

// AgAccount is the input of CreateAgAccount; LoginEmail and AccountAttr are
// required by its document.
type AgAccount struct {
	LoginEmail     string
	AccountAttr    string // the account attribute (the console's Security Settings), e.g. "1"
	EnterpriseName string
	NationCode     string
	ProvinceName   string
	CityName       string
	Postcode       string
}

// AgRelation is CreateAgAccount's AgRelationDto.
type AgRelation struct {
	Type             string
	Pk               string // the member account's uid
	RamAdminRoleName string
	Mpk              string
	Evidence         upstream.Evidence
	// Retried: the account was created by an attempt whose answer was lost
	// (a 5xx, a reset); the retry was answered LOGIN_EMAIL_HAS_BEEN_USED.
	Retried bool
}

// CreateAgAccount creates a member account. A login email that is already used
// comes back as the existing relation with an error wrapping ErrAlreadyExists:
// never as created, unless an earlier attempt of the same call may have
// created it (then it is this call's account, Retried).
func (b *BSS) CreateAgAccount(ctx context.Context, a AgAccount) (*AgRelation, error) {
	if err := a.Validate(); err != nil {
		return nil, &upstream.Error{Kind: upstream.ErrRejected, Op: "CreateAgAccount", Msg: err.Error()}
	}
	params := map[string]string{"LoginEmail": a.LoginEmail, "AccountAttr": a.AccountAttr}
	for k, v := range map[string]string{"EnterpriseName": a.EnterpriseName, "NationCode": a.NationCode,
		"ProvinceName": a.ProvinceName, "CityName": a.CityName, "Postcode": a.Postcode} {
		if v != "" {
			params[k] = v
		}
	}
	body, ev, unsure, err := b.c.callTracked(ctx, "CreateAgAccount", params, agOK)
	if err != nil {
		return nil, err
	}
	rel, used, err := DecodeAgRelation(body)
	if err != nil {
		return nil, upstream.Malformed("CreateAgAccount", ev.RequestID, err)
	}
	rel.Evidence = ev
	switch {
	case used && unsure:
		// An earlier attempt of this call failed without an answer (a 5xx,
		// a reset) and the retry finds the email used: that attempt created
		// the account. It is this call's, not someone else's.
		rel.Retried = true
	case used:
		return rel, fmt.Errorf("CreateAgAccount: %w (uid %s)", ErrAlreadyExists, rel.Pk)
	}
	return rel, nil
}

// ErrMissing is an AgAccount without what CreateAgAccount requires.
var ErrMissing = errors.New("required by CreateAgAccount")

// Validate checks what the document requires: LoginEmail and AccountAttr.
func (a AgAccount) Validate() error {
	var missing []string
	if strings.TrimSpace(a.LoginEmail) == "" {
		missing = append(missing, "LoginEmail")
	}
	if strings.TrimSpace(a.AccountAttr) == "" {
		missing = append(missing, "AccountAttr")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s %w", strings.Join(missing, " and "), ErrMissing)
	}
	return nil
}

// DecodeAgRelation decodes a CreateAgAccount answer; used reports the
// LOGIN_EMAIL_HAS_BEEN_USED case. AgRelationDto is read at the top or, as
// the earlier published version answers, under "data"; Pk and Mpk as
// strings or numbers.
func DecodeAgRelation(body []byte) (rel *AgRelation, used bool, err error) {
	type dto struct {
		Type             json.RawMessage `json:"Type"`
		Pk               json.RawMessage `json:"Pk"`
		RamAdminRoleName json.RawMessage `json:"RamAdminRoleName"`
		Mpk              json.RawMessage `json:"Mpk"`
	}
	var w struct {
		Code json.RawMessage `json:"Code"`
		Dto  *dto            `json:"AgRelationDto"`
		Data *struct {
			Dto *dto `json:"AgRelationDto"`
		} `json:"Data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, false, fmt.Errorf("CreateAgAccount JSON: %w", err)
	}
	code, _ := upstream.Text(w.Code)
	used = strings.EqualFold(code, CodeEmailUsed)
	d := w.Dto
	if d == nil && w.Data != nil {
		d = w.Data.Dto
	}
	if d == nil {
		if used {
			return &AgRelation{}, true, nil
		}
		return nil, false, &upstream.FieldError{Field: "AgRelationDto", Problem: "missing"}
	}
	r := &AgRelation{}
	r.Type, _ = upstream.Text(d.Type)
	r.RamAdminRoleName, _ = upstream.Text(d.RamAdminRoleName)
	if r.Pk, err = upstream.ID(d.Pk); err != nil {
		return nil, false, &upstream.FieldError{Field: "AgRelationDto.Pk", Problem: "not an id"}
	}
	r.Mpk, _ = upstream.ID(d.Mpk)
	if r.Pk == "" && !used {
		return nil, false, &upstream.FieldError{Field: "AgRelationDto.Pk", Problem: "missing"}
	}
	return r, used, nil
}
