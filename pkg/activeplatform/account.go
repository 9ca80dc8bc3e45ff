package activeplatform

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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
	ID                         idField              `json:"id"`
	Name                       *string              `json:"name"`
	Status                     *string              `json:"status"`
	Balance                    moneyField           `json:"balance"`
	CurrentDebt                moneyField           `json:"current_debt"`
	FinancialBlockingThreshold moneyField           `json:"financial_blocking_threshold"`
	SubscriptionCreditLimit    moneyField           `json:"subscription_credit_limit"`
	Currency                   *string              `json:"currency"`
	OwnerID                    idField              `json:"owner_id"`
	ManagerID                  idField              `json:"manager_id"`
	CustomAttributes           map[string]attrField `json:"custom_attributes"`
	UpdatedAt                  *string              `json:"updated_at"`
}

// moneyField, idField and attrField decode in place from the answer (a
// json.RawMessage would copy every field first: this is the poller's hot path).
type moneyField struct {
	d    *decimal.Decimal
	text string
}

func (m *moneyField) UnmarshalJSON(b []byte) error {
	d, text, err := upstream.Money(b)
	if err != nil {
		return err
	}
	m.d, m.text = d, text
	return nil
}

type idField string

func (f *idField) UnmarshalJSON(b []byte) error {
	s, err := upstream.ID(b)
	*f = idField(s)
	return err
}

type attrField struct {
	s    string
	null bool
}

// UnmarshalJSON keeps strings as they are and anything else as its literal text.
func (f *attrField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		f.null = true
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &f.s)
	}
	f.s = string(b)
	return nil
}

// ErrIncomplete is returned for an answer that lacks what a snapshot needs.
var ErrIncomplete = errors.New("incomplete account")

// DecodeAccount decodes one account answer. Either a complete, valid Account
// comes back, or an error: never a half-filled snapshot.
func DecodeAccount(body []byte) (*Account, error) {
	var w wireAccount
	if err := decodeWire(body, &w); err != nil {
		return nil, err
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
	items, err := listItems(body)
	if err != nil {
		return nil, err
	}
	out := make([]*Account, 0, len(items))
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		a, err := DecodeItem(it, upstream.Evidence{})
		if err != nil {
			return nil, fmt.Errorf("list item %d: %w", i, err)
		}
		if seen[a.ID] {
			return nil, fmt.Errorf("list item %d: account %s listed twice", i, a.ID)
		}
		seen[a.ID] = true
		out = append(out, a)
	}
	return out, nil
}

// DecodeItem decodes one account of a listing; the SHA-256 of item becomes the
// account's evidence hash.
func DecodeItem(item []byte, ev upstream.Evidence) (*Account, error) {
	var w wireAccount
	if err := decodeWire(item, &w); err != nil {
		return nil, err
	}
	a, err := w.normalise()
	if err != nil {
		return nil, err
	}
	a.Evidence = ev
	sum := sha256.Sum256(item)
	a.Evidence.ResponseSHA256 = hex.EncodeToString(sum[:])
	return a, nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the value starting at i: a string, an object or
// array (by bracket depth, strings skipped), or a run of literal bytes.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			// A table lookup per byte instead of a switch: this loop reads
			// every byte of every listed account.
			for i < len(b) && !inContainer[b[i]] {
				i++
			}
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return i, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			default: // '}', ']'
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
	case ',', ']', '}', ':':
		return i, false
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return i, i > start
		}
		i++
	}
	return i, false
}

// inContainer and inString mark the bytes the scan of an object (or array)
// and of a string must stop at.
var inContainer, inString = func() (c, s [256]bool) {
	for _, x := range `"{}[]` {
		c[x] = true
	}
	s['"'], s['\\'] = true, true
	return
}()

func skipString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		for i < len(b) && !inString[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		if b[i] == '"' {
			return i + 1, true
		}
		i++ // the byte a backslash escapes
	}
	return i, false
}

func (w *wireAccount) normalise() (*Account, error) {
	id := string(w.ID)
	if id == "" {
		return nil, fmt.Errorf("%w: no id", ErrIncomplete)
	}
	if w.Status == nil || strings.TrimSpace(*w.Status) == "" {
		return nil, fmt.Errorf("%w: account %s has no status", ErrIncomplete, id)
	}
	a := &Account{
		ID: id, Status: strings.TrimSpace(*w.Status),
		Balance: w.Balance.d, BalanceRaw: w.Balance.text, CurrentDebt: w.CurrentDebt.d, CurrentDebtRaw: w.CurrentDebt.text,
		FinancialBlockingThreshold: w.FinancialBlockingThreshold.d, SubscriptionCreditLimit: w.SubscriptionCreditLimit.d,
		OwnerID: string(w.OwnerID), ManagerID: string(w.ManagerID),
	}
	if w.Name != nil {
		a.Name = *w.Name
	}
	if w.Currency != nil {
		a.Currency = *w.Currency
	}
	if len(w.CustomAttributes) > 0 {
		a.CustomAttributes = make(map[string]string, len(w.CustomAttributes))
		for k, v := range w.CustomAttributes {
			if !v.null {
				a.CustomAttributes[k] = v.s
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
