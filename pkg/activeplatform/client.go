// Package activeplatform is a client of the ActivePlatform vendor API
// (GET /api/vendor/v1/accounts/{id}.json and the paged list), on net/http. It
// decodes tolerantly (money as number or string, status spelling variants,
// nulls, unknown fields), bounds response sizes, retries 5xx and timeouts only,
// and never lets the api_token reach an error or a log line.
package activeplatform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/accountwatch/accountwatch/pkg/redact"
	"github.com/accountwatch/accountwatch/pkg/retryafter"
	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// Client reads accounts from one ActivePlatform instance.
type Client struct {
	base       *url.URL
	basePath   string
	tokenQuery string // "api_token=…", encoded once
	hc         *http.Client
	limiter    *rate.Limiter
	retry      upstream.Retry
	maxBody    int64
	bodyHint   atomic.Int64 // size of the last answer, to size the next read
	buffers    sync.Pool    // listing pages are read into reused buffers
}

func (c *Client) buffer() []byte {
	if b, ok := c.buffers.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return nil
}

// release returns a page's buffer once nothing refers to its bytes.
func (c *Client) release(b []byte) {
	if cap(b) > 0 && int64(cap(b)) <= c.maxBody+bytes.MinRead {
		c.buffers.Put(&b)
	}
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client (its Timeout bounds each attempt).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRateLimit caps requests per second on this connection (0: unlimited).
func WithRateLimit(qps float64, burst int) Option {
	return func(c *Client) {
		if qps > 0 {
			c.limiter = rate.NewLimiter(rate.Limit(qps), max(1, burst))
		}
	}
}

// WithRetry replaces the retry policy.
func WithRetry(r upstream.Retry) Option { return func(c *Client) { c.retry = r } }

// WithMaxBody bounds the bytes read of one answer (default 8 MiB).
func WithMaxBody(n int64) Option { return func(c *Client) { c.maxBody = n } }

// New builds a client of baseURL (scheme and host, e.g. https://ap.example.com).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("activeplatform: base URL %q: want http(s)://host", redact.String(baseURL))
	}
	if token == "" {
		return nil, errors.New("activeplatform: empty api token")
	}
	c := &Client{
		base: u, basePath: strings.TrimRight(u.Path, "/"), tokenQuery: url.Values{"api_token": {token}}.Encode(), retry: upstream.DefaultRetry, maxBody: 8 << 20,
		// Each attempt is bounded by the dial, TLS and response-header timeouts and
		// the body by its size; the caller's context bounds the whole call. (A
		// Client.Timeout would arm a timer per request on the poller's hot path.)
		hc: &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, TLSHandshakeTimeout: 5 * time.Second,
			ResponseHeaderTimeout: 15 * time.Second,
		}},
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Get reads one account.
func (c *Client) Get(ctx context.Context, id string) (*Account, error) {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return nil, &upstream.Error{Kind: upstream.ErrRejected, Op: "get account", Msg: fmt.Sprintf("bad account id %q", id)}
	}
	op := "get account " + id
	var acct *Account
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		body, ev, _, err := c.do(ctx, op, "/api/vendor/v1/accounts/"+url.PathEscape(id)+".json", nil, false)
		if err != nil {
			return err
		}
		a, err := DecodeAccount(body)
		if err != nil {
			e := upstream.Malformed(op, ev.RequestID, err)
			e.Account = id
			return e
		}
		if a.ID != id {
			return &upstream.Error{Kind: upstream.ErrMalformed, Op: op, RequestID: ev.RequestID, Account: id, Field: "id", Msg: "the answer is another account"}
		}
		a.Evidence = ev
		acct = a
		return nil
	})
	return acct, err
}

// ListOptions select accounts of a listing.
type ListOptions struct {
	// UpdatedSince lists only accounts updated at or after it (filters[updated_at]):
	// the incremental scan. Zero lists all: the full scan.
	UpdatedSince time.Time
	Status       string
	PerPage      int // default 200
	// Predict, when set, guesses each next account of a listing from an
	// earlier one (the poller's last scan: listings keep their order). A
	// right guess spares the scan for the account's end; a wrong one costs a
	// hash. Only pages with an X-Total-Count are split as fn goes and use it.
	Predict Predictor
}

// List pages through the listing until its end, calling fn for each account.
// Each account's evidence hashes the account's own JSON within its page.
func (c *Client) List(ctx context.Context, o ListOptions, fn func(*Account) error) error {
	return c.ListRaw(ctx, o, func(item []byte, _ upstream.Fingerprint, ev upstream.Evidence) error {
		a, err := DecodeItem(item, ev)
		if err != nil {
			return err
		}
		return fn(a)
	})
}

// ErrRepeatedPage is a listing whose pages repeat (an upstream that ignores
// the page parameter): the listing is not read to its end.
var ErrRepeatedPage = errors.New("the listing repeats a page")

// ListRaw pages through the listing like List, but hands fn each account's raw
// JSON and its upstream.Fingerprint before any decoding: a poller that has
// seen exactly these bytes before can skip the account (DecodeItem decodes it
// when it cannot). item is only valid during fn. The next page is fetched
// while fn works through the current one (one request at a time all the
// same).
//
// Where the listing ends: the document gives no page cap, no total and no
// end marker, so an upstream may serve fewer accounts per page than asked.
// A page with accounts therefore ends the listing only when it is short and
// the answer's X-Total-Count (if any) says every account was listed; an
// empty page always ends it. A listing read to its end is complete: the
// poller takes an account's absence from it for a removal.
//
// When X-Total-Count announces a next page, its request goes out as soon as
// fn takes this page, and the page is split as fn goes, where o.Predict can
// spare the scan for each item's end; without the header, the page is split
// first, and any page with accounts is followed by a request for the next.
func (c *Client) ListRaw(ctx context.Context, o ListOptions, fn func(item []byte, fp upstream.Fingerprint, ev upstream.Evidence) error) error {
	per := o.PerPage
	if per <= 0 {
		per = 200
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Unbuffered: fn takes a page only once it has walked the one before and
	// found it was not the last, so a request that waits for the hand-over is
	// never more than one past the listing's end, whatever a header announced.
	pages := make(chan listPage)
	goOn := make(chan struct{}, 1) // a page the fetcher could not judge was not the last: go on
	go func() {
		defer close(pages)
		next := c.startPage(ctx, 1, per, o)
		for n := 1; ; n++ {
			f := <-next
			next = nil
			p := listPage{n: n, body: f.body, ev: f.ev, err: f.err, total: f.total}
			announced := false
			switch {
			case p.err != nil:
			case f.total >= 0:
				// Whether the page before this one was the last is known only
				// once fn has walked it: the request waits for the hand-over.
				// An empty page ends the listing whatever the header says:
				// no request past it (a wrapped page is judged by fn alone).
				announced = n*per < f.total && !emptyArray(f.body)
			default:
				// Split here: a page with accounts is followed by another
				// (an empty one ends the listing), and the one before was
				// not the last (or this one would not have been fetched).
				if p.err = p.splitAll(); p.err == nil && len(p.split) > 0 {
					next = c.startPage(ctx, n+1, per, o)
				}
			}
			p.more = next != nil || announced
			select {
			case pages <- p:
			case <-ctx.Done():
				return
			}
			if p.err != nil {
				return
			}
			if announced {
				next = c.startPage(ctx, n+1, per, o)
			}
			if next == nil {
				if p.split != nil {
					return // an empty page
				}
				select { // a page the header called the last: go on only if fn says so
				case <-goOn:
					next = c.startPage(ctx, n+1, per, o)
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	listed := 0
	var lastFirst upstream.Fingerprint
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		count, first, err := p.each(o.Predict, fn)
		if err != nil {
			return err
		}
		c.release(p.body) // fn is done with this page's bytes
		if count > 0 && p.n > 1 && first == lastFirst {
			return &upstream.Error{Kind: upstream.ErrMalformed, Op: pageOp(p.n), RequestID: p.ev.RequestID, Msg: ErrRepeatedPage.Error()}
		}
		lastFirst = first
		listed += count
		if count == 0 || count < per && p.total >= 0 && listed >= p.total {
			return nil // a request already sent for a next page is cancelled with ctx
		}
		if !p.more {
			goOn <- struct{}{}
		}
	}
	return ctx.Err()
}

// listPage is one page of a listing on its way from the fetcher to fn.
type listPage struct {
	n     int
	body  []byte
	ev    upstream.Evidence
	err   error
	total int         // the answer's X-Total-Count, -1 without one
	split []splitItem // split by the fetcher (no X-Total-Count), or nil
	more  bool        // the next page's request is out
}

type splitItem struct {
	item []byte
	fp   upstream.Fingerprint
}

// malformed turns a page walk's own failure into the page's upstream error;
// fn's errors pass as they are.
func (p *listPage) malformed(err error) error {
	var fe formatError
	if !errors.As(err, &fe) {
		return err
	}
	return &upstream.Error{Kind: upstream.ErrMalformed, Op: pageOp(p.n), RequestID: p.ev.RequestID, Msg: fe.Error()}
}

// splitAll splits the page at once (its items fingerprinted too).
func (p *listPage) splitAll() error {
	p.split = make([]splitItem, 0, 64)
	_, err := walkPage(p.body, nil, func(item []byte, fp upstream.Fingerprint) error {
		p.split = append(p.split, splitItem{item, fp})
		return nil
	})
	return p.malformed(err)
}

// each hands fn the page's items, splitting them as it goes unless the
// fetcher did, and returns how many there were and the first one's
// fingerprint. A malformed page fails where the walk finds it, after the
// items before.
func (p *listPage) each(predict Predictor, fn func(item []byte, fp upstream.Fingerprint, ev upstream.Evidence) error) (int, upstream.Fingerprint, error) {
	var first upstream.Fingerprint
	if p.split != nil {
		for i, s := range p.split {
			if i == 0 {
				first = s.fp
			}
			if err := fn(s.item, s.fp, p.ev); err != nil {
				return 0, first, err
			}
		}
		return len(p.split), first, nil
	}
	n, err := walkPage(p.body, predict, func(item []byte, fp upstream.Fingerprint) error {
		if first == (upstream.Fingerprint{}) {
			first = fp
		}
		return fn(item, fp, p.ev)
	})
	return n, first, p.malformed(err)
}

// fetched is one listing page as read, not yet split; total is the answer's
// X-Total-Count (-1 without one).
type fetched struct {
	body  []byte
	ev    upstream.Evidence
	total int
	err   error
}

// startPage fetches a listing page in the background.
func (c *Client) startPage(ctx context.Context, n, per int, o ListOptions) <-chan fetched {
	ch := make(chan fetched, 1)
	go func() { ch <- c.fetchPage(ctx, n, per, o) }()
	return ch
}

func pageOp(n int) string { return "list accounts page " + strconv.Itoa(n) }

func (c *Client) fetchPage(ctx context.Context, n, per int, o ListOptions) fetched {
	// sorting[reversed] is documented as required; sorting by id keeps the
	// pages' order stable while accounts change (an order by updated_at would
	// move a changed account across pages mid-scan).
	q := url.Values{"page": {strconv.Itoa(n)}, "per_page": {strconv.Itoa(per)}, "sorting[field]": {"id"}, "sorting[reversed]": {"false"}}
	if !o.UpdatedSince.IsZero() {
		q.Set("filters[updated_at]", o.UpdatedSince.UTC().Format(time.RFC3339))
	}
	if o.Status != "" {
		q.Set("filters[status]", o.Status)
	}
	var f fetched
	f.err = c.retry.Do(ctx, func(ctx context.Context) error {
		var err error
		f.body, f.ev, f.total, err = c.do(ctx, pageOp(n), "/api/vendor/v1/accounts.json", q, true)
		return err
	})
	return f
}

// do performs one GET and classifies its outcome; the token travels only in
// the request, never in what this returns. A listing page is read into a
// pooled buffer and gets no evidence hash of its own: each account's evidence
// is the hash of its own JSON, computed when it is decoded. For a page it also
// returns the X-Total-Count the answer announces (-1 without one).
func (c *Client) do(ctx context.Context, op, path string, q url.Values, page bool) ([]byte, upstream.Evidence, int, error) {
	ev := upstream.Evidence{Endpoint: strings.TrimPrefix(path, "/api/vendor/v1/")}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, ev, -1, &upstream.Error{Kind: upstream.ErrTransient, Op: op, Msg: "rate limiter: " + err.Error()}
		}
	}
	u := *c.base
	u.Path = c.basePath + path
	u.RawQuery = c.tokenQuery
	if len(q) > 0 {
		u.RawQuery = q.Encode() + "&" + c.tokenQuery
	}
	req := (&http.Request{Method: http.MethodGet, URL: &u, Host: u.Host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Accept": {"application/json"}}}).WithContext(ctx)
	resp, err := c.hc.Do(req)
	if err != nil {
		// A *url.Error carries the full URL, token included: only a redacted message leaves.
		return nil, ev, -1, &upstream.Error{Kind: upstream.ErrTransient, Op: op, Msg: redact.String(transportMessage(err))}
	}
	defer resp.Body.Close()
	ev.RequestID = firstHeader(resp.Header, "X-Request-Id", "X-Request-ID", "X-Amzn-Requestid")
	hint := resp.ContentLength
	if hint < 0 {
		hint = c.bodyHint.Load() // chunked: size the buffer like the last answer
	}
	var dst []byte
	if page {
		dst = c.buffer()
	}
	body, err := upstream.ReadBoundedInto(dst, resp.Body, hint, c.maxBody, op)
	if err != nil {
		return nil, ev, -1, err
	}
	c.bodyHint.Store(int64(len(body)))
	if resp.StatusCode != http.StatusOK {
		return nil, ev, -1, classify(op, resp, body, ev.RequestID)
	}
	if ct := resp.Header.Get("Content-Type"); !upstream.JSONAnswer(ct, body) {
		return nil, ev, -1, &upstream.Error{Kind: upstream.ErrMalformed, Op: op, HTTPStatus: resp.StatusCode, RequestID: ev.RequestID, Msg: fmt.Sprintf("content type %q, want application/json", ct)}
	}
	total := -1
	if !page {
		ev.ResponseSHA256 = upstream.Hash(body)
	} else if t, err := strconv.Atoi(resp.Header.Get("X-Total-Count")); err == nil && t >= 0 {
		total = t
	}
	return body, ev, total, nil
}

func transportMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		msg := ue.Err.Error()
		if ue.Timeout() {
			msg = "timeout: " + msg
		}
		return msg
	}
	return err.Error()
}

func classify(op string, resp *http.Response, body []byte, reqID string) error {
	e := &upstream.Error{Op: op, HTTPStatus: resp.StatusCode, RequestID: reqID}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		e.Kind = upstream.ErrUnauthorized
	case resp.StatusCode == http.StatusNotFound:
		e.Kind = upstream.ErrNotFound
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Kind = upstream.ErrThrottled
		e.RetryAfter, _ = retryafter.Header(resp.Header, time.Now())
	case resp.StatusCode >= 500:
		e.Kind = upstream.ErrTransient
		// A 503 may say when the service is back (RFC 9110, 10.2.3).
		e.RetryAfter, _ = retryafter.Header(resp.Header, time.Now())
	default:
		e.Kind = upstream.ErrRejected
	}
	if len(body) > 0 {
		msg := string(body)
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		e.Msg = redact.String(strings.TrimSpace(msg))
	}
	return e
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}
