// Package listen serves a service's HTTP API or console on its address:
// plain HTTP, or TLS from a certificate and key file pair. The files are
// read again when either changes (a renewed certificate needs no restart);
// a pair that fails to load keeps the last good one serving.
package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Server is one HTTP server on its own listener.
type Server struct {
	hs  *http.Server
	ln  net.Listener
	tls bool
}

// CheckFiles checks a certificate and key pair: both or neither, and
// loadable (a PEM certificate chain and its private key).
func CheckFiles(certFile, keyFile string) error {
	switch {
	case certFile == "" && keyFile == "":
		return nil
	case certFile == "" || keyFile == "":
		return errors.New("set both the certificate and the key file, or neither")
	}
	_, err := tls.LoadX509KeyPair(certFile, keyFile)
	return err
}

// Serve listens on addr and serves h, with TLS when certFile and keyFile are
// set. It returns once the listener is open.
func Serve(addr string, h http.Handler, certFile, keyFile string) (*Server, error) {
	if err := CheckFiles(certFile, keyFile); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, hs: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10}}
	if certFile == "" {
		go s.hs.Serve(ln)
		return s, nil
	}
	kp := &keyPair{cert: certFile, key: keyFile}
	if _, err := kp.get(nil); err != nil {
		ln.Close()
		return nil, err
	}
	s.tls = true
	s.hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}
	go s.hs.ServeTLS(ln, "", "")
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// TLS tells whether the server speaks TLS.
func (s *Server) TLS() bool { return s.tls }

// URL is the server's base URL.
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Shutdown stops accepting and waits for requests under way until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.hs.Shutdown(ctx) }

// keyPair is a certificate loaded from files, reloaded when they change.
type keyPair struct {
	cert, key string

	mu      sync.Mutex
	current *tls.Certificate
	stamp   [2]time.Time
}

// get returns the certificate, re-reading the files if they changed (two
// stats per TLS handshake; a connection makes one).
func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var stamp [2]time.Time
	for i, f := range []string{k.cert, k.key} {
		st, err := os.Stat(f)
		if err != nil {
			if k.current != nil {
				return k.current, nil
			}
			return nil, err
		}
		stamp[i] = st.ModTime()
	}
	if k.current != nil && stamp == k.stamp {
		return k.current, nil
	}
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		if k.current != nil {
			return k.current, nil // mid-rotation (one file written): keep serving the last good pair
		}
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	k.current, k.stamp = &c, stamp
	return k.current, nil
}
