package sim

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WithVariation makes every answer take, at random (from seed, so a run can
// be repeated), one of the shapes the documents allow for it instead of the
// documented example's: money as a JSON number or a string (with or without
// trailing zeros), both spellings of a status, nulls or nothing for values
// that are missing, custom attribute values of every JSON type, Alibaba
// numbers (Mpk, uids, GetCustomerList's Code) as strings or numbers, the
// earlier published versions' spellings and shapes (Trusteeship; the
// CreateAgAccount answer nested in "data"), dates
// with any offset and precision, extra fields no document names, members in
// any order, and any whitespace. What an answer means never varies: a
// client that reads the documents right sees the same accounts either way.
func WithVariation(seed uint64) Option {
	return func(s *Server) { s.vary = &variation{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }
}

// variation draws the shape of each answer; nil serves the documented shapes.
type variation struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func (v *variation) intn(n int) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rng.IntN(n)
}

// coin is true one time in n.
func (v *variation) coin(n int) bool { return v != nil && v.intn(n) == 0 }

// member is one member of a JSON object as it is written.
type member struct {
	key string
	val json.RawMessage
}

func raw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// object writes members as a JSON object: in order for the documented shape;
// varied, shuffled, with extra members and any whitespace.
func (v *variation) object(ms []member) json.RawMessage {
	if v == nil {
		var b bytes.Buffer
		writeObject(&b, ms, "", "")
		return b.Bytes()
	}
	for n := v.intn(3); n > 0; n-- {
		ms = append(ms, member{"x_sim_" + strconv.Itoa(v.intn(1000)), v.anyValue()})
	}
	v.mu.Lock()
	v.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	v.mu.Unlock()
	var b bytes.Buffer
	switch v.intn(3) {
	case 0:
		writeObject(&b, ms, "", "")
	case 1:
		writeObject(&b, ms, "\n", "    ")
	default:
		writeObject(&b, ms, " ", "")
	}
	return b.Bytes()
}

func writeObject(b *bytes.Buffer, ms []member, nl, indent string) {
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(nl + indent)
		b.Write(raw(m.key))
		b.WriteByte(':')
		if nl != "" {
			b.WriteByte(' ')
		}
		b.Write(m.val)
	}
	if len(ms) > 0 {
		b.WriteString(nl)
	}
	b.WriteByte('}')
}

// anyValue is a value of any JSON type (an unknown field, an attribute whose
// value "depends on the attribute").
func (v *variation) anyValue() json.RawMessage {
	switch v.intn(7) {
	case 0:
		return json.RawMessage(`null`)
	case 1:
		return json.RawMessage(`true`)
	case 2:
		return raw(v.intn(100000))
	case 3:
		return json.RawMessage(strconv.Itoa(v.intn(100)) + "." + strconv.Itoa(v.intn(100)))
	case 4:
		return raw("text " + strconv.Itoa(v.intn(100)))
	case 5:
		return json.RawMessage(`["a",1,{"b":null}]`)
	default:
		return json.RawMessage(`{"nested":{"list":[1,2],"s":"x"}}`)
	}
}

// money writes decimal text as the documents allow: as a number or a
// string. asNumber is the documented shape's choice.
func (v *variation) money(text *string, asNumber bool) json.RawMessage {
	if text == nil || *text == "" {
		return json.RawMessage(`null`)
	}
	t := *text
	if v == nil {
		if asNumber {
			return json.RawMessage(t)
		}
		return raw(t)
	}
	if v.coin(3) && !strings.ContainsAny(t, "eE") {
		if !strings.Contains(t, ".") {
			t += "."
		}
		t += "0"
	}
	if v.coin(2) {
		return json.RawMessage(t)
	}
	return raw(t)
}

// status spells an ActivePlatform status with a space or an underscore:
// the document lists "credit hold", its example answers "credit_hold".
func (v *variation) status(s string) string {
	if v == nil {
		return s
	}
	if v.coin(2) {
		return strings.ReplaceAll(s, "_", " ")
	}
	return strings.ReplaceAll(s, " ", "_")
}

// text is a string member, or, for a value that is missing (""), one of ""
// and null.
func (v *variation) text(s string) json.RawMessage {
	if s == "" && v.coin(2) {
		return json.RawMessage(`null`)
	}
	return raw(s)
}

// time writes a date-time like the documented example
// ("2019-01-15T14:58:22.830+03:00"); varied in offset and precision.
var exampleZone = time.FixedZone("+03:00", 3*3600)

func (v *variation) time(t time.Time) json.RawMessage {
	if v == nil {
		return raw(t.In(exampleZone).Format("2006-01-02T15:04:05.000Z07:00"))
	}
	zones := []*time.Location{time.UTC, exampleZone, time.FixedZone("-05:30", -5*3600-1800)}
	layouts := []string{time.RFC3339, "2006-01-02T15:04:05.000Z07:00", time.RFC3339Nano}
	return raw(t.In(zones[v.intn(len(zones))]).Format(layouts[v.intn(len(layouts))]))
}

// number writes an Alibaba number (an id, a code) as a JSON number or a
// string (the documents' versions show both; documented is the current one's
// choice), varied at random.
func (v *variation) number(text string, documented bool) json.RawMessage {
	asNumber := documented
	if v != nil {
		asNumber = v.coin(2)
	}
	if asNumber {
		return json.RawMessage(text)
	}
	return raw(text)
}
