// Package web is the auditor's HTTP side: the audit console (server-rendered
// pages: accounts by standing, an account's timeline, an event with its
// deliveries, dead letters with re-drive, webhook subscriptions, verification)
// behind a sign-in, and the JSON API (replay/export, verify, timeline,
// re-drive, accounts) behind the bearer token.
package web

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/services/auditor/internal/standing"
)

//go:embed templates/*.html assets/*.css
var files embed.FS

// Server serves the console and the API.
type Server struct {
	Token      string
	JS         jetstream.JetStream
	Index      *standing.Index
	Log        *deliverylog.Log
	DeadLetter *deadletter.Store
	// Roster validates re-drive targets (required for the re-drive API).
	Roster deadletter.Roster
	// TrustedProxies may say, with X-Forwarded-Proto or Forwarded, that the
	// browser came over HTTPS (the session cookie is then Secure).
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	// VerifyOptions are what the verification page and API check, with the
	// checkpoint keys they trust.
	VerifyOptions audit.Options

	pages    map[string]*template.Template
	login    *template.Template
	sessions sessions
}

var funcs = template.FuncMap{
	"label":       func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"money":       func(s string) string { return describe.Money(s, "") },
	"pathEscape":  url.PathEscape,
	"queryEscape": url.QueryEscape,
	"trimType":    func(s string) string { return strings.TrimPrefix(s, "com.accountwatch.") },
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16]
		}
		return s
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"add": func(a, b int) int { return a + b },
	"sub": func(a, b int) int { return a - b },
	"pageURL": func(q standing.Query, page int) string {
		v := url.Values{"page": {strconv.Itoa(page)}}
		if q.Standing != "" {
			v.Set("standing", q.Standing)
		}
		if q.Q != "" {
			v.Set("q", q.Q)
		}
		return "/?" + v.Encode()
	},
}

// Init parses the templates.
func (s *Server) Init() error {
	s.pages = map[string]*template.Template{}
	for _, p := range []string{"overview", "account", "event", "deadletters", "subscriptions", "verify"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("template %s: %w", p, err)
		}
		s.pages[p] = t
	}
	var err error
	s.login, err = template.New("login").Funcs(funcs).ParseFS(files, "templates/login.html")
	return err
}

// Handler routes the console and the API, behind the security headers and
// the cross-origin check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.signIn)
	mux.Handle("POST /logout", s.session(http.HandlerFunc(s.signOut)))
	mux.Handle("GET /assets/", http.FileServerFS(files))
	console := http.NewServeMux()
	console.HandleFunc("GET /{$}", s.overview)
	console.HandleFunc("GET /accounts/{provider}/{instance}/{account}", s.account)
	console.HandleFunc("GET /events/{seq}", s.event)
	console.HandleFunc("GET /dead-letters", s.deadLetters)
	console.HandleFunc("POST /dead-letters/{seq}/redrive", s.redriveLetter)
	console.HandleFunc("GET /subscriptions", s.subscriptions)
	console.HandleFunc("GET /verify", s.verify)
	mux.Handle("/", s.session(console))
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/replay", s.apiReplay)
	api.HandleFunc("GET /api/v1/verify", s.apiVerify)
	api.HandleFunc("GET /api/v1/timeline", s.apiTimeline)
	api.HandleFunc("POST /api/v1/redrive", s.apiRedrive)
	api.HandleFunc("GET /api/v1/accounts", s.apiAccounts)
	mux.Handle("/api/", s.bearer(api))
	return s.protect(mux)
}

func (s *Server) tokenOK(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) == 1
}

// sessionWriter carries the request's session to render and the handlers.
type sessionWriter struct {
	http.ResponseWriter
	sess *session
}

func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func sessionOf(w http.ResponseWriter) *session {
	if sw, ok := w.(*sessionWriter); ok {
		return sw.sess
	}
	return nil
}

// session lets a signed-in browser in; a state-changing request must also
// carry the session's CSRF token.
func (s *Server) session(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, sess, ok := s.current(r)
		if !ok {
			if !safeMethod(r.Method) {
				http.Error(w, "not signed in (or the session ended): sign in again", http.StatusForbidden)
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if !safeMethod(r.Method) && !csrfOK(r, sess) {
			s.Logger.Warn("console request without its CSRF token refused", "method", r.Method, "path", r.URL.Path)
			http.Error(w, "the form's CSRF token is missing or wrong: reload the page and try again", http.StatusForbidden)
			return
		}
		next.ServeHTTP(&sessionWriter{ResponseWriter: w, sess: sess}, r)
	})
}

// bearer lets the API in with the token; a console session may read (the
// console's export links), never change anything.
func (s *Server) bearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.tokenOK(tok) {
			next.ServeHTTP(w, r)
			return
		}
		if _, _, ok := s.current(r); ok && safeMethod(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token (a console session only reads the API)"})
	})
}

func (s *Server) loginPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = s.login.ExecuteTemplate(w, "login", "")
}

// signIn starts a fresh random session (a session the browser held before
// is ended: no fixation).
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if !s.tokenOK(r.PostFormValue("token")) {
		s.Logger.Warn("console sign-in refused: wrong token", "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_ = s.login.ExecuteTemplate(w, "login", "That token is not the auditor's.")
		return
	}
	if old, _, ok := s.current(r); ok {
		s.sessions.delete(old)
	}
	id, _ := s.sessions.create(time.Now())
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r), Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(sessionTTL / time.Second), Secure: s.secure(r)})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signOut ends the session on the server: the cookie is worth nothing after.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if id, _, ok := s.current(r); ok {
		s.sessions.delete(id)
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure(r)})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type page struct {
	Title, Nav, Flash string
	// CSRF is the session's token, for the page's forms.
	CSRF string
	Data any
}

func (s *Server) render(w http.ResponseWriter, name string, p page) {
	if sess := sessionOf(w); sess != nil {
		p.CSRF = sess.csrf
	}
	var b bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		s.Logger.Error("render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = b.WriteTo(w)
}

func (s *Server) fail(w http.ResponseWriter, code int, err error) {
	if code >= 500 {
		s.Logger.Error("console", "err", err)
	}
	http.Error(w, err.Error(), code)
}

// Overview is the data of the accounts page.
type Overview struct {
	Query     standing.Query
	Result    standing.Result
	All       int
	Standings []string
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	q, err := accountQuery(r.URL.Query(), 50)
	if err != nil {
		s.fail(w, http.StatusBadRequest, err)
		return
	}
	res := s.Index.Find(q)
	s.render(w, "overview", page{Title: "Accounts", Nav: "overview",
		Data: Overview{Query: q, Result: res, All: s.Index.Len(), Standings: standing.All}})
}

// maxQuery bounds a search or an identifier in a query.
const maxQuery = 256

// accountQuery reads standing, q, page and per_page, naming the one at fault.
func accountQuery(v url.Values, perPage int) (standing.Query, error) {
	q := standing.Query{Standing: v.Get("standing"), Q: v.Get("q"), PerPage: perPage, Page: 1}
	if q.Standing != "" && !slices.Contains(standing.All, q.Standing) {
		return q, fmt.Errorf("standing: %.40q (want one of %s)", q.Standing, strings.Join(standing.All, ", "))
	}
	if len(q.Q) > maxQuery {
		return q, fmt.Errorf("q: longer than %d bytes", maxQuery)
	}
	for _, f := range []struct {
		key      string
		dst      *int
		min, max int
	}{{"page", &q.Page, 1, 1 << 30}, {"per_page", &q.PerPage, 1, 500}} {
		if raw := v.Get(f.key); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil || n < f.min || n > f.max {
				return q, fmt.Errorf("%s: %.40q (want %d to %d)", f.key, raw, f.min, f.max)
			}
			*f.dst = n
		}
	}
	return q, nil
}

// TimelineRow is one event of an account's timeline.
type TimelineRow struct {
	Seq                                  uint64
	Time                                 time.Time
	Headline, Change, Severity, Evidence string
}

func (s *Server) account(w http.ResponseWriter, r *http.Request) {
	p, inst, id := event.Provider(r.PathValue("provider")), r.PathValue("instance"), r.PathValue("account")
	recs, err := audit.Timeline(r.Context(), s.JS, p, inst, id, 500)
	if errors.Is(err, audit.ErrInvalid) {
		s.fail(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	acct, _ := s.Index.Get(p, inst, id)
	rows := make([]TimelineRow, 0, len(recs))
	for i := len(recs) - 1; i >= 0; i-- { // newest first
		ev, _ := recs[i].Event()
		rows = append(rows, TimelineRow{Seq: recs[i].Seq, Time: ev.Cloud.Time(), Headline: describe.Headline(ev), Change: describe.Change(ev),
			Severity: string(ev.Data.Severity), Evidence: strings.TrimSpace(ev.Data.Evidence.Endpoint + " " + ev.Data.Evidence.RequestID)})
	}
	name := id
	if acct.Name != "" {
		name = acct.Name
	}
	s.render(w, "account", page{Title: name, Nav: "overview", Data: struct {
		Provider event.Provider
		Instance string
		ID       string
		Account  standing.Account
		Timeline []TimelineRow
	}{p, inst, id, acct, rows}})
}

func (s *Server) event(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		s.fail(w, http.StatusNotFound, fmt.Errorf("no event %q", r.PathValue("seq")))
		return
	}
	ep, err := s.loadEvent(r.Context(), seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		s.fail(w, http.StatusNotFound, fmt.Errorf("no event at sequence %d", seq))
		return
	}
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	s.render(w, "event", page{Title: ep.Headline, Nav: "overview", Data: ep})
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	letters, err := s.DeadLetter.List(r.Context(), deadletter.Filter{Limit: 500})
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	flash := ""
	if sess := sessionOf(w); sess != nil {
		flash = s.sessions.takeFlash(sess)
	}
	s.render(w, "deadletters", page{Title: "Dead letters", Nav: "dlq", Flash: flash, Data: letters})
}

func (s *Server) redriveLetter(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		s.fail(w, http.StatusNotFound, err)
		return
	}
	l, err := s.DeadLetter.Redrive(r.Context(), seq)
	msg := fmt.Sprintf("Re-drove dead letter %d to %s / %s.", seq, l.Sink, l.Receiver)
	if err != nil {
		msg = "Not re-driven: " + err.Error()
	}
	s.Logger.Info("console re-drive", "seq", seq, "err", err)
	if sess := sessionOf(w); sess != nil {
		s.sessions.setFlash(sess, msg)
	}
	http.Redirect(w, r, "/dead-letters", http.StatusSeeOther)
}

// Subscription is a webhook endpoint as the console shows it (read from the
// subscriptions bucket; its owner is the webhook dispatcher).
type Subscription struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Description    string    `json:"description"`
	Types          []string  `json:"types"`
	ContentMode    string    `json:"content_mode"`
	Status         string    `json:"status"`
	DisabledReason string    `json:"disabled_reason"`
	CreatedAt      time.Time `json:"created_at"`
}

func (s *Server) subscriptions(w http.ResponseWriter, r *http.Request) {
	kv, err := s.JS.KeyValue(r.Context(), eventbus.BucketSubscriptions)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	var subs []Subscription
	if lister, err := kv.ListKeys(r.Context()); err == nil {
		for k := range lister.Keys() {
			if e, err := kv.Get(r.Context(), k); err == nil {
				var sub Subscription
				if json.Unmarshal(e.Value(), &sub) == nil {
					subs = append(subs, sub)
				}
			}
		}
	}
	s.render(w, "subscriptions", page{Title: "Webhook subscriptions", Nav: "subs", Data: subs})
}

// verifyPage is what the verification page shows: the report, the newest
// stored checkpoint's result, the keys trusted, and the heads (a page of them).
type verifyPage struct {
	*audit.Report
	Latest      *audit.CheckpointResult
	TrustedKeys []string
	Heads       []checkpoint.Head
	MoreHeads   int
}

// maxHeads bounds the chain heads listed on the page (the API lists all).
const maxHeads = 500

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	rep, err := audit.Verify(r.Context(), s.JS, s.VerifyOptions)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	v := verifyPage{Report: &rep}
	for i := range rep.Checkpoints {
		if strings.HasPrefix(rep.Checkpoints[i].Source, eventbus.StreamCheckpoints) {
			v.Latest = &rep.Checkpoints[i]
		}
	}
	for _, k := range s.VerifyOptions.Trusted {
		v.TrustedKeys = append(v.TrustedKeys, checkpoint.Fingerprint(k))
	}
	slices.SortFunc(rep.Heads, func(a, b checkpoint.Head) int { return strings.Compare(a.Account, b.Account) })
	v.Heads = rep.Heads[:min(len(rep.Heads), maxHeads)]
	v.MoreHeads = len(rep.Heads) - len(v.Heads)
	s.render(w, "verify", page{Title: "Verify", Nav: "verify", Data: &v})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Bounds of the API's selection parameters.
const (
	maxTypes = 32
	maxLimit = 10_000_000
)

// selection reads a replay selection from query parameters, naming the one
// at fault.
func selection(q url.Values) (audit.Selection, error) {
	sel := audit.Selection{Provider: event.Provider(q.Get("provider")), Instance: q.Get("instance"), Account: q.Get("account")}
	for _, k := range []string{"provider", "instance", "account", "since", "until", "sink", "receiver", "to"} {
		if len(q.Get(k)) > maxQuery {
			return sel, fmt.Errorf("%w: %s: longer than %d bytes", audit.ErrInvalid, k, maxQuery)
		}
	}
	if len(q["type"]) > maxTypes {
		return sel, fmt.Errorf("%w: type: more than %d", audit.ErrInvalid, maxTypes)
	}
	var err error
	now := time.Now()
	for _, f := range []struct {
		key string
		dst *time.Time
	}{{"since", &sel.Since}, {"until", &sel.Until}} {
		if *f.dst, err = config.ParseTime(q.Get(f.key), now); err != nil {
			return sel, fmt.Errorf("%w: %s: %v", audit.ErrInvalid, f.key, err)
		}
	}
	for _, f := range []struct {
		key string
		dst *uint64
	}{{"from_seq", &sel.FromSeq}, {"to_seq", &sel.ToSeq}} {
		if v := q.Get(f.key); v != "" {
			if *f.dst, err = strconv.ParseUint(v, 10, 64); err != nil {
				return sel, fmt.Errorf("%w: %s: %.40q", audit.ErrInvalid, f.key, v)
			}
		}
	}
	for _, t := range q["type"] {
		if !strings.HasPrefix(t, "com.accountwatch.") {
			t = "com.accountwatch." + t
		}
		sel.Types = append(sel.Types, event.Type(t))
	}
	if v := q.Get("min_severity"); v != "" {
		if sel.MinSeverity, err = event.ParseSeverity(v); err != nil {
			return sel, fmt.Errorf("%w: min_severity: %v", audit.ErrInvalid, err)
		}
	}
	if v := q.Get("limit"); v != "" {
		if sel.Limit, err = strconv.Atoi(v); err != nil || sel.Limit < 0 || sel.Limit > maxLimit {
			return sel, fmt.Errorf("%w: limit: %.40q (want 0 to %d)", audit.ErrInvalid, v, maxLimit)
		}
	}
	if v := q.Get("dry_run"); v != "" && v != "true" && v != "false" {
		return sel, fmt.Errorf("%w: dry_run: %.40q (want true or false)", audit.ErrInvalid, v)
	}
	return sel, sel.Validate()
}

var contentTypes = map[string]string{audit.FormatJSONL: "application/x-ndjson", audit.FormatCSV: "text/csv; charset=utf-8", audit.FormatTable: "text/plain; charset=utf-8"}

func (s *Server) apiReplay(w http.ResponseWriter, r *http.Request) {
	sel, err := selection(r.URL.Query())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = audit.FormatJSONL
	}
	ct, ok := contentTypes[format]
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "format: want jsonl, csv or table"})
		return
	}
	w.Header().Set("Content-Type", ct)
	if format != audit.FormatTable {
		w.Header().Set("Content-Disposition", `attachment; filename="accountwatch-events.`+map[string]string{audit.FormatJSONL: "jsonl", audit.FormatCSV: "csv"}[format]+`"`)
	}
	wr, _ := audit.NewWriter(format, w)
	if err := audit.Replay(r.Context(), s.JS, sel, nil, wr.Write); err != nil {
		s.Logger.Warn("replay ended early", "err", err) // the header is out: the body simply ends
	}
	_ = wr.Close()
}

func (s *Server) apiVerify(w http.ResponseWriter, r *http.Request) {
	rep, err := audit.Verify(r.Context(), s.JS, s.VerifyOptions)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": rep.OK(), "report": rep})
}

func (s *Server) apiTimeline(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	recs, err := audit.Timeline(r.Context(), s.JS, event.Provider(q.Get("provider")), q.Get("instance"), q.Get("account"), 0)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	out := make([]map[string]any, 0, len(recs))
	for i := range recs {
		ev, _ := recs[i].Event()
		out = append(out, map[string]any{"seq": recs[i].Seq, "stored": recs[i].Stored, "headline": describe.Headline(ev), "event": ev.Cloud})
	}
	writeJSON(w, http.StatusOK, map[string]any{"timeline": out})
}

// apiRedrive re-sends a selection to one receiver of one sink, marked replayed;
// dry_run=true only counts.
func (s *Server) apiRedrive(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sel, err := selection(q)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	dry := q.Get("dry_run") == "true"
	if s.Roster == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "re-drive targets cannot be checked (no roster)"})
		return
	}
	if err := deadletter.CheckTarget(r.Context(), s.Roster, q.Get("sink"), q.Get("receiver"), q.Get("to")); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, deadletter.ErrInvalidTarget) {
			code = http.StatusBadRequest
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	var ids []string
	n, err := audit.Redrive(r.Context(), s.JS, sel, audit.Target{Sink: q.Get("sink"), Receiver: q.Get("receiver"), To: q.Get("to")}, dry, func(rec *audit.Record) {
		if len(ids) < 100 {
			ids = append(ids, rec.Raw.Header.Get("ce-id"))
		}
	})
	if errors.Is(err, audit.ErrInvalid) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	s.Logger.Info("re-drive", "sink", q.Get("sink"), "receiver", q.Get("receiver"), "to", q.Get("to"), "events", n, "dry_run", dry)
	writeJSON(w, http.StatusOK, map[string]any{"dry_run": dry, "events": n, "first_ids": ids})
}

func (s *Server) apiAccounts(w http.ResponseWriter, r *http.Request) {
	q, err := accountQuery(r.URL.Query(), 100)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.Index.Find(q))
}
