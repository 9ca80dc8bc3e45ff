package activeplatform

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// DecodeReference decodes with encoding/json: the reference decodeWire must match.
func DecodeReference(body []byte) (*Account, error) {
	var w wireAccount
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	return w.normalise()
}

// DecodeFast decodes with decodeWire.
func DecodeFast(body []byte) (*Account, error) {
	var w wireAccount
	if err := decodeWire(body, &w); err != nil {
		return nil, err
	}
	return w.normalise()
}

// ListItems exposes the page splitter to the fuzzer.
func ListItems(body []byte) ([][]byte, error) { return listItems(body) }

// WalkPage walks a page as a listing does, with predict (nil: none), and
// returns the items and fingerprints it handed out before it ended or failed.
func WalkPage(body []byte, predict Predictor) ([][]byte, []upstream.Fingerprint, error) {
	var items [][]byte
	var fps []upstream.Fingerprint
	_, err := walkPage(body, predict, func(item []byte, fp upstream.Fingerprint) error {
		items, fps = append(items, item), append(fps, fp)
		return nil
	})
	return items, fps, err
}

// Attrs decodes custom_attributes as an account's decoding does.
func Attrs(b []byte) map[string]string {
	var f attrsField
	f.UnmarshalJSON(b)
	return f.m
}

// AttrsReference decodes custom_attributes with encoding/json, as they
// were before the walk in place: what Attrs must match.
func AttrsReference(b []byte) map[string]string {
	var m map[string]string
	put := func(name string, v json.RawMessage) {
		name = strings.TrimSpace(name)
		if text, ok := attrText(v); ok && name != "" {
			if m == nil {
				m = map[string]string{}
			}
			m[name] = text
		}
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(b, &items) != nil {
			return nil
		}
		for _, it := range items {
			var e struct {
				Name  json.RawMessage `json:"name"`
				Value json.RawMessage `json:"value"`
			}
			if bytes.HasPrefix(bytes.TrimSpace(it), []byte("{")) && json.Unmarshal(it, &e) == nil {
				if name, ok := attrText(e.Name); ok {
					put(name, e.Value)
				}
			}
		}
	case '{':
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) != nil {
			return nil
		}
		for k, v := range obj {
			put(k, v)
		}
	}
	return m
}
