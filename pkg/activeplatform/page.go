package activeplatform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/accountwatch/accountwatch/pkg/upstream"
)

var errListJSON = errors.New("list JSON: malformed array")

// pageItems walks a listing page's accounts one by one, handing out each
// one's raw JSON. The top level must be an array (or an object holding the
// array, see newPageItems) with nothing after it. Items are not validated here:
// DecodeItem validates every item it decodes, and an item skipped as already
// seen is byte for byte one that was decoded before. FuzzListItems holds the
// walk to that: it never accepts a page that is not valid JSON while every
// item it returns is; FuzzPredictedItems, that a prediction never changes
// what it returns.
type pageItems struct {
	b    []byte
	i    int      // where the next item starts
	env  [][]byte // the items of an {"accounts": [...]} page, split at once
	done bool
}

func newPageItems(body []byte) (*pageItems, error) {
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] == '{' {
		// The document shows the account model, not a wrapper; an object is
		// read as {"accounts": [...]}, or as its one member that is an array
		// ({"data": [...], "total": 3}).
		var env map[string]json.RawMessage
		if err := json.Unmarshal(b, &env); err != nil {
			return nil, fmt.Errorf("list JSON: %w", err)
		}
		list, ok := env["accounts"]
		if !ok {
			for _, v := range env {
				if v = bytes.TrimSpace(v); len(v) > 0 && v[0] == '[' {
					if ok {
						return nil, errors.New("list JSON: an object with more than one array, and no accounts")
					}
					list, ok = v, true
				}
			}
		}
		var items []json.RawMessage
		if !ok || json.Unmarshal(list, &items) != nil || items == nil {
			return nil, errors.New("list JSON: no accounts array")
		}
		p := &pageItems{env: make([][]byte, len(items))}
		for i, r := range items {
			p.env[i] = r
		}
		return p, nil
	}
	if len(b) < 2 || b[0] != '[' {
		return nil, errors.New("list JSON: not an array")
	}
	p := &pageItems{b: b, i: skipWS(b, 1)}
	if p.i < len(b) && b[p.i] == ']' {
		if skipWS(b, p.i+1) != len(b) {
			return nil, errListJSON
		}
		p.done = true
	}
	return p, nil
}

// Predictor guesses the next item of a listing: the size and fingerprint
// it had in an earlier listing (see ListOptions.Predict).
type Predictor func() (size int, fp upstream.Fingerprint, ok bool)

// next returns the next item and its fingerprint; ok is false after the last.
// Where predict guesses right, the item is found by hashing the guessed
// number of bytes instead of scanning for its end: an object's end is
// decided by its own bytes, so bytes equal to an object read before end
// where that one ended. Only guesses of an object are tried (a literal's end
// depends on what follows it); a wrong guess costs that hash.
func (p *pageItems) next(predict Predictor) (item []byte, fp upstream.Fingerprint, ok bool, err error) {
	if p.env != nil || p.b == nil {
		if len(p.env) == 0 {
			return nil, fp, false, nil
		}
		item, p.env = p.env[0], p.env[1:]
		return item, upstream.FingerprintOf(item), true, nil
	}
	if p.done {
		return nil, fp, false, nil
	}
	b, i := p.b, p.i
	end := -1
	if predict != nil && i < len(b) && b[i] == '{' {
		if n, want, ok := predict(); ok && n > 0 && i+n <= len(b) {
			if fp = upstream.FingerprintOf(b[i : i+n]); fp == want {
				end = i + n
			}
		}
	}
	if end < 0 {
		var ok bool
		if end, ok = skipValue(b, i); !ok {
			return nil, fp, false, errListJSON
		}
		fp = upstream.FingerprintOf(b[i:end])
	}
	j := skipWS(b, end)
	if j >= len(b) {
		return nil, fp, false, errListJSON
	}
	switch b[j] {
	case ',':
		p.i = skipWS(b, j+1)
	case ']':
		if skipWS(b, j+1) != len(b) {
			return nil, fp, false, errListJSON
		}
		p.done = true
	default:
		return nil, fp, false, errListJSON
	}
	return b[i:end], fp, true, nil
}

// formatError is a page walk's own failure (the page is not a listing), as
// opposed to one its caller's fn returned.
type formatError struct{ err error }

func (e formatError) Error() string { return e.err.Error() }

// walkPage hands fn each item of a page with its fingerprint, predicted where
// predict (may be nil) guesses right, and returns how many fn took. A
// malformed page fails with a formatError where the walk finds it, after the
// items before.
func walkPage(body []byte, predict Predictor, fn func(item []byte, fp upstream.Fingerprint) error) (int, error) {
	p, err := newPageItems(body)
	if err != nil {
		return 0, formatError{err}
	}
	for n := 0; ; n++ {
		item, fp, ok, err := p.next(predict)
		if err != nil {
			return n, formatError{err}
		}
		if !ok {
			return n, nil
		}
		if err := fn(item, fp); err != nil {
			return n, err
		}
	}
}

// listItems splits a whole page.
func listItems(body []byte) ([][]byte, error) {
	out := make([][]byte, 0, 64)
	if _, err := walkPage(body, nil, func(item []byte, _ upstream.Fingerprint) error {
		out = append(out, item)
		return nil
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// emptyArray reports whether a page is the bare empty array.
func emptyArray(body []byte) bool {
	b := bytes.TrimSpace(body)
	return len(b) >= 2 && b[0] == '[' && skipWS(b, 1) == len(b)-1 && b[len(b)-1] == ']'
}
