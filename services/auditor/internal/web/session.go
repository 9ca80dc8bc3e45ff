package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Console sessions are random, kept server-side, and end at sign-out, after
// sessionTTL, or when the auditor restarts (which is how its token is
// rotated): the cookie holds nothing derived from the token.
const (
	sessionTTL  = 12 * time.Hour
	maxSessions = 10_000
	// cookieName is the session cookie over plain HTTP; over HTTPS it takes
	// the __Host- prefix, which browsers accept only Secure, host-only, on /.
	cookieName       = "aw_audit"
	secureCookieName = "__Host-aw_audit"
	csrfField        = "csrf"
	csrfHeader       = "X-CSRF-Token"
)

// session is one sign-in.
type session struct {
	csrf    string
	expires time.Time
	// flash is a message for the next page shown (set by a form's handler,
	// never read from a request).
	flash string
}

// sessions are the signed-in browsers, by the SHA-256 of their cookie.
type sessions struct {
	mu sync.Mutex
	m  map[[32]byte]*session
}

func random() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session and returns its cookie value.
func (ss *sessions) create(now time.Time) (string, *session) {
	id := random()
	s := &session{csrf: random(), expires: now.Add(sessionTTL)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[[32]byte]*session{}
	}
	if len(ss.m) >= maxSessions {
		ss.prune(now)
	}
	ss.m[sha256.Sum256([]byte(id))] = s
	return id, s
}

// prune drops expired sessions, and, if that is not enough, the one that
// expires first. Called with mu held.
func (ss *sessions) prune(now time.Time) {
	var first [32]byte
	var firstAt time.Time
	for k, s := range ss.m {
		if now.After(s.expires) {
			delete(ss.m, k)
		} else if firstAt.IsZero() || s.expires.Before(firstAt) {
			first, firstAt = k, s.expires
		}
	}
	if len(ss.m) >= maxSessions {
		delete(ss.m, first)
	}
}

func (ss *sessions) get(id string, now time.Time) (*session, bool) {
	if id == "" {
		return nil, false
	}
	k := sha256.Sum256([]byte(id))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[k]
	if ok && now.After(s.expires) {
		delete(ss.m, k)
		return nil, false
	}
	return s, ok
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, sha256.Sum256([]byte(id)))
}

// takeFlash returns the session's message once.
func (ss *sessions) takeFlash(s *session) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (ss *sessions) setFlash(s *session, msg string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s.flash = msg
}

// ParseTrustedProxies reads a comma-separated list of CIDRs or addresses.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range strings.Split(list, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if a, err := netip.ParseAddr(v); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// secure reports whether the browser reached the console over HTTPS: the
// request came over TLS, or through a trusted proxy that says it did.
func (s *Server) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if len(s.TrustedProxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	trusted := false
	for _, p := range s.TrustedProxies {
		if p.Contains(peer.Unmap()) {
			trusted = true
			break
		}
	}
	if !trusted {
		return false
	}
	if strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https") {
		return true
	}
	// RFC 7239: Forwarded: for=…;proto=https
	for _, part := range strings.FieldsFunc(r.Header.Get("Forwarded"), func(c rune) bool { return c == ';' || c == ',' }) {
		if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && strings.EqualFold(k, "proto") && strings.EqualFold(strings.Trim(v, `"`), "https") {
			return true
		}
	}
	return false
}

func (s *Server) cookieName(r *http.Request) string {
	if s.secure(r) {
		return secureCookieName
	}
	return cookieName
}

// current is the request's session, if it has a live one.
func (s *Server) current(r *http.Request) (string, *session, bool) {
	c, err := r.Cookie(s.cookieName(r))
	if err != nil {
		return "", nil, false
	}
	sess, ok := s.sessions.get(c.Value, time.Now())
	return c.Value, sess, ok
}

// csrfOK checks a state-changing request's token against its session's.
func csrfOK(r *http.Request, sess *session) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// contentSecurityPolicy allows the console's own stylesheet and forms and
// nothing else: no script, no frame, no other origin.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// protect sets the security headers of every response and refuses
// cross-origin state-changing requests (Sec-Fetch-Site, else Origin against
// Host: net/http's CrossOriginProtection).
func (s *Server) protect(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Logger.Warn("cross-origin request refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		http.Error(w, "cross-origin request refused: the console takes forms from its own pages only", http.StatusForbidden)
	}))
	guarded := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if s.secure(r) {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		guarded.ServeHTTP(w, r)
	})
}
