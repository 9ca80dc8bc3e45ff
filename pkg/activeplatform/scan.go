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
		var err error
		switch {
		case strings.EqualFold(key, "id"):
			err = w.ID.UnmarshalJSON(raw)
		case strings.EqualFold(key, "name"):
			w.Name, err = optString(raw, key)
		case strings.EqualFold(key, "status"):
			w.Status, err = optString(raw, key)
		case strings.EqualFold(key, "balance"):
			err = w.Balance.UnmarshalJSON(raw)
		case strings.EqualFold(key, "current_debt"):
			err = w.CurrentDebt.UnmarshalJSON(raw)
		case strings.EqualFold(key, "financial_blocking_threshold"):
			err = w.FinancialBlockingThreshold.UnmarshalJSON(raw)
		case strings.EqualFold(key, "subscription_credit_limit"):
			err = w.SubscriptionCreditLimit.UnmarshalJSON(raw)
		case strings.EqualFold(key, "currency"):
			w.Currency, err = optString(raw, key)
		case strings.EqualFold(key, "owner_id"):
			err = w.OwnerID.UnmarshalJSON(raw)
		case strings.EqualFold(key, "manager_id"):
			err = w.ManagerID.UnmarshalJSON(raw)
		case strings.EqualFold(key, "updated_at"):
			w.UpdatedAt, err = optString(raw, key)
		case strings.EqualFold(key, "custom_attributes"):
			if string(raw) == "null" {
				w.CustomAttributes = nil
				return nil
			}
			inner := &scan{b: raw}
			if w.CustomAttributes == nil {
				w.CustomAttributes = map[string]attrField{}
			}
			err = inner.object("custom_attributes", func(k string, v []byte) error {
				var f attrField
				if err := f.UnmarshalJSON(v); err != nil {
					return err
				}
				w.CustomAttributes[k] = f
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("account JSON: %s: %w", key, err)
		}
		return nil
	})
}

// optString decodes a JSON string or null into a *string, as encoding/json does.
func optString(raw []byte, key string) (*string, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '"' {
		return nil, fmt.Errorf("%s is not a string", key)
	}
	s, err := unquote(raw)
	return &s, err
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
