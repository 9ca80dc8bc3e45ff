package activeplatform

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// decodeWire fills w from one account object. It is the hot path of every poll:
// the body is validated once by json.Valid, then the known fields are extracted
// in a single pass and everything else skipped. Strings with escapes or
// non-ASCII bytes go through encoding/json, so the result is exactly what
// json.Unmarshal into wireAccount gives (FuzzDecodeMatchesReference holds it to
// that), at a fraction of its cost.
func decodeWire(b []byte, w *wireAccount) error {
	if !json.Valid(b) {
		return errors.New("account JSON: invalid JSON")
	}
	s := &scan{b: b}
	return s.account(w)
}

type scan struct {
	b []byte
	i int
}

func (s *scan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value returns the raw bytes of the next value (input is known valid JSON).
func (s *scan) value() []byte {
	s.ws()
	start := s.i
	s.i, _ = skipValue(s.b, s.i)
	return s.b[start:s.i]
}

// object calls f for each member of the object at the cursor; null is an empty object.
func (s *scan) object(what string, f func(key string, raw []byte) error) error {
	s.ws()
	if s.b[s.i] != '{' {
		if raw := s.value(); string(raw) == "null" {
			return nil
		}
		return fmt.Errorf("account JSON: %s is not an object", what)
	}
	s.i++
	s.ws()
	if s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		key, err := unquote(s.value())
		if err != nil {
			return err
		}
		s.ws()
		s.i++ // ':'
		if err := f(key, s.value()); err != nil {
			return err
		}
		s.ws()
		if s.b[s.i] == '}' {
			s.i++
			return nil
		}
		s.i++ // ','
	}
}

func (s *scan) account(w *wireAccount) error {
	return s.object("account", func(key string, raw []byte) error {
		f := w.field(key)
		if f == nil {
			return nil
		}
		// The field types record a problem rather than fail (see wireAccount).
		return f.UnmarshalJSON(raw)
	})
}

// field is the wire field a key names, matched as encoding/json matches
// (any case): the documented spelling first, as an account's forty-odd keys
// are each looked up.
func (w *wireAccount) field(key string) interface{ UnmarshalJSON([]byte) error } {
	switch key {
	case "id":
		return &w.ID
	case "name":
		return &w.Name
	case "status":
		return &w.Status
	case "balance":
		return &w.Balance
	case "current_debt":
		return &w.CurrentDebt
	case "financial_blocking_threshold":
		return &w.FinancialBlockingThreshold
	case "subscription_credit_limit":
		return &w.SubscriptionCreditLimit
	case "currency":
		return &w.Currency
	case "owner_id":
		return &w.OwnerID
	case "manager_id":
		return &w.ManagerID
	case "account_class":
		return &w.Class
	case "account_type":
		return &w.Type
	case "default_payment_model":
		return &w.PaymentModel
	case "updated_at":
		return &w.UpdatedAt
	case "custom_attributes":
		return &w.CustomAttributes
	}
	ascii := true
	for i := 0; i < len(key); i++ {
		if key[i] >= 0x80 {
			ascii = false
			break
		}
	}
	fold := func(name string) bool {
		// ASCII folds byte for byte: another length is another name
		return (!ascii || len(key) == len(name)) && strings.EqualFold(key, name)
	}
	switch {
	case fold("id"):
		return &w.ID
	case fold("name"):
		return &w.Name
	case fold("status"):
		return &w.Status
	case fold("balance"):
		return &w.Balance
	case fold("current_debt"):
		return &w.CurrentDebt
	case fold("financial_blocking_threshold"):
		return &w.FinancialBlockingThreshold
	case fold("subscription_credit_limit"):
		return &w.SubscriptionCreditLimit
	case fold("currency"):
		return &w.Currency
	case fold("owner_id"):
		return &w.OwnerID
	case fold("manager_id"):
		return &w.ManagerID
	case fold("account_class"):
		return &w.Class
	case fold("account_type"):
		return &w.Type
	case fold("default_payment_model"):
		return &w.PaymentModel
	case fold("updated_at"):
		return &w.UpdatedAt
	case fold("custom_attributes"):
		return &w.CustomAttributes
	}
	return nil
}

// unquote decodes a JSON string literal; plain ASCII without escapes is
// sliced directly, anything else goes through encoding/json.
func unquote(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", fmt.Errorf("%q is not a string", raw)
	}
	plain := true
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}
