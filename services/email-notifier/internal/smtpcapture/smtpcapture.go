// Package smtpcapture is an in-process SMTP server (emersion/go-smtp) for
// tests and benchmarks: it records every message, speaks STARTTLS or implicit
// TLS with a certificate it makes, authenticates with PLAIN, LOGIN or
// CRAM-MD5, can answer any command with an injected SMTP error, and can be
// stopped and started again on the same address (a server down for a while).
package smtpcapture

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one received message.
type Message struct {
	From string
	To   []string
	Data []byte
	// User is who authenticated ("" without auth).
	User string
	At   time.Time
}

// Fault decides an injected answer for a command ("MAIL", "RCPT", "DATA") of
// the n-th attempt at that command (counting from 1); nil lets it pass.
type Fault func(cmd string, n int, arg string) *smtp.SMTPError

// Options configure the server.
type Options struct {
	// TLS: "none", "starttls" or "implicit".
	TLS string
	// Users maps user names to passwords; empty disables AUTH.
	Users map[string]string
	Fault Fault
}

// Server is the capture server.
type Server struct {
	opts   Options
	addr   string
	CAFile string // PEM of the certificate, for AW_SMTP_TLS_CA

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener
	msgs     []Message
	attempts map[string]int
	tlsCfg   *tls.Config
	sessions int
}

// Sessions counts the connections clients opened.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Start starts a server on a random local port; dir holds its certificate.
func Start(dir string, opts Options) (*Server, error) {
	s := &Server{opts: opts, attempts: map[string]int{}}
	if opts.TLS != "" && opts.TLS != "none" {
		cfg, caFile, err := makeCert(dir)
		if err != nil {
			return nil, err
		}
		s.tlsCfg, s.CAFile = cfg, caFile
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(s)
	srv.Addr = s.addr
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if s.opts.TLS == "starttls" {
		srv.TLSConfig = s.tlsCfg
	}
	if s.opts.TLS == "implicit" {
		ln = tls.NewListener(ln, s.tlsCfg)
	}
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go srv.Serve(ln)
}

// Host and Port are where clients connect.
func (s *Server) Host() string { h, _, _ := net.SplitHostPort(s.addr); return h }

// Port is the server's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

// Stop closes the server (connections are refused until Restart).
func (s *Server) Stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if ln != nil {
		ln.Close() // Serve may not have taken it yet; Close alone would miss it
	}
	if srv != nil {
		srv.Close()
	}
}

// Restart listens again on the same address.
func (s *Server) Restart() error {
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger a moment
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.serve(ln)
	return nil
}

// Messages returns what was received.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(*smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	return &session{s: s}, nil
}

func (s *Server) fault(cmd, arg string) error {
	if s.opts.Fault == nil {
		return nil
	}
	s.mu.Lock()
	s.attempts[cmd]++
	n := s.attempts[cmd]
	s.mu.Unlock()
	if e := s.opts.Fault(cmd, n, arg); e != nil {
		return e
	}
	return nil
}

type session struct {
	s    *Server
	user string
	msg  Message
}

func (ss *session) AuthMechanisms() []string {
	if len(ss.s.opts.Users) == 0 {
		return nil
	}
	return []string{sasl.Plain, sasl.Login, "CRAM-MD5"}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	users := ss.s.opts.Users
	check := func(u, p string) error {
		if pw, ok := users[u]; !ok || pw != p {
			return errBadAuth
		}
		ss.user = u
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, u, p string) error { return check(u, p) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	case "CRAM-MD5":
		return &cramServer{users: users, done: func(u string) { ss.user = u }}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if len(ss.s.opts.Users) > 0 && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	if err := ss.s.fault("MAIL", from); err != nil {
		return err
	}
	ss.msg = Message{From: from, User: ss.user}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.s.fault("RCPT", to); err != nil {
		return err
	}
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := ss.s.fault("DATA", strings.Join(ss.msg.To, ",")); err != nil {
		return err
	}
	ss.msg.Data, ss.msg.At = b, time.Now()
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, ss.msg)
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.msg = Message{} }
func (ss *session) Logout() error { return nil }

// errBadAuth is what real servers answer to wrong credentials (go-smtp's
// default is a temporary 454).
var errBadAuth = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}

// loginServer is the server side of AUTH LOGIN.
type loginServer struct {
	step  int
	user  string
	check func(u, p string) error
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(resp) > 0 { // initial response: the user name
			l.user, l.step = string(resp), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

// cramServer is the server side of AUTH CRAM-MD5.
type cramServer struct {
	users     map[string]string
	challenge string
	done      func(string)
}

func (c *cramServer) Next(resp []byte) ([]byte, bool, error) {
	if c.challenge == "" {
		var n [8]byte
		rand.Read(n[:])
		c.challenge = fmt.Sprintf("<%x.%d@localhost>", n, time.Now().UnixNano())
		return []byte(c.challenge), false, nil
	}
	user, digest, ok := strings.Cut(string(resp), " ")
	pw, known := c.users[user]
	if !ok || !known {
		return nil, true, errBadAuth
	}
	m := hmac.New(md5.New, []byte(pw))
	m.Write([]byte(c.challenge))
	if hex.EncodeToString(m.Sum(nil)) != digest {
		return nil, true, errBadAuth
	}
	c.done(user)
	return nil, true, nil
}

// makeCert makes a self-signed certificate for 127.0.0.1 and localhost and
// writes it to dir/smtp-ca.pem.
func makeCert(dir string) (*tls.Config, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "smtpcapture"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, "", err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "", err
	}
	caFile := filepath.Join(dir, "smtp-ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		return nil, "", err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, caFile, nil
}
