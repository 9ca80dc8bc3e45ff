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
		var f interface{ UnmarshalJSON([]byte) error }
		switch {
		case strings.EqualFold(key, "id"):
			f = &w.ID
		case strings.EqualFold(key, "name"):
			f = &w.Name
		case strings.EqualFold(key, "status"):
			f = &w.Status
		case strings.EqualFold(key, "balance"):
			f = &w.Balance
		case strings.EqualFold(key, "current_debt"):
			f = &w.CurrentDebt
		case strings.EqualFold(key, "financial_blocking_threshold"):
			f = &w.FinancialBlockingThreshold
		case strings.EqualFold(key, "subscription_credit_limit"):
			f = &w.SubscriptionCreditLimit
		case strings.EqualFold(key, "currency"):
			f = &w.Currency
		case strings.EqualFold(key, "owner_id"):
			f = &w.OwnerID
		case strings.EqualFold(key, "manager_id"):
			f = &w.ManagerID
		case strings.EqualFold(key, "account_class"):
			f = &w.Class
		case strings.EqualFold(key, "account_type"):
			f = &w.Type
		case strings.EqualFold(key, "default_payment_model"):
			f = &w.PaymentModel
		case strings.EqualFold(key, "updated_at"):
			f = &w.UpdatedAt
		case strings.EqualFold(key, "custom_attributes"):
			f = &w.CustomAttributes
		default:
			return nil
		}
		// The field types record a problem rather than fail (see wireAccount).
		return f.UnmarshalJSON(raw)
	})
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
