package receivers

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/textproto"
	"strconv"
	"strings"
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
	body, err := io.ReadAll(br) // r must be consumed
	if err != nil {
		return err
	}
	ids := IDPattern.FindAllString(h.Get("X-Accountwatch-Events"), -1)
	if x.rcpt == 0 || len(ids) == 0 {
		x.s.Messages.refuse()
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "no X-Accountwatch-Events"}
	}
	var text bytes.Buffer
	dec := new(mime.WordDecoder)
	for k, vs := range h {
		for _, v := range vs {
			if d, err := dec.DecodeHeader(v); err == nil {
				v = d
			}
			fmt.Fprintf(&text, "%s: %s\n", k, v)
		}
	}
	mailText(&text, h, body)
	x.s.Messages.content(text.Bytes())
	x.s.Messages.accept(dedup(ids))
	return nil
}

// mailText appends the decoded text of a message part (its parts, when
// multipart; quoted-printable and base64 undone) to out.
func mailText(out *bytes.Buffer, h textproto.MIMEHeader, body []byte) {
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "base64":
		if b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), "")); err == nil {
			body = b
		}
	case "quoted-printable":
		if b, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err == nil {
			body = b
		}
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		out.Write(body)
		out.WriteByte('\n')
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err != nil {
			return
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return
		}
		mailText(out, p.Header, b)
	}
}
