package alibaba

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// CAMS version and its documented per-user limit.
const (
	CAMSVersion = "2020-06-06"
	// CAMSQPS is CAMS's documented per-user limit.
	CAMSQPS = 10
	// CAMSPace is the client's default pace: a tenth under the limit. Evenly
	// spaced requests reach the server with jittered gaps, and at exactly
	// 10 QPS an upstream that counts per calendar second saw an eleventh
	// now and then (3-6 throttled answers in 800 in the conformance run).
	CAMSPace = CAMSQPS * 0.9
)

// camsOK: CAMS answers Code "OK".
var camsOK = codes("OK")

// CAMS is a client of the Chat App Message Service API.
type CAMS struct{ c *client }

// NewCAMS connects to CAMS (cams.ap-southeast-1.aliyuncs.com, or upstream-sim);
// it paces itself at CAMSPace (9 QPS) unless cfg.QPS says otherwise.
func NewCAMS(cfg Config) (*CAMS, error) {
	c, err := newClient(cfg, "cams", CAMSVersion, CAMSPace)
	if err != nil {
		return nil, err
	}
	return &CAMS{c: c}, nil
}

// PhoneProfile is the normalised snapshot of a WhatsApp business profile.
// A business profile is public business data.
type PhoneProfile struct {
	Space             string
	PhoneNumber       string
	Vertical          string
	Description       string
	Email             string
	Address           string
	ProfilePictureURL string
	Websites          []string
	About             string
	Evidence          upstream.Evidence
}

// Fields returns the watched fields by name (event.ProfileFields), Websites as a list.
func (p *PhoneProfile) Fields() (map[string]string, []string) {
	return map[string]string{
		"Vertical": p.Vertical, "Description": p.Description, "Email": p.Email, "Address": p.Address,
		"ProfilePictureUrl": p.ProfilePictureURL, "About": p.About,
	}, p.Websites
}

// QueryPhoneBusinessProfile reads one number's profile.
func (c *CAMS) QueryPhoneBusinessProfile(ctx context.Context, space, phone string) (*PhoneProfile, error) {
	if space == "" || phone == "" {
		return nil, &upstream.Error{Kind: upstream.ErrRejected, Op: "QueryPhoneBusinessProfile", Msg: "CustSpaceId and PhoneNumber are required"}
	}
	body, ev, err := c.c.call(ctx, "QueryPhoneBusinessProfile", map[string]string{"CustSpaceId": space, "PhoneNumber": phone}, camsOK)
	if err != nil {
		return nil, err
	}
	p, err := DecodeProfile(body)
	if err != nil {
		e := upstream.Malformed("QueryPhoneBusinessProfile", ev.RequestID, err)
		e.Account = phone
		return nil, e
	}
	p.Space, p.PhoneNumber, p.Evidence = space, phone, ev
	return p, nil
}

// DecodeProfile decodes a QueryPhoneBusinessProfile answer. Every field is
// watched, so each must be text (a string, or a number's literal) or absent;
// Websites a list of them (or one, or an object holding the list).
func DecodeProfile(body []byte) (*PhoneProfile, error) {
	var w struct {
		Data *struct {
			Vertical          json.RawMessage `json:"Vertical"`
			Description       json.RawMessage `json:"Description"`
			Email             json.RawMessage `json:"Email"`
			Address           json.RawMessage `json:"Address"`
			ProfilePictureURL json.RawMessage `json:"ProfilePictureUrl"`
			Websites          json.RawMessage `json:"Websites"`
			About             json.RawMessage `json:"About"`
		} `json:"Data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("QueryPhoneBusinessProfile JSON: %w", err)
	}
	if w.Data == nil {
		return nil, &upstream.FieldError{Field: "Data", Problem: "missing"}
	}
	d := w.Data
	p := &PhoneProfile{}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{{"Vertical", d.Vertical, &p.Vertical}, {"Description", d.Description, &p.Description}, {"Email", d.Email, &p.Email},
		{"Address", d.Address, &p.Address}, {"ProfilePictureUrl", d.ProfilePictureURL, &p.ProfilePictureURL}, {"About", d.About, &p.About}} {
		v, err := upstream.Text(f.raw)
		if err != nil {
			return nil, &upstream.FieldError{Field: "Data." + f.name, Problem: "not a string"}
		}
		*f.dst = v
	}
	sites := bytes.TrimSpace(d.Websites)
	if len(sites) > 0 && sites[0] == '"' {
		sites = append(append([]byte{'['}, sites...), ']')
	}
	if len(sites) > 0 && string(sites) != "null" {
		items, ok := array(sites)
		if !ok {
			return nil, &upstream.FieldError{Field: "Data.Websites", Problem: "not a list"}
		}
		for i, it := range items {
			s, err := upstream.Text(it)
			if err != nil {
				return nil, &upstream.FieldError{Field: fmt.Sprintf("Data.Websites[%d]", i), Problem: "not a string"}
			}
			if s != "" {
				p.Websites = append(p.Websites, s)
			}
		}
	}
	return p, nil
}

// PhoneNumber is one number of QueryChatappPhoneNumbers.
type PhoneNumber struct {
	PhoneNumber  string
	VerifiedName string
	Status       string
}

// QueryChatappPhoneNumbers lists a space's WhatsApp numbers (discovery).
func (c *CAMS) QueryChatappPhoneNumbers(ctx context.Context, space string) ([]PhoneNumber, error) {
	if space == "" {
		return nil, &upstream.Error{Kind: upstream.ErrRejected, Op: "QueryChatappPhoneNumbers", Msg: "CustSpaceId is required"}
	}
	body, ev, err := c.c.call(ctx, "QueryChatappPhoneNumbers", map[string]string{"CustSpaceId": space}, camsOK)
	if err != nil {
		return nil, err
	}
	list, err := DecodePhoneNumbers(body)
	if err != nil {
		return nil, upstream.Malformed("QueryChatappPhoneNumbers", ev.RequestID, err)
	}
	return list, nil
}

// DecodePhoneNumbers decodes a QueryChatappPhoneNumbers answer (numbers as
// strings or numbers; the list also as an object holding one array).
func DecodePhoneNumbers(body []byte) ([]PhoneNumber, error) {
	var w struct {
		PhoneNumbers json.RawMessage `json:"PhoneNumbers"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("QueryChatappPhoneNumbers JSON: %w", err)
	}
	items, ok := array(w.PhoneNumbers)
	if !ok && !isNull(w.PhoneNumbers) {
		return nil, &upstream.FieldError{Field: "PhoneNumbers", Problem: "not a list"}
	}
	out := make([]PhoneNumber, 0, len(items))
	for i, it := range items {
		var p struct {
			PhoneNumber  json.RawMessage `json:"PhoneNumber"`
			VerifiedName json.RawMessage `json:"VerifiedName"`
			Status       json.RawMessage `json:"Status"`
		}
		if err := json.Unmarshal(it, &p); err != nil {
			return nil, &upstream.FieldError{Field: fmt.Sprintf("PhoneNumbers[%d]", i), Problem: "not an object"}
		}
		n, err := upstream.ID(p.PhoneNumber)
		if err != nil || n == "" {
			return nil, &upstream.FieldError{Field: fmt.Sprintf("PhoneNumbers[%d].PhoneNumber", i), Problem: "missing or not a number"}
		}
		name, _ := upstream.Text(p.VerifiedName)
		status, _ := upstream.Text(p.Status)
		out = append(out, PhoneNumber{PhoneNumber: n, VerifiedName: name, Status: status})
	}
	return out, nil
}
