package event

import (
	"encoding/json"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// FromCloud turns a received CloudEvent into an Event: the type must be one of the
// contract's, the data must be JSON of the Data shape. Unknown data fields are
// tolerated so that older consumers read newer events.
func FromCloud(ce cloudevents.Event) (*Event, error) {
	if err := ce.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	t := Type(ce.Type())
	if !t.Valid() {
		return nil, fmt.Errorf("%w: unknown type %q", ErrInvalid, ce.Type())
	}
	if ct := ce.DataMediaType(); ct != "" && ct != ContentType {
		return nil, fmt.Errorf("%w: %s: data content type %q", ErrInvalid, ce.ID(), ct)
	}
	var d Data
	if err := json.Unmarshal(ce.Data(), &d); err != nil {
		return nil, fmt.Errorf("%w: %s: data: %v", ErrInvalid, ce.ID(), err)
	}
	if d.AccountID != ce.Subject() {
		return nil, fmt.Errorf("%w: %s: subject %q differs from data.account_id %q", ErrInvalid, ce.ID(), ce.Subject(), d.AccountID)
	}
	return &Event{Cloud: ce, Data: d}, nil
}
