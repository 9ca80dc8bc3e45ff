package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// CAMS versions and success code.
const (
	CAMSVersion = "2020-06-06"
	camsOK      = "OK"
	// CAMSQPS is CAMS's documented per-user limit, the client's default.
	CAMSQPS = 10
)

// CAMS is a client of the Chat App Message Service API.
type CAMS struct{ c *client }

// NewCAMS connects to CAMS (cams.ap-southeast-1.aliyuncs.com, or upstream-sim);
// it paces itself at 10 QPS unless cfg.QPS says otherwise.
func NewCAMS(cfg Config) (*CAMS, error) {
	c, err := newClient(cfg, "cams", CAMSVersion, camsOK, CAMSQPS)
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
	body, ev, err := c.c.call(ctx, "QueryPhoneBusinessProfile", map[string]string{"CustSpaceId": space, "PhoneNumber": phone})
	if err != nil {
		return nil, err
	}
	p, err := DecodeProfile(body)
	if err != nil {
		return nil, &upstream.Error{Kind: upstream.ErrMalformed, Op: "QueryPhoneBusinessProfile", RequestID: ev.RequestID, Msg: err.Error()}
	}
	p.Space, p.PhoneNumber, p.Evidence = space, phone, ev
	return p, nil
}

// DecodeProfile decodes a QueryPhoneBusinessProfile answer.
func DecodeProfile(body []byte) (*PhoneProfile, error) {
	var w struct {
		Data *struct {
			Vertical          *string   `json:"Vertical"`
			Description       *string   `json:"Description"`
			Email             *string   `json:"Email"`
			Address           *string   `json:"Address"`
			ProfilePictureURL *string   `json:"ProfilePictureUrl"`
			Websites          []*string `json:"Websites"`
			About             *string   `json:"About"`
		} `json:"Data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("QueryPhoneBusinessProfile JSON: %w", err)
	}
	if w.Data == nil {
		return nil, errors.New("QueryPhoneBusinessProfile: no Data")
	}
	d := w.Data
	p := &PhoneProfile{Vertical: deref(d.Vertical), Description: deref(d.Description), Email: deref(d.Email), Address: deref(d.Address),
		ProfilePictureURL: deref(d.ProfilePictureURL), About: deref(d.About)}
	for _, s := range d.Websites {
		if s != nil && *s != "" {
			p.Websites = append(p.Websites, *s)
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
	body, ev, err := c.c.call(ctx, "QueryChatappPhoneNumbers", map[string]string{"CustSpaceId": space})
	if err != nil {
		return nil, err
	}
	list, err := DecodePhoneNumbers(body)
	if err != nil {
		return nil, &upstream.Error{Kind: upstream.ErrMalformed, Op: "QueryChatappPhoneNumbers", RequestID: ev.RequestID, Msg: err.Error()}
	}
	return list, nil
}

// DecodePhoneNumbers decodes a QueryChatappPhoneNumbers answer.
func DecodePhoneNumbers(body []byte) ([]PhoneNumber, error) {
	var w struct {
		PhoneNumbers *[]struct {
			PhoneNumber  json.RawMessage `json:"PhoneNumber"`
			VerifiedName string          `json:"VerifiedName"`
			Status       string          `json:"Status"`
		} `json:"PhoneNumbers"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("QueryChatappPhoneNumbers JSON: %w", err)
	}
	if w.PhoneNumbers == nil {
		return nil, errors.New("QueryChatappPhoneNumbers: no PhoneNumbers")
	}
	out := make([]PhoneNumber, 0, len(*w.PhoneNumbers))
	for i, p := range *w.PhoneNumbers {
		n, err := upstream.ID(p.PhoneNumber)
		if err != nil || n == "" {
			return nil, fmt.Errorf("QueryChatappPhoneNumbers: PhoneNumbers[%d] has no number", i)
		}
		out = append(out, PhoneNumber{PhoneNumber: n, VerifiedName: p.VerifiedName, Status: p.Status})
	}
	return out, nil
}
