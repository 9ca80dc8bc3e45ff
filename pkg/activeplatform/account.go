package activeplatform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// Account is the normalised snapshot of an ActivePlatform account that change
// detection consumes. Contact persons' names, emails and phones are dropped at
// decoding; custom attributes (which may hold PII) are kept for the allow-list
// to filter.
type Account struct {
	ID     string
	Name   string
	Status string // as the upstream spelled it; event.NormalizeEnum folds variants
	// Money, exact. Nil means the upstream sent null.
	Balance                    *decimal.Decimal
	CurrentDebt                *decimal.Decimal
	FinancialBlockingThreshold *decimal.Decimal
	SubscriptionCreditLimit    *decimal.Decimal
	// Raw spellings of the money fields, for the events' "raw" values.
	BalanceRaw, CurrentDebtRaw string
	Currency                   string
	OwnerID, ManagerID         string
	CustomAttributes           map[string]string
	UpdatedAt                  time.Time
	Evidence                   upstream.Evidence
}

type wireAccount struct {
	ID                         json.RawMessage            `json:"id"`
	Name                       *string                    `json:"name"`
	Status                     *string                    `json:"status"`
	Balance                    json.RawMessage            `json:"balance"`
	CurrentDebt                json.RawMessage            `json:"current_debt"`
	FinancialBlockingThreshold json.RawMessage            `json:"financial_blocking_threshold"`
	SubscriptionCreditLimit    json.RawMessage            `json:"subscription_credit_limit"`
	Currency                   *string                    `json:"currency"`
	OwnerID                    json.RawMessage            `json:"owner_id"`
	ManagerID                  json.RawMessage            `json:"manager_id"`
	CustomAttributes           map[string]json.RawMessage `json:"custom_attributes"`
	UpdatedAt                  *string                    `json:"updated_at"`
}

// ErrIncomplete is returned for an answer that lacks what a snapshot needs.
var ErrIncomplete = errors.New("incomplete account")

// DecodeAccount decodes one account answer. Either a complete, valid Account
// comes back, or an error: never a half-filled snapshot.
func DecodeAccount(body []byte) (*Account, error) {
	var w wireAccount
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("account JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("account JSON: trailing data")
	}
	a, err := w.normalise()
	if err != nil {
		return nil, err
	}
	a.Evidence.ResponseSHA256 = upstream.Hash(body)
	return a, nil
}

// DecodeList decodes a listing page: a JSON array of accounts (or an object
// with an "accounts" array). One bad account fails the page.
func DecodeList(body []byte) ([]*Account, error) {
	trimmed := bytes.TrimSpace(body)
	var items []json.RawMessage
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var env struct {
			Accounts *[]json.RawMessage `json:"accounts"`
		}
		if err := json.Unmarshal(trimmed, &env); err != nil {
			return nil, fmt.Errorf("list JSON: %w", err)
		}
		if env.Accounts == nil {
			return nil, errors.New("list JSON: no accounts array")
		}
		items = *env.Accounts
	} else if err := json.Unmarshal(trimmed, &items); err != nil {
		return nil, fmt.Errorf("list JSON: %w", err)
	}
	out := make([]*Account, 0, len(items))
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		var w wireAccount
		if err := json.Unmarshal(it, &w); err != nil {
			return nil, fmt.Errorf("list item %d: %w", i, err)
		}
		a, err := w.normalise()
		if err != nil {
			return nil, fmt.Errorf("list item %d: %w", i, err)
		}
		if seen[a.ID] {
			return nil, fmt.Errorf("list item %d: account %s listed twice", i, a.ID)
		}
		seen[a.ID] = true
		a.Evidence.ResponseSHA256 = upstream.Hash(it)
		out = append(out, a)
	}
	return out, nil
}

func (w *wireAccount) normalise() (*Account, error) {
	id, err := upstream.ID(w.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: id: %v", ErrIncomplete, err)
	}
	if id == "" {
		return nil, fmt.Errorf("%w: no id", ErrIncomplete)
	}
	if w.Status == nil || strings.TrimSpace(*w.Status) == "" {
		return nil, fmt.Errorf("%w: account %s has no status", ErrIncomplete, id)
	}
	a := &Account{ID: id, Status: strings.TrimSpace(*w.Status)}
	if w.Name != nil {
		a.Name = *w.Name
	}
	if w.Currency != nil {
		a.Currency = *w.Currency
	}
	money := []struct {
		name string
		raw  json.RawMessage
		dst  **decimal.Decimal
		text *string
	}{
		{"balance", w.Balance, &a.Balance, &a.BalanceRaw},
		{"current_debt", w.CurrentDebt, &a.CurrentDebt, &a.CurrentDebtRaw},
		{"financial_blocking_threshold", w.FinancialBlockingThreshold, &a.FinancialBlockingThreshold, nil},
		{"subscription_credit_limit", w.SubscriptionCreditLimit, &a.SubscriptionCreditLimit, nil},
	}
	for _, m := range money {
		d, text, err := upstream.Money(m.raw)
		if err != nil {
			return nil, fmt.Errorf("%w: account %s: %s: %v", ErrIncomplete, id, m.name, err)
		}
		*m.dst = d
		if m.text != nil {
			*m.text = text
		}
	}
	if a.OwnerID, err = upstream.ID(w.OwnerID); err != nil {
		return nil, fmt.Errorf("%w: account %s: owner_id: %v", ErrIncomplete, id, err)
	}
	if a.ManagerID, err = upstream.ID(w.ManagerID); err != nil {
		return nil, fmt.Errorf("%w: account %s: manager_id: %v", ErrIncomplete, id, err)
	}
	if len(w.CustomAttributes) > 0 {
		a.CustomAttributes = make(map[string]string, len(w.CustomAttributes))
		for k, v := range w.CustomAttributes {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(bytes.TrimSpace(v)) // numbers, booleans: their literal text
			}
			if s != "null" {
				a.CustomAttributes[k] = s
			}
		}
	}
	if w.UpdatedAt != nil && *w.UpdatedAt != "" {
		t, err := time.Parse(time.RFC3339, *w.UpdatedAt)
		if err != nil {
			return nil, fmt.Errorf("%w: account %s: updated_at %q: %v", ErrIncomplete, id, *w.UpdatedAt, err)
		}
		a.UpdatedAt = t.UTC()
	}
	return a, nil
}
