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
// detection consumes. Contact persons' names, emails and phones (and the
// new_owner_* fields of the documented model) are dropped at decoding; custom
// attributes (which may hold PII) are kept, by their free-text names, for the
// allow-list to filter.
type Account struct {
	ID     string
	Name   string
	Status string // as the upstream spelled it; event.NormalizeEnum folds variants
	// Money, exact. Nil means the upstream sent null (or nothing).
	Balance                    *decimal.Decimal
	CurrentDebt                *decimal.Decimal
	FinancialBlockingThreshold *decimal.Decimal
	SubscriptionCreditLimit    *decimal.Decimal
	// Raw spellings of the money fields, for the events' "raw" values.
	BalanceRaw, CurrentDebtRaw string
	// Currency is not in the documented model; kept when an upstream sends one.
	Currency           string
	OwnerID, ManagerID string
	// Class, Type and PaymentModel are the documented account_class,
	// account_type and default_payment_model (not personal data).
	Class, Type, PaymentModel string
	// CustomAttributes maps an attribute's name ("Passport number") to its
	// value as text: a string as it is, any other JSON value as its literal.
	CustomAttributes map[string]string
	UpdatedAt        time.Time // zero when absent or in a format not understood
	Evidence         upstream.Evidence
}

// wireAccount holds the fields of the documented response model that a
// snapshot uses; every other field is skipped. Each field type records a
// problem instead of failing the decode, so that which field is wrong can be
// said (normalise decides, in a fixed order, what fails the account).
type wireAccount struct {
	ID                         idField    `json:"id"`
	Name                       textField  `json:"name"`
	Status                     textField  `json:"status"`
	Balance                    moneyField `json:"balance"`
	CurrentDebt                moneyField `json:"current_debt"`
	FinancialBlockingThreshold moneyField `json:"financial_blocking_threshold"`
	SubscriptionCreditLimit    moneyField `json:"subscription_credit_limit"`
	Currency                   textField  `json:"currency"`
	OwnerID                    idField    `json:"owner_id"`
	ManagerID                  idField    `json:"manager_id"`
	Class                      textField  `json:"account_class"`
	Type                       textField  `json:"account_type"`
	PaymentModel               textField  `json:"default_payment_model"`
	CustomAttributes           attrsField `json:"custom_attributes"`
	UpdatedAt                  textField  `json:"updated_at"`
}

// moneyField, idField and textField decode in place from the answer (a
// json.RawMessage would copy every field first: this is the poller's hot path).
type moneyField struct {
	d       *decimal.Decimal
	text    string
	problem string
}

func (m *moneyField) UnmarshalJSON(b []byte) error {
	d, text, err := upstream.Money(b)
	*m = moneyField{d: d, text: text}
	if err != nil {
		m.problem = "not a decimal amount"
	}
	return nil
}

type idField struct {
	s       string
	problem string
}

func (f *idField) UnmarshalJSON(b []byte) error {
	s, err := upstream.ID(b)
	*f = idField{s: s}
	if err != nil {
		f.problem = "not an integer id"
	}
	return nil
}

// textField is a string, or the literal text of a number or boolean (an
// upstream that sends "name": 5 has not lost the account); null is absent.
type textField struct {
	s       *string
	problem string
}

func (f *textField) UnmarshalJSON(b []byte) error {
	*f = textField{}
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
	case b[0] == '"':
		s, err := unquote(b)
		if err != nil {
			f.problem = "not a string"
			return nil
		}
		f.s = &s
	case b[0] == '{' || b[0] == '[':
		f.problem = "not a string"
	default:
		s := string(b)
		f.s = &s
	}
	return nil
}

func (f textField) value() string {
	if f.s == nil {
		return ""
	}
	return *f.s
}

// attrsField is custom_attributes: documented as an array of {name, value}
// (a value "depends on the attribute": any JSON value); an object of name →
// value is taken too. Entries without a name, and nulls, are skipped; it
// never fails an account (it is only ever read through the allow-list).
type attrsField struct{ m map[string]string }

func (f *attrsField) UnmarshalJSON(b []byte) error {
	// Called with valid JSON only (by encoding/json, or decodeWire after
	// json.Valid): walked in place, as encoding/json would decode it into
	// []struct{Name, Value json.RawMessage} or map[string]json.RawMessage
	// (attrsReference, which FuzzAttrsMatchReference holds it to), without
	// validating and decoding it twice more.
	f.m = nil
	s := &scan{b: b}
	s.ws()
	if s.i == len(b) {
		return nil
	}
	put := func(name string, v []byte) {
		name = strings.TrimSpace(name)
		if text, ok := attrText(v); ok && name != "" {
			if f.m == nil {
				f.m = map[string]string{}
			}
			f.m[name] = text
		}
	}
	switch b[s.i] {
	case '[':
		s.i++
		for {
			s.ws()
			if b[s.i] == ']' {
				return nil
			}
			it := s.value()
			if it[0] == '{' {
				var name, value []byte
				sub := &scan{b: it}
				sub.object("custom attribute", func(key string, raw []byte) error {
					switch { // encoding/json: fields matched regardless of case, the last one wins
					case strings.EqualFold(key, "name"):
						name = raw
					case strings.EqualFold(key, "value"):
						value = raw
					}
					return nil
				})
				if n, ok := attrText(name); ok {
					put(n, value)
				}
			}
			s.ws()
			if b[s.i] == ',' {
				s.i++
			}
		}
	case '{':
		type member struct {
			key string
			raw []byte
		}
		var ms []member // a key given twice: the last one (as a map would keep it)
		s.object("custom attributes", func(key string, raw []byte) error {
			for i := range ms {
				if ms[i].key == key {
					ms[i].raw = raw
					return nil
				}
			}
			ms = append(ms, member{key, raw})
			return nil
		})
		for _, m := range ms {
			put(m.key, m.raw)
		}
	}
	return nil
}

// attrText is an attribute value as text: a string as it is, null (or
// nothing) absent, anything else its compact JSON.
func attrText(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0 || string(v) == "null":
		return "", false
	case v[0] == '"':
		s, err := unquote(v)
		return s, err == nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		return "", false
	}
	return buf.String(), true
}

// ErrIncomplete is returned for an answer that lacks what a snapshot needs.
var ErrIncomplete = errors.New("incomplete account")

// DecodeError is an account that could not be decoded. AccountID is set when
// the answer's id could be read (the account can be named, and degraded on
// its own); the cause is an *upstream.FieldError when one field is at fault.
type DecodeError struct {
	AccountID string
	Err       error
}

func (e *DecodeError) Error() string {
	if e.AccountID == "" {
		return e.Err.Error()
	}
	return "account " + e.AccountID + ": " + e.Err.Error()
}

func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeAccount decodes one account answer. Either a complete, valid Account
// comes back, or a *DecodeError: never a half-filled snapshot.
func DecodeAccount(body []byte) (*Account, error) {
	var w wireAccount
	if err := decodeWire(body, &w); err != nil {
		return nil, &DecodeError{Err: err}
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
// account's evidence hash. It fails with a *DecodeError.
func DecodeItem(item []byte, ev upstream.Evidence) (*Account, error) {
	var w wireAccount
	if err := decodeWire(item, &w); err != nil {
		return nil, &DecodeError{Err: err}
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

// normalise checks what a snapshot needs, in a fixed order (id, status, the
// money that detection reads), and fails with the first field at fault.
// Fields only carried as attributes (owner_id, manager_id, names of classes,
// updated_at) never fail an account: one that cannot be read is left out.
func (w *wireAccount) normalise() (*Account, error) {
	id := w.ID.s
	if w.ID.problem != "" {
		return nil, &DecodeError{Err: &upstream.FieldError{Field: "id", Problem: w.ID.problem}}
	}
	if id == "" {
		return nil, &DecodeError{Err: fmt.Errorf("%w: %w", ErrIncomplete, &upstream.FieldError{Field: "id", Problem: "missing"})}
	}
	fail := func(field, problem string) error {
		return &DecodeError{AccountID: id, Err: &upstream.FieldError{Field: field, Problem: problem}}
	}
	status := strings.TrimSpace(w.Status.value())
	switch {
	case w.Status.problem != "":
		return nil, fail("status", w.Status.problem)
	case status == "":
		return nil, &DecodeError{AccountID: id, Err: fmt.Errorf("%w: %w", ErrIncomplete, &upstream.FieldError{Field: "status", Problem: "missing"})}
	}
	for _, m := range []struct {
		name string
		f    *moneyField
	}{{"balance", &w.Balance}, {"current_debt", &w.CurrentDebt}, {"financial_blocking_threshold", &w.FinancialBlockingThreshold}, {"subscription_credit_limit", &w.SubscriptionCreditLimit}} {
		if m.f.problem != "" {
			return nil, fail(m.name, m.f.problem)
		}
	}
	a := &Account{
		ID: id, Name: w.Name.value(), Status: status,
		Balance: w.Balance.d, BalanceRaw: w.Balance.text, CurrentDebt: w.CurrentDebt.d, CurrentDebtRaw: w.CurrentDebt.text,
		FinancialBlockingThreshold: w.FinancialBlockingThreshold.d, SubscriptionCreditLimit: w.SubscriptionCreditLimit.d,
		Currency: w.Currency.value(), OwnerID: w.OwnerID.s, ManagerID: w.ManagerID.s,
		Class: w.Class.value(), Type: w.Type.value(), PaymentModel: w.PaymentModel.value(),
		CustomAttributes: w.CustomAttributes.m, UpdatedAt: parseTime(w.UpdatedAt.value()),
	}
	return a, nil
}

// timeLayouts are the date-times an answer may carry: the documented example
// ("2019-01-15T14:58:22.830+03:00", which RFC 3339 parsing covers with any
// fraction and offset), a space for the T, no zone (UTC), or a bare date.
var timeLayouts = []string{time.RFC3339, "2006-01-02 15:04:05Z07:00", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"}

func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
