// Package alibaba is a client of Alibaba Cloud BSS OpenAPI (2017-12-14:
// GetCustomerAccountInfo, GetCustomerList, CreateAgAccount) and CAMS
// (2020-06-06: QueryPhoneBusinessProfile, QueryChatappPhoneNumbers) on
// darabonba-openapi's CallApi, RPC style, ACS3-HMAC-SHA256 signatures.
//
// Success is decided per action, from its document: BSS GetCustomerAccountInfo
// answers Code "Success", GetCustomerList "200" (a string, or in one
// published version the number), CAMS "OK"; CreateAgAccount answers Success
// true with a business Code (LOGIN_EMAIL_HAS_BEEN_USED: nothing created). A
// Success of false fails an answer whatever its Code. Codes and flags are
// read as strings or numbers, booleans or strings. Errors are typed for
// callers to branch on; throttling (CAMS System.LimitControl, HTTP 400 or in a
// 200 body) is retried after the server's retry-after, and holds back every
// client of the same AccessKey. It knows no NATS and no event model.
package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"
	"golang.org/x/time/rate"

	"github.com/accountwatch/accountwatch/pkg/redact"
	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// Endpoints of the real services.
const (
	EndpointBSS     = "business.aliyuncs.com"
	EndpointBSSIntl = "business.ap-southeast-1.aliyuncs.com"
	EndpointCAMS    = "cams.ap-southeast-1.aliyuncs.com"
)

// Config configures one upstream connection.
type Config struct {
	AccessKeyID     string
	AccessKeySecret string
	// Endpoint is host[:port]; Protocol "https" (default) or "http" (upstream-sim).
	Endpoint string
	Protocol string
	// Timeout bounds one attempt (connect + read). Default 10 s.
	Timeout time.Duration
	// QPS caps the request rate of this AccessKey at this endpoint, shared by
	// every client built with the same key (CAMS's documented limit, its
	// default, is 10 per user; 0 elsewhere: unlimited; negative: none).
	QPS   float64
	Burst int
	Retry *upstream.Retry
	// MaxBody bounds one answer (default 4 MiB).
	MaxBody int64
	// LegacySignature signs with the older RPC HMAC-SHA1 scheme instead of ACS3-HMAC-SHA256.
	LegacySignature bool
}

type client struct {
	// darabonba's Client is not safe for concurrent use (it mutates its headers
	// per call): each call takes one from the pool.
	pool    sync.Pool
	version string
	product string
	pace    *pacer
	retry   upstream.Retry
	maxBody int64
	timeout time.Duration
}

func newClient(cfg Config, product, version string, defaultQPS float64) (*client, error) {
	if cfg.AccessKeyID == "" || cfg.AccessKeySecret == "" {
		return nil, fmt.Errorf("alibaba %s: access key id and secret are required", product)
	}
	if cfg.Endpoint == "" || strings.Contains(cfg.Endpoint, "/") {
		return nil, fmt.Errorf("alibaba %s: endpoint %q: want host[:port]", product, cfg.Endpoint)
	}
	proto := strings.ToLower(cfg.Protocol)
	if proto == "" {
		proto = "https"
	}
	if proto != "https" && proto != "http" {
		return nil, fmt.Errorf("alibaba %s: protocol %q: want https or http", product, cfg.Protocol)
	}
	c := &client{version: version, product: product, retry: upstream.DefaultRetry, maxBody: 4 << 20, timeout: 10 * time.Second}
	if cfg.Retry != nil {
		c.retry = *cfg.Retry
	}
	if cfg.MaxBody > 0 {
		c.maxBody = cfg.MaxBody
	}
	if cfg.Timeout > 0 {
		c.timeout = cfg.Timeout
	}
	qps := cfg.QPS
	if qps == 0 {
		qps = defaultQPS
	}
	c.pace = pacerOf(product+"|"+strings.ToLower(cfg.Endpoint)+"|"+cfg.AccessKeyID, qps, cfg.Burst)
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 32, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, TLSHandshakeTimeout: 5 * time.Second,
	}
	hc := &http.Client{Timeout: c.timeout, Transport: transport}
	c.pool.New = func() any {
		h := &ctxHTTP{hc: hc}
		oc := &openapiutil.Config{
			AccessKeyId: dara.String(cfg.AccessKeyID), AccessKeySecret: dara.String(cfg.AccessKeySecret),
			Endpoint: dara.String(cfg.Endpoint), Protocol: dara.String(proto),
			UserAgent: dara.String("accountwatch"), HttpClient: h,
		}
		if cfg.LegacySignature {
			oc.SignatureAlgorithm = dara.String("v2")
		}
		api, err := openapi.NewClient(oc)
		if err != nil {
			return err
		}
		api.DisableSDKError = dara.Bool(true)
		return &sdk{api: api, http: h}
	}
	// Build one now so that a bad configuration fails at start.
	first := c.pool.Get()
	if err, ok := first.(error); ok {
		return nil, fmt.Errorf("alibaba %s: %w", product, redact.Error(err))
	}
	c.pool.Put(first)
	return c, nil
}

// sdk is one darabonba client and the HTTP client it sends through.
type sdk struct {
	api  *openapi.Client
	http *ctxHTTP
}

// ctxHTTP sends darabonba's requests with the caller's context (CallApi takes
// none), through accountwatch's own transport.
type ctxHTTP struct {
	hc   *http.Client
	ctx  context.Context
	last http.Header // the last answer's headers: darabonba keeps them from its errors
}

func (h *ctxHTTP) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	resp, err := h.hc.Do(req.WithContext(h.ctx))
	h.last = nil
	if err == nil {
		h.last = resp.Header
	}
	return resp, err
}

// envelope is what every answer carries. The tags match any case ("code" in
// an earlier CreateAgAccount version); Code may be a string or a number.
type envelope struct {
	Code      json.RawMessage `json:"Code"`
	Message   json.RawMessage `json:"Message"`
	RequestID json.RawMessage `json:"RequestId"`
	Success   json.RawMessage `json:"Success"`
}

// verdict is an action's reading of an answer's Code and Success (nil when
// the answer has none).
type verdict func(code string, success *bool) bool

// codes is the verdict of an action whose document names its success Codes.
func codes(ok ...string) verdict {
	return func(code string, success *bool) bool {
		if success != nil && !*success {
			return false
		}
		for _, c := range ok {
			if strings.EqualFold(code, c) {
				return true
			}
		}
		return false
	}
}

// call performs one action with retries and returns the raw 200 body that
// ok accepts.
func (c *client) call(ctx context.Context, action string, params map[string]string, ok verdict) ([]byte, upstream.Evidence, error) {
	body, ev, _, err := c.callTracked(ctx, action, params, ok)
	return body, ev, err
}

// callTracked is call that also reports whether an attempt before the last
// failed in a way that leaves unknown whether the upstream acted on it (a
// transient failure: 5xx, a reset, a timeout; a throttled request was
// refused before it was served, so it does not count).
func (c *client) callTracked(ctx context.Context, action string, params map[string]string, ok verdict) (body []byte, ev upstream.Evidence, unsure bool, err error) {
	err = c.retry.Do(ctx, func(ctx context.Context) error {
		if errors.Is(err, upstream.ErrTransient) {
			unsure = true // the attempt before this one may have been served
		}
		body, ev, err = c.once(ctx, action, params, ok)
		if d, throttled := throttledFor(err); throttled {
			c.pace.hold(d) // every client of this key waits, not just this one
		}
		return err
	})
	return body, ev, unsure, err
}

func (c *client) once(ctx context.Context, action string, params map[string]string, ok verdict) ([]byte, upstream.Evidence, error) {
	ev := upstream.Evidence{Endpoint: action}
	if err := c.pace.wait(ctx); err != nil {
		return nil, ev, &upstream.Error{Kind: upstream.ErrTransient, Op: action, Msg: "rate limiter: " + err.Error()}
	}
	query := make(map[string]*string, len(params))
	for k, v := range params {
		query[k] = dara.String(v)
	}
	p := &openapiutil.Params{
		Action: dara.String(action), Version: dara.String(c.version), Protocol: dara.String("HTTPS"),
		Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"),
		Style: dara.String("RPC"), ReqBodyType: dara.String("formData"), BodyType: dara.String("binary"),
	}
	ms := int(c.timeout.Milliseconds())
	rt := &dara.RuntimeOptions{ReadTimeout: dara.Int(ms), ConnectTimeout: dara.Int(ms)}
	got := c.pool.Get()
	s, isSDK := got.(*sdk)
	if !isSDK {
		return nil, ev, &upstream.Error{Kind: upstream.ErrRejected, Op: action, Msg: redact.String(fmt.Sprint(got))}
	}
	s.http.ctx = ctx
	m, err := s.api.CallApi(p, &openapiutil.OpenApiRequest{Query: query}, rt)
	last := s.http.last
	s.http.ctx, s.http.last = nil, nil
	c.pool.Put(s)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ev, &upstream.Error{Kind: upstream.ErrTransient, Op: action, Msg: ctx.Err().Error()}
		}
		e := classifySDK(action, err)
		if e.Kind == upstream.ErrThrottled && e.RetryAfter <= 0 {
			// A throttled 4xx (CAMS System.LimitControl is HTTP 400) is a
			// ClientError to darabonba, which drops the TimeLeft header.
			e.RetryAfter = retryAfterHeader(last)
		}
		return nil, ev, e
	}
	rc, isBody := m["body"].(io.ReadCloser)
	if !isBody {
		return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, Msg: "no body"}
	}
	defer rc.Close()
	headers, _ := m["headers"].(map[string]*string)
	body, err := upstream.ReadBounded(rc, c.maxBody, action)
	if err != nil {
		return nil, ev, err
	}
	if ct := dara.StringValue(headers["content-type"]); !upstream.JSONAnswer(ct, body) {
		return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, Msg: fmt.Sprintf("content type %q, want application/json", ct)}
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, Msg: "answer is not a JSON object: " + err.Error()}
	}
	code, cerr := upstream.Text(env.Code)
	reqID, _ := upstream.Text(env.RequestID)
	msg, _ := upstream.Text(env.Message)
	ev.RequestID, ev.ResponseSHA256 = reqID, upstream.Hash(body)
	var success *bool
	if len(env.Success) > 0 && string(env.Success) != "null" {
		b, err := upstream.Bool(env.Success)
		if err != nil {
			return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, RequestID: reqID, Field: "Success", Msg: "not a boolean"}
		}
		success = &b
	}
	if cerr != nil {
		return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, RequestID: reqID, Field: "Code", Msg: "neither a string nor a number"}
	}
	if ok(code, success) {
		return body, ev, nil
	}
	if code == "" {
		return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, RequestID: reqID, Field: "Code", Msg: "missing, and the answer is not a success"}
	}
	e := &upstream.Error{Kind: kindOf(code, 200), Op: action, HTTPStatus: 200, Code: code, RequestID: reqID, Msg: redact.String(msg)}
	if e.Kind == upstream.ErrThrottled {
		e.RetryAfter = retryAfter(headers)
	}
	return nil, ev, e
}

// throttledFor reports a throttled answer and how long its key should hold.
func throttledFor(err error) (time.Duration, bool) {
	if !errors.Is(err, upstream.ErrThrottled) {
		return 0, false
	}
	if d := upstream.RetryAfterOf(err); d > 0 {
		return d, true
	}
	return time.Second, true
}

// pacer paces the requests of one AccessKey at one endpoint, for every client
// built with it: a documented per-user limit (CAMS: 10 QPS per user) holds
// however many connections share the key, and a throttled answer holds all
// of them back for the server's retry-after.
type pacer struct {
	mu    sync.Mutex
	lim   *rate.Limiter // nil: no rate of its own
	until time.Time     // no request before this (a throttled answer's retry-after)
}

var pacers = struct {
	sync.Mutex
	m map[string]*pacer
}{m: map[string]*pacer{}}

// pacerOf returns key's pacer, at the lowest positive rate any client of the
// key asked for (Burst 1 by default: requests are spread evenly, so a server
// that enforces the same rate never sees a burst).
func pacerOf(key string, qps float64, burst int) *pacer {
	pacers.Lock()
	defer pacers.Unlock()
	p, ok := pacers.m[key]
	if !ok {
		p = &pacer{}
		pacers.m[key] = p
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case qps <= 0:
	case p.lim == nil:
		p.lim = rate.NewLimiter(rate.Limit(qps), max(1, burst))
	case rate.Limit(qps) < p.lim.Limit():
		p.lim.SetLimit(rate.Limit(qps))
	}
	return p
}

func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	until, lim := p.until, p.lim
	p.mu.Unlock()
	if d := time.Until(until); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if lim == nil {
		return nil
	}
	return lim.Wait(ctx)
}

func (p *pacer) hold(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := time.Now().Add(d); t.After(p.until) {
		p.until = t
	}
}

// classifySDK maps darabonba's errors to upstream kinds.
func classifySDK(action string, err error) *upstream.Error {
	var (
		te *openapi.ThrottlingError
		ce *openapi.ClientError
		se *openapi.ServerError
	)
	e := &upstream.Error{Op: action}
	switch {
	case errors.As(err, &te):
		e.Kind, e.HTTPStatus, e.Code, e.RequestID = upstream.ErrThrottled, dara.IntValue(te.StatusCode), dara.StringValue(te.Code), dara.StringValue(te.RequestId)
		e.RetryAfter = time.Duration(dara.Int64Value(te.RetryAfter)) * time.Millisecond
		e.Msg = dara.StringValue(te.Message)
	case errors.As(err, &ce):
		e.HTTPStatus, e.Code, e.RequestID, e.Msg = dara.IntValue(ce.StatusCode), dara.StringValue(ce.Code), dara.StringValue(ce.RequestId), dara.StringValue(ce.Message)
		e.Kind = kindOf(e.Code, e.HTTPStatus)
	case errors.As(err, &se):
		e.Kind, e.HTTPStatus, e.Code, e.RequestID, e.Msg = upstream.ErrTransient, dara.IntValue(se.StatusCode), dara.StringValue(se.Code), dara.StringValue(se.RequestId), dara.StringValue(se.Message)
	default:
		// Network failures, timeouts, and error bodies that are not JSON.
		e.Kind, e.Msg = upstream.ErrTransient, err.Error()
	}
	e.Msg = redact.String(e.Msg)
	return e
}

// kindOf classifies an Alibaba error code (and, failing that, the HTTP status).
func kindOf(code string, status int) error {
	switch code {
	case "NotAuthorized", "NOT_AUTHORIZED", "NotFoundRamAction", "Ram.PermissionDeny", "Forbidden.RAM", "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId.Inactive",
		"SignatureDoesNotMatch", "IncompleteSignature", "MissingSignature", "Product.Unsubscript", "InvalidSecurityToken.Expired":
		return upstream.ErrUnauthorized
	case "VnoNoDataError", "Unknown.ResourceOwnerId", "NotExists.PhoneNumber":
		return upstream.ErrNotFound
	case "Throttling", "Throttling.User", "Throttling.Api", "System.LimitControl", "ServiceUnavailable.Throttling":
		return upstream.ErrThrottled
	case "InternalError", "ServiceUnavailable", "UnknownError":
		return upstream.ErrTransient
	}
	if status >= 500 {
		return upstream.ErrTransient
	}
	return upstream.ErrRejected
}

// retryAfterHeader reads retryAfter's headers from an http.Header.
func retryAfterHeader(h http.Header) time.Duration {
	m := map[string]*string{}
	for _, k := range []string{"x-ratelimit-user-api", "x-ratelimit-user"} {
		if v := h.Get(k); v != "" {
			m[k] = &v
		}
	}
	return retryAfter(m)
}

// retryAfter reads the TimeLeft (milliseconds) of the rate-limit headers.
func retryAfter(h map[string]*string) time.Duration {
	var best int64
	for _, k := range []string{"x-ratelimit-user-api", "x-ratelimit-user"} {
		for _, pair := range strings.Split(dara.StringValue(h[k]), ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(pair), "TimeLeft:"); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > best {
					best = n
				}
			}
		}
	}
	return time.Duration(best) * time.Millisecond
}
