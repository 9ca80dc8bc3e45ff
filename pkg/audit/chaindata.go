package audit

import (
	"encoding/json"
	"strconv"
	"time"
)

// chainFields are the fields of an event's data the verifier reads, as
// slices of the data (no copy).
type chainFields struct {
	provider, instance, account, prev []byte
	observedAt                        time.Time
	seq                               uint64
}

// decodeChain reads the verifier's fields from an event's data. The common
// case (an object whose wanted members are plain ASCII strings and a plain
// chain) is scanned in place; anything else (escapes, non-ASCII text in a
// wanted member, a member named in another case, a repeated member, null,
// a number that is not a plain integer) goes to encoding/json, so that
// what is accepted, and what is read, is exactly what json.Unmarshal into
// chainData would give (FuzzDecodeChain holds the scanner to that).
func decodeChain(data []byte) (chainFields, bool) {
	if f, ok := scanChain(data); ok {
		return f, true
	}
	var d chainData
	if err := json.Unmarshal(data, &d); err != nil {
		return chainFields{}, false
	}
	return chainFields{provider: []byte(d.Provider), instance: []byte(d.Instance), account: []byte(d.AccountID), prev: []byte(d.Chain.Prev),
		observedAt: d.ObservedAt, seq: d.Chain.Seq}, true
}

// The members read, as flags: a member seen twice is left to encoding/json.
const (
	hasProvider = 1 << iota
	hasInstance
	hasAccount
	hasObserved
	hasChain
	hasSeq
	hasPrev
)

// maxDepth bounds the nesting the scanner follows (encoding/json allows
// 10,000; an event nests a few levels).
const maxDepth = 64

// chainScanner walks one JSON text; ok turns false at anything it leaves
// to encoding/json (invalid or merely unusual).
type chainScanner struct {
	d   []byte
	i   int
	bad bool
}

func scanChain(data []byte) (chainFields, bool) {
	s := chainScanner{d: data}
	var f chainFields
	seen := 0
	s.ws()
	s.object(func(key []byte) {
		var flag int
		var dst *[]byte
		switch string(key) {
		case "provider":
			flag, dst = hasProvider, &f.provider
		case "instance":
			flag, dst = hasInstance, &f.instance
		case "account_id":
			flag, dst = hasAccount, &f.account
		case "observed_at":
			flag = hasObserved
		case "chain":
			flag = hasChain
		default:
			if folds(key, "provider", "instance", "account_id", "observed_at", "chain") {
				s.bad = true // encoding/json matches member names in any case
				return
			}
			s.value(1)
			return
		}
		if seen&flag != 0 {
			s.bad = true
			return
		}
		seen |= flag
		switch flag {
		case hasObserved:
			start := s.i
			if _, ok := s.plainString(); !ok {
				return
			}
			if f.observedAt.UnmarshalJSON(s.d[start:s.i]) != nil {
				s.bad = true
			}
		case hasChain:
			s.object(func(key []byte) {
				switch string(key) {
				case "seq":
					if seen&hasSeq != 0 {
						s.bad = true
						return
					}
					seen |= hasSeq
					f.seq = s.uint()
				case "prev":
					if seen&hasPrev != 0 {
						s.bad = true
						return
					}
					seen |= hasPrev
					f.prev, _ = s.plainString()
				default:
					if folds(key, "seq", "prev") {
						s.bad = true
						return
					}
					s.value(2)
				}
			})
		default:
			*dst, _ = s.plainString()
		}
	})
	s.ws()
	if s.bad || s.i != len(s.d) {
		return chainFields{}, false
	}
	return f, true
}

func (s *chainScanner) ws() {
	for s.i < len(s.d) {
		switch s.d[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek is the next byte past white space (0 at the end).
func (s *chainScanner) peek() byte {
	s.ws()
	if s.i >= len(s.d) {
		return 0
	}
	return s.d[s.i]
}

// object reads an object, calling member for each member with the scanner
// at its value, which member must consume.
func (s *chainScanner) object(member func(key []byte)) {
	if s.bad || s.peek() != '{' {
		s.bad = true
		return
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return
	}
	for !s.bad {
		if s.peek() != '"' {
			s.bad = true
			return
		}
		key, ok := s.plainString()
		if !ok || s.peek() != ':' {
			s.bad = true
			return
		}
		s.i++
		s.ws()
		member(key)
		if s.bad {
			return
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return
		default:
			s.bad = true
		}
	}
}

// plainString reads a string of printable ASCII without escapes, and
// returns its content.
func (s *chainScanner) plainString() ([]byte, bool) {
	if s.bad || s.i >= len(s.d) || s.d[s.i] != '"' {
		s.bad = true
		return nil, false
	}
	for j := s.i + 1; j < len(s.d); j++ {
		switch c := s.d[j]; {
		case c == '"':
			out := s.d[s.i+1 : j]
			s.i = j + 1
			return out, true
		case c < 0x20 || c >= 0x80 || c == '\\':
			s.bad = true
			return nil, false
		}
	}
	s.bad = true
	return nil, false
}

// uint reads a plain non-negative integer that fits in 64 bits.
func (s *chainScanner) uint() uint64 {
	j := s.i
	for j < len(s.d) && s.d[j] >= '0' && s.d[j] <= '9' {
		j++
	}
	if j == s.i || s.d[s.i] == '0' && j > s.i+1 || j < len(s.d) && (s.d[j] == '.' || s.d[j] == 'e' || s.d[j] == 'E') {
		s.bad = true
		return 0
	}
	v, err := strconv.ParseUint(string(s.d[s.i:j]), 10, 64)
	if err != nil {
		s.bad = true
		return 0
	}
	s.i = j
	return v
}

// value skips any JSON value, checking its syntax as encoding/json does
// (strings may hold any byte from 0x20 on, as there).
func (s *chainScanner) value(depth int) {
	if s.bad {
		return
	}
	if depth > maxDepth {
		s.bad = true
		return
	}
	switch c := s.peek(); {
	case c == '{':
		s.object(func([]byte) { s.value(depth + 1) })
	case c == '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			return
		}
		for !s.bad {
			s.value(depth + 1)
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return
			default:
				s.bad = true
			}
		}
	case c == '"':
		s.skipString()
	case c == '-' || c >= '0' && c <= '9':
		s.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(s.d)-s.i >= len(lit) && string(s.d[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return
			}
		}
		s.bad = true
	}
}

func (s *chainScanner) skipString() {
	for j := s.i + 1; j < len(s.d); j++ {
		switch c := s.d[j]; {
		case c == '"':
			s.i = j + 1
			return
		case c < 0x20:
			s.bad = true
			return
		case c == '\\':
			j++
			if j >= len(s.d) {
				s.bad = true
				return
			}
			switch s.d[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.d) {
					s.bad = true
					return
				}
				for _, h := range s.d[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						s.bad = true
						return
					}
				}
				j += 4
			default:
				s.bad = true
				return
			}
		}
	}
	s.bad = true
}

// number skips a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *chainScanner) number() {
	d, j := s.d, s.i
	digits := func() bool {
		k := j
		for j < len(d) && d[j] >= '0' && d[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(d) && d[j] == '-' {
		j++
	}
	switch {
	case j < len(d) && d[j] == '0':
		j++
	case !digits():
		s.bad = true
		return
	}
	if j < len(d) && d[j] == '.' {
		j++
		if !digits() {
			s.bad = true
			return
		}
	}
	if j < len(d) && (d[j] == 'e' || d[j] == 'E') {
		j++
		if j < len(d) && (d[j] == '+' || d[j] == '-') {
			j++
		}
		if !digits() {
			s.bad = true
			return
		}
	}
	s.i = j
}

// folds reports whether key, which is none of names, equals one of them in
// another case (or with a character encoding/json folds to an ASCII one:
// any non-ASCII key is taken as possibly folding).
func folds(key []byte, names ...string) bool {
	for _, c := range key {
		if c >= 0x80 {
			return true
		}
	}
	for _, n := range names {
		if len(n) != len(key) {
			continue
		}
		same := true
		for i := range key {
			a, b := key[i], n[i]
			if 'A' <= a && a <= 'Z' {
				a += 'a' - 'A'
			}
			if a != b {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}
