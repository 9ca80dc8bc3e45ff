package compose_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/compose"
)

// TestEveryTypeRenders holds the embedded templates to every event type.
func TestEveryTypeRenders(t *testing.T) {
	c, err := compose.New("", nil, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	m := eventtest.Meta("1000123", map[string]string{"team": "emea"})
	scope := m
	scope.AccountID = event.ProviderScope
	cams := m
	cams.Provider, cams.AccountID = event.ProviderAlibabaCAMS, "+8613800000000"
	must := eventtest.Must(t)
	poll := event.Poll{Scope: "provider", ConsecutiveFailures: 3, Since: eventtest.T0.Add(-time.Hour), ErrorCode: "InternalError"}
	poller := m
	poller.AccountID = event.PollerScope
	stall := event.Stall{Reason: event.StallNoLease, Since: eventtest.T0.Add(-time.Minute), Interval: "1m", Intervals: 3}
	evs := map[event.Type]*event.Event{
		event.TypeStatusChanged:            eventtest.Status(t, m, "active", "credit hold"),
		event.TypeDebtChanged:              eventtest.Debt(t, m, "0", "12.5", "10", "above"),
		event.TypeHostingStatusChanged:     eventtest.Hosting(t, "1", "", "FREEZE"),
		event.TypeCreditLimitStatusChanged: eventtest.CreditLimit(t, "1", "Thaw", "Freeze"),
		event.TypeDiscovered:               must(event.Discovered(m, map[string]string{"status": "active"})),
		event.TypeRemoved:                  must(event.Removed(m, nil)),
		event.TypeCreated:                  must(event.Created(m, event.Onboarding{RelationType: "ResellerPartner"}, nil)),
		event.TypePhoneProfileChanged:      must(event.PhoneProfileChanged(cams, "About", event.Value{Value: "old"}, event.Value{Value: "new <b>"})),
		event.TypePollDegraded:             must(event.PollDegraded(scope, poll)),
		event.TypePollRecovered:            must(event.PollRecovered(scope, poll)),
		event.TypeDebtForecast: must(event.DebtForecast(m, event.Forecast{Method: "least_squares", Threshold: "600", Currency: "EUR", Current: "465", RatePerDay: "45",
			ETA: time.Now().Add(72 * time.Hour), Observations: []event.Point{{At: eventtest.T0, Value: "420"}, {At: eventtest.T0.Add(24 * time.Hour), Value: "465"}}})),
		event.TypePollStalled: must(event.PollStalled(poller, stall)),
		event.TypePollResumed: must(event.PollResumed(poller, stall)),
	}
	for _, typ := range event.Types {
		e := evs[typ]
		mail, err := c.Compose([]*event.Event{e}, []string{"a@example.com"}, false)
		if err != nil {
			t.Errorf("%s: %v", typ.Tail(), err)
			continue
		}
		if mail.Subject == "" || strings.ContainsAny(mail.Subject, "\r\n") || !strings.HasPrefix(mail.Subject, "[accountwatch] ") {
			t.Errorf("%s: subject %q", typ.Tail(), mail.Subject)
		}
		if !strings.Contains(mail.Text, e.ID()) || !strings.Contains(mail.HTML, e.ID()) {
			t.Errorf("%s: the event id is missing from a part", typ.Tail())
		}
		if strings.Contains(mail.HTML, "new <b>") {
			t.Errorf("%s: upstream text reached the HTML unescaped", typ.Tail())
		}
	}
	all := make([]*event.Event, 0, len(evs))
	for _, typ := range event.Types {
		all = append(all, evs[typ])
	}
	d, err := c.Compose(all, []string{"a@example.com"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Subject, strconv.Itoa(len(all))+" changes on") {
		t.Errorf("digest subject %q", d.Subject)
	}
	if !strings.Contains(d.Text, "Re-sent by an operator (dead letter or replay).") || !strings.Contains(d.HTML, "Re-sent by an operator (dead letter or replay)") {
		t.Error("a re-driven digest does not say so")
	}
	again, _ := c.Compose(all, []string{"a@example.com"}, true)
	other, _ := c.Compose(all, []string{"b@example.com"}, true)
	if again.MessageID != d.MessageID || other.MessageID == d.MessageID {
		t.Error("Message-ID is not derived from the events and the recipients")
	}
}

func TestOverrideErrors(t *testing.T) {
	cases := map[string]string{
		"account.status.changed.body.tmpl":    "x",
		"account.status.chnged.subject.tmpl":  "x",
		"account.status.changed.subject.tmpl": "{{.Nope",
		"noext.tmpl":                          "x",
	}
	for name, body := range cases {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)
		_, err := compose.New(dir, nil, "example.com")
		if !errors.Is(err, compose.ErrTemplate) || !strings.Contains(err.Error(), filepath.Base(name)) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := compose.New("/no/such/dir", nil, "x"); !errors.Is(err, compose.ErrTemplate) {
		t.Errorf("missing folder: %v", err)
	}
}

// TestDegradedNamesItsCause: a poll.degraded email says what could not be
// read, in both parts.
func TestDegradedNamesItsCause(t *testing.T) {
	c, err := compose.New("", nil, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	p := event.Poll{Scope: "account", ConsecutiveFailures: 3, Since: eventtest.T0,
		Cause: &event.PollCause{Operation: "GetCustomerAccountInfo", Field: "Data.HostingStatus", Kind: "malformed", Detail: "not a string"}}
	e := eventtest.Must(t)(event.PollDegraded(eventtest.Meta("1000123", nil), p))
	mail, err := c.Compose([]*event.Event{e}, []string{"a@example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "GetCustomerAccountInfo: field Data.HostingStatus: not a string (malformed)"
	if !strings.Contains(mail.Text, "Cause:     "+want) || !strings.Contains(mail.HTML, want) {
		t.Fatalf("the cause is missing:\n%s\n%s", mail.Text, mail.HTML)
	}
}
