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

// BSS versions and success code.
const (
	BSSVersion = "2017-12-14"
	bssOK      = "Success"
	// CodeEmailUsed is CreateAgAccount's answer for a login email that exists:
	// Success is true, yet nothing was created.
	CodeEmailUsed = "LOGIN_EMAIL_HAS_BEEN_USED"
)

// ErrAlreadyExists is returned by CreateAgAccount when the login email is taken.
var ErrAlreadyExists = errors.New("account already exists")

// BSS is a client of the BSS OpenAPI.
type BSS struct{ c *client }

// NewBSS connects to BSS (endpoint business.aliyuncs.com, or upstream-sim).
func NewBSS(cfg Config) (*BSS, error) {
	c, err := newClient(cfg, "bss", BSSVersion, bssOK, 0)
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
	body, ev, err := b.c.call(ctx, "GetCustomerAccountInfo", map[string]string{"OwnerId": ownerID})
	if err != nil {
		return nil, err
	}
	c, err := DecodeCustomer(body)
	if err != nil {
		return nil, &upstream.Error{Kind: upstream.ErrMalformed, Op: "GetCustomerAccountInfo", RequestID: ev.RequestID, Msg: err.Error()}
	}
	c.UID, c.Evidence = ownerID, ev
	return c, nil
}

// DecodeCustomer decodes a GetCustomerAccountInfo answer: a complete Customer
// (without UID, which the caller knows) or an error.
func DecodeCustomer(body []byte) (*Customer, error) {
	var w struct {
		Data *struct {
			Mpk               json.RawMessage `json:"Mpk"`
			LoginEmail        *string         `json:"LoginEmail"`
			HostingStatus     *string         `json:"HostingStatus"`
			CreditLimitStatus *string         `json:"CreditLimitStatus"`
			AccountType       json.RawMessage `json:"AccountType"`
			IsCertified       json.RawMessage `json:"IsCertified"`
		} `json:"Data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("GetCustomerAccountInfo JSON: %w", err)
	}
	if w.Data == nil {
		return nil, errors.New("GetCustomerAccountInfo: no Data")
	}
	d := w.Data
	if d.HostingStatus == nil && d.CreditLimitStatus == nil {
		return nil, errors.New("GetCustomerAccountInfo: Data has neither HostingStatus nor CreditLimitStatus")
	}
	c := &Customer{HostingStatus: deref(d.HostingStatus), CreditLimitStatus: deref(d.CreditLimitStatus), LoginEmail: deref(d.LoginEmail)}
	var err error
	if c.Mpk, err = upstream.ID(d.Mpk); err != nil {
		return nil, fmt.Errorf("GetCustomerAccountInfo: Mpk: %w", err)
	}
	if c.AccountType, err = upstream.ID(d.AccountType); err != nil {
		return nil, fmt.Errorf("GetCustomerAccountInfo: AccountType: %w", err)
	}
	if c.IsCertified, err = boolish(d.IsCertified); err != nil {
		return nil, fmt.Errorf("GetCustomerAccountInfo: IsCertified: %w", err)
	}
	return c, nil
}

// GetCustomerList lists the reseller's customers' uids (discovery).
func (b *BSS) GetCustomerList(ctx context.Context) ([]string, error) {
	body, ev, err := b.c.call(ctx, "GetCustomerList", map[string]string{})
	if err != nil {
		return nil, err
	}
	uids, err := DecodeUIDList(body)
	if err != nil {
		return nil, &upstream.Error{Kind: upstream.ErrMalformed, Op: "GetCustomerList", RequestID: ev.RequestID, Msg: err.Error()}
	}
	return uids, nil
}

// DecodeUIDList decodes Data.UidList (uids as strings or numbers).
func DecodeUIDList(body []byte) ([]string, error) {
	var w struct {
		Data *struct {
			UidList *[]json.RawMessage `json:"UidList"`
		} `json:"Data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("GetCustomerList JSON: %w", err)
	}
	if w.Data == nil || w.Data.UidList == nil {
		return nil, errors.New("GetCustomerList: no Data.UidList")
	}
	out := make([]string, 0, len(*w.Data.UidList))
	for i, raw := range *w.Data.UidList {
		id, err := upstream.ID(raw)
		if err != nil || id == "" {
			return nil, fmt.Errorf("GetCustomerList: UidList[%d] %s is not a uid", i, raw)
		}
		out = append(out, id)
	}
	return out, nil
}

// AgAccount is the input of CreateAgAccount.
type AgAccount struct {
	LoginEmail     string
	AccountAttr    string // "1" enterprise
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
}

// CreateAgAccount creates a member account. A login email that is already used
// comes back as the existing relation with an error wrapping ErrAlreadyExists:
// never as created.
func (b *BSS) CreateAgAccount(ctx context.Context, a AgAccount) (*AgRelation, error) {
	if a.LoginEmail == "" {
		return nil, &upstream.Error{Kind: upstream.ErrRejected, Op: "CreateAgAccount", Msg: "empty LoginEmail"}
	}
	params := map[string]string{"LoginEmail": a.LoginEmail}
	for k, v := range map[string]string{"AccountAttr": a.AccountAttr, "EnterpriseName": a.EnterpriseName, "NationCode": a.NationCode,
		"ProvinceName": a.ProvinceName, "CityName": a.CityName, "Postcode": a.Postcode} {
		if v != "" {
			params[k] = v
		}
	}
	body, ev, err := b.c.call(ctx, "CreateAgAccount", params, CodeEmailUsed)
	if err != nil {
		return nil, err
	}
	rel, used, err := DecodeAgRelation(body)
	if err != nil {
		return nil, &upstream.Error{Kind: upstream.ErrMalformed, Op: "CreateAgAccount", RequestID: ev.RequestID, Msg: err.Error()}
	}
	rel.Evidence = ev
	if used {
		return rel, fmt.Errorf("CreateAgAccount: %w (uid %s)", ErrAlreadyExists, rel.Pk)
	}
	return rel, nil
}

// DecodeAgRelation decodes a CreateAgAccount answer; used reports the
// LOGIN_EMAIL_HAS_BEEN_USED case.
func DecodeAgRelation(body []byte) (rel *AgRelation, used bool, err error) {
	var w struct {
		Code string `json:"Code"`
		Dto  *struct {
			Type             string          `json:"Type"`
			Pk               json.RawMessage `json:"Pk"`
			RamAdminRoleName string          `json:"RamAdminRoleName"`
			Mpk              json.RawMessage `json:"Mpk"`
		} `json:"AgRelationDto"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, false, fmt.Errorf("CreateAgAccount JSON: %w", err)
	}
	used = w.Code == CodeEmailUsed
	if w.Dto == nil {
		if used {
			return &AgRelation{}, true, nil
		}
		return nil, false, errors.New("CreateAgAccount: no AgRelationDto")
	}
	r := &AgRelation{Type: w.Dto.Type, RamAdminRoleName: w.Dto.RamAdminRoleName}
	if r.Pk, err = upstream.ID(w.Dto.Pk); err != nil {
		return nil, false, fmt.Errorf("CreateAgAccount: Pk: %w", err)
	}
	if r.Mpk, err = upstream.ID(w.Dto.Mpk); err != nil {
		return nil, false, fmt.Errorf("CreateAgAccount: Mpk: %w", err)
	}
	if r.Pk == "" && !used {
		return nil, false, errors.New("CreateAgAccount: AgRelationDto without Pk")
	}
	return r, used, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

// boolish accepts true/false as JSON booleans or strings; null is false.
func boolish(raw json.RawMessage) (bool, error) {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "", "null", "false", `"false"`, `"0"`, "0":
		return false, nil
	case "true", `"true"`, `"1"`, "1":
		return true, nil
	}
	return false, fmt.Errorf("%s is not a boolean", raw)
}
