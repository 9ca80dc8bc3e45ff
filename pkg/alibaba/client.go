// Package alibaba is a client of Alibaba Cloud BSS OpenAPI (2017-12-14:
// GetCustomerAccountInfo, GetCustomerList, CreateAgAccount) and CAMS
// (2020-06-06: QueryPhoneBusinessProfile, QueryChatappPhoneNumbers) on
// darabonba-openapi's CallApi, RPC style, ACS3-HMAC-SHA256 signatures. The
// answer's Code is authoritative (not Success, not the HTTP status); errors are
// typed for callers to branch on; throttling is retried after the server's
// retry-after. It knows no NATS and no event model.
package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
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
	// QPS caps this connection's request rate (CAMS defaults to its documented 10).
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
	ok      string // the success Code
	limiter *rate.Limiter
	retry   upstream.Retry
	maxBody int64
	timeout time.Duration
}

func newClient(cfg Config, product, version, okCode string, defaultQPS float64) (*client, error) {
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
	c := &client{version: version, product: product, ok: okCode, retry: upstream.DefaultRetry, maxBody: 4 << 20, timeout: 10 * time.Second}
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
	if qps > 0 {
		// Burst 1 by default: requests are spread evenly, so a server that
		// enforces the same rate never sees a burst.
		c.limiter = rate.NewLimiter(rate.Limit(qps), max(1, cfg.Burst))
	}
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
	hc  *http.Client
	ctx context.Context
}

func (h *ctxHTTP) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	return h.hc.Do(req.WithContext(h.ctx))
}

// envelope is what every answer carries.
type envelope struct {
	Code      string `json:"Code"`
	Message   string `json:"Message"`
	RequestID string `json:"RequestId"`
}

// call performs one action with retries and returns the raw 200 body whose Code
// is the success code (or one of allowCodes).
func (c *client) call(ctx context.Context, action string, params map[string]string, allowCodes ...string) ([]byte, upstream.Evidence, error) {
	var body []byte
	var ev upstream.Evidence
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		var err error
		body, ev, err = c.once(ctx, action, params, allowCodes)
		return err
	})
	return body, ev, err
}

func (c *client) once(ctx context.Context, action string, params map[string]string, allowCodes []string) ([]byte, upstream.Evidence, error) {
	ev := upstream.Evidence{Endpoint: action}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, ev, &upstream.Error{Kind: upstream.ErrTransient, Op: action, Msg: "rate limiter: " + err.Error()}
		}
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
	s, ok := got.(*sdk)
	if !ok {
		return nil, ev, &upstream.Error{Kind: upstream.ErrRejected, Op: action, Msg: redact.String(fmt.Sprint(got))}
	}
	s.http.ctx = ctx
	m, err := s.api.CallApi(p, &openapiutil.OpenApiRequest{Query: query}, rt)
	s.http.ctx = nil
	c.pool.Put(s)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ev, &upstream.Error{Kind: upstream.ErrTransient, Op: action, Msg: ctx.Err().Error()}
		}
		return nil, ev, classifySDK(action, err)
	}
	rc, ok := m["body"].(io.ReadCloser)
	if !ok {
		return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, Msg: "no body"}
	}
	defer rc.Close()
	headers, _ := m["headers"].(map[string]*string)
	body, err := upstream.ReadBounded(rc, c.maxBody, action)
	if err != nil {
		return nil, ev, err
	}
	if ct, _, _ := mime.ParseMediaType(dara.StringValue(headers["content-type"])); ct != "application/json" {
		return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, Msg: fmt.Sprintf("content type %q, want application/json", ct)}
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, Msg: "answer is not JSON: " + err.Error()}
	}
	ev.RequestID, ev.ResponseSHA256 = env.RequestID, upstream.Hash(body)
	if env.Code == c.ok {
		return body, ev, nil
	}
	for _, a := range allowCodes {
		if env.Code == a {
			return body, ev, nil
		}
	}
	if env.Code == "" {
		return nil, ev, &upstream.Error{Kind: upstream.ErrMalformed, Op: action, RequestID: env.RequestID, Msg: "answer has no Code"}
	}
	e := &upstream.Error{Kind: kindOf(env.Code, 200), Op: action, HTTPStatus: 200, Code: env.Code, RequestID: env.RequestID, Msg: redact.String(env.Message)}
	if e.Kind == upstream.ErrThrottled {
		e.RetryAfter = retryAfter(headers)
	}
	return nil, ev, e
}

// classifySDK maps darabonba's errors to upstream kinds.
func classifySDK(action string, err error) error {
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
	case "NotAuthorized", "Ram.PermissionDeny", "Forbidden.RAM", "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId.Inactive",
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
