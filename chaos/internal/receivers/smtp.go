package receivers

import (
	"bufio"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTP is a mail server (emersion/go-smtp) that accepts every message and
// tallies the event ids of its X-Accountwatch-Events header.
type SMTP struct {
	srv *smtp.Server
	ln  net.Listener
	// Messages tallies the event ids of accepted messages.
	Messages *Tally
}

// StartSMTP serves plain SMTP (no TLS, no auth) on a loopback port.
func StartSMTP() (*SMTP, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SMTP{ln: ln, Messages: newTally()}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	s.srv.Domain = "chaos.localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.MaxMessageBytes = 4 << 20
	go s.srv.Serve(ln)
	return s, nil
}

// Host and Port are AW_SMTP_HOST and AW_SMTP_PORT.
func (s *SMTP) Host() string { return "127.0.0.1" }

// Port is the server's port.
func (s *SMTP) Port() string { return strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port) }

// Close stops the server.
func (s *SMTP) Close() { _ = s.srv.Close() }

type session struct {
	s    *SMTP
	rcpt int
}

func (x *session) Reset()        { x.rcpt = 0 }
func (x *session) Logout() error { return nil }
func (x *session) Mail(string, *smtp.MailOptions) error {
	return nil
}

func (x *session) Rcpt(string, *smtp.RcptOptions) error {
	x.rcpt++
	return nil
}

func (x *session) Data(r io.Reader) error {
	br := bufio.NewReader(r)
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, br) // r must be consumed
	ids := IDPattern.FindAllString(h.Get("X-Accountwatch-Events"), -1)
	if x.rcpt == 0 || len(ids) == 0 {
		x.s.Messages.refuse()
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "no X-Accountwatch-Events"}
	}
	x.s.Messages.accept(dedup(ids))
	return nil
}
