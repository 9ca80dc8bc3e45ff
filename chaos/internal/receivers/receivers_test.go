package receivers

import (
	"context"
	"net/http"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

const id1, id2 = "aw1-0123456789abcdef0123456789abcdef", "aw1-fedcba9876543210fedcba9876543210"

// TestSlackCountsPostsNotUpdates: slack-go's own client posts and updates;
// a post is a delivery of the event ids it names, an update is not.
func TestSlackCountsPostsNotUpdates(t *testing.T) {
	s := StartSlack()
	defer s.Stop()
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.URL()))
	att := slack.Attachment{Text: "Acme is on credit hold", Footer: "event " + id1}
	ch, ts, err := api.PostMessage("#chaos", slack.MsgOptionText("credit hold", false), slack.MsgOptionAttachments(att))
	if err != nil || ch != "CCHAOS" || ts == "" {
		t.Fatalf("post: %q %q %v", ch, ts, err)
	}
	if _, _, _, err := api.UpdateMessage(ch, ts, slack.MsgOptionAttachments(att)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.PostMessage("#chaos", slack.MsgOptionTS(ts), slack.MsgOptionAttachments(att)); err != nil {
		t.Fatal(err)
	}
	if got := s.Posts.Accepted(); got[id1] != 2 || len(got) != 1 {
		t.Errorf("accepted %v, want %s twice (the update is not a delivery)", got, id1)
	}
	if _, _, err := slack.New("not-a-bot", slack.OptionAPIURL(s.URL())).PostMessage("#chaos", slack.MsgOptionText("x", false)); err == nil {
		t.Error("a post without a bot token was accepted")
	}
}

func TestWebhookModes(t *testing.T) {
	w, err := StartWebhook()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	post := func(id string, timeout time.Duration) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.URL(), strings.NewReader(`{"id":"`+id+`"}`))
		req.Header.Set("webhook-id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := post(id1, 5*time.Second); err != nil || code != http.StatusNoContent {
		t.Fatalf("healthy: %d %v", code, err)
	}
	w.SetMode(Unavailable)
	if code, _ := post(id2, 5*time.Second); code != http.StatusServiceUnavailable {
		t.Fatalf("unavailable answered %d", code)
	}
	w.SetMode(Hang)
	if _, err := post(id2, 200*time.Millisecond); err == nil {
		t.Fatal("a hanging receiver answered")
	}
	w.SetMode(Healthy)
	if code, _ := post(id1, 5*time.Second); code != http.StatusNoContent {
		t.Fatalf("healthy again answered %d", code)
	}
	if got := w.Deliveries.Accepted(); got[id1] != 2 || got[id2] != 0 {
		t.Errorf("accepted %v: only 2xx answers are deliveries", got)
	}
	if att, ref := w.Deliveries.Attempts(); att != 4 || ref != 2 || w.Hung() != 1 {
		t.Errorf("attempts %d refused %d hung %d", att, ref, w.Hung())
	}
}

func TestSMTPTalliesTheEventsHeader(t *testing.T) {
	s, err := StartSMTP()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg := "From: alerts@chaos.example\r\nTo: ops@chaos.example\r\nSubject: digest\r\nX-Accountwatch-Events: " + id1 + ", " + id2 + "\r\n\r\nbody\r\n"
	if err := smtp.SendMail(s.Host()+":"+s.Port(), nil, "alerts@chaos.example", []string{"ops@chaos.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := smtp.SendMail(s.Host()+":"+s.Port(), nil, "alerts@chaos.example", []string{"ops@chaos.example"}, []byte("Subject: no ids\r\n\r\nx\r\n")); err == nil {
		t.Error("a message naming no event was accepted")
	}
	if got := s.Messages.Accepted(); got[id1] != 1 || got[id2] != 1 {
		t.Errorf("accepted %v", got)
	}
}

// TestSMTPTapDecodes: the tap sees a mail's text decoded (an encoded
// subject, quoted-printable and base64 parts), so that a scan for a value
// finds it however the notifier encoded it.
func TestSMTPTapDecodes(t *testing.T) {
	s, err := StartSMTP()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var seen []byte
	s.Messages.Tap(func(b []byte) { mu.Lock(); seen = append(seen, b...); mu.Unlock() })
	msg := "X-Accountwatch-Events: aw1-0123456789abcdef0123456789abcdef\r\n" +
		"Subject: =?utf-8?q?Jane_Lane_=E2=80=94_credit_hold?=\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"passport=3D1124111111123 and a soft=\r\n break\r\n" +
		"--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"PHA+dGVzdEBleGFtcGxlLmNvbTwvcD4=\r\n--b1--\r\n"
	if err := smtp.SendMail(s.Host()+":"+s.Port(), nil, "alerts@chaos.example", []string{"ops@chaos.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"Jane Lane — credit hold", "passport=1124111111123 and a soft break", "<p>test@example.com</p>"} {
		if !strings.Contains(string(seen), want) {
			t.Errorf("the tap did not see %q in:\n%s", want, seen)
		}
	}
}
