package mailer_test

import (
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/pkg/sink/sinktest"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/compose"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/mailer"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/smtpcapture"
)

// TestConformance runs the sink conformance suite against the mailer sending
// over SMTP (PLAIN auth) to an in-process go-smtp server.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T, _ *eventbus.Bus) *sinktest.Target {
		var mu sync.Mutex
		answer := sinktest.Accept
		var calls []time.Time
		stop := make(chan struct{})
		const password = "conformance-smtp-password"
		srv, err := smtpcapture.Start(t.TempDir(), smtpcapture.Options{TLS: "none", Users: map[string]string{"aw": password},
			Fault: func(cmd string, _ int, _ string) *smtp.SMTPError {
				mu.Lock()
				f := answer
				if cmd == "MAIL" {
					calls = append(calls, time.Now())
				}
				mu.Unlock()
				switch {
				case f == sinktest.Slowly && cmd == "DATA":
					time.Sleep(100 * time.Millisecond)
				case f == sinktest.ServerError && cmd == "MAIL":
					return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
				case f == sinktest.ClientError && cmd == "RCPT":
					return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
				case f == sinktest.Timeout && cmd == "MAIL":
					<-stop
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		t.Cleanup(func() { close(stop) }) // runs first: a stalled answer ends
		comp, err := compose.New("", nil, "reseller.example")
		if err != nil {
			t.Fatal(err)
		}
		s, err := mailer.New([]mailer.Receiver{{Name: "finance", To: []string{"finance@reseller.example"}}}, comp, mailer.Options{
			SMTP: mailer.SMTP{Host: srv.Host(), Port: srv.Port(), TLS: mailer.TLSNone, Auth: "plain", Username: "aw", Password: password, Pool: 2,
				Timeout: 3 * sinktest.SendTimeout}, // the suite's stall: the mailer bounds each command, not the context
			From: "accountwatch <alerts@reseller.example>",
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return &sinktest.Target{
			Sender: s, Receiver: "finance",
			Answer: func(f sinktest.Failure) {
				mu.Lock()
				prev := answer
				answer = f
				mu.Unlock()
				switch {
				case f == sinktest.Broken:
					srv.Stop()
				case prev == sinktest.Broken:
					if err := srv.Restart(); err != nil {
						t.Fatal(err)
					}
				}
			},
			Received: func() []string {
				var out []string
				for _, m := range srv.Messages() {
					msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, strings.Fields(msg.Header.Get("X-Accountwatch-Events"))...)
				}
				return out
			},
			Calls: func() []time.Time {
				mu.Lock()
				defer mu.Unlock()
				return append([]time.Time(nil), calls...)
			},
			// SMTP has no Retry-After: a 4xx is "later", a 5xx "never".
			Expect: map[sinktest.Failure]sinktest.Want{
				sinktest.ServerError: {Reason: sink.ReasonServerError},
				sinktest.ClientError: {Reason: sink.ReasonClientError, Permanent: true},
				sinktest.Timeout:     {Reason: sink.ReasonTimeout},
				sinktest.Broken:      {Reason: sink.ReasonOther},
			},
			Secrets: []string{password},
		}
	})
}
