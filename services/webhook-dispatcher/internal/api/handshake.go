package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/accountwatch/accountwatch/pkg/redact"
)

// ErrHandshake is returned when an endpoint does not confirm that it wants
// our deliveries.
var ErrHandshake = errors.New("webhook validation handshake failed")

// CEHandshake is the abuse protection of the CloudEvents HTTP webhook spec:
// before delivering to a new URL, an OPTIONS request says who we are
// (WebHook-Request-Origin) and the receiver must allow us
// (WebHook-Allowed-Origin: our origin or *), so the dispatcher cannot be
// aimed at a server that never asked for it.
type CEHandshake struct {
	Client *http.Client
	// Origin names the sender (AW_WEBHOOK_ORIGIN).
	Origin string
	// Rate is the deliveries per minute we announce (WebHook-Request-Rate).
	Rate int
}

// Handshake validates url.
func (h CEHandshake) Handshake(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, url, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	req.Header.Set("WebHook-Request-Origin", h.Origin)
	if h.Rate > 0 {
		req.Header.Set("WebHook-Request-Rate", fmt.Sprint(h.Rate))
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHandshake, redact.Error(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: OPTIONS %s answered %d (the endpoint must answer the CloudEvents validation request, or create it with skip_handshake)", ErrHandshake, redact.String(url), resp.StatusCode)
	}
	switch allowed := resp.Header.Get("WebHook-Allowed-Origin"); allowed {
	case h.Origin, "*":
		return nil
	case "":
		return fmt.Errorf("%w: %s did not answer WebHook-Allowed-Origin", ErrHandshake, redact.String(url))
	default:
		return fmt.Errorf("%w: %s allows origin %q, not %q", ErrHandshake, redact.String(url), allowed, h.Origin)
	}
}
