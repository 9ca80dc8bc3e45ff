package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// receiverPath is where the local webhook receiver takes deliveries.
const receiverPath = "/hooks"

// serveReceiver is a webhook receiver for the local stack, so that a first
// endpoint (the webhook-dispatcher README's recipe) has somewhere to go:
// it answers the CloudEvents validation handshake, takes every delivery
// (204) and prints a line per delivery, as [webhook-receiver]. It checks
// no signature: a real subscriber verifies webhook-signature (Standard
// Webhooks) with its endpoint's secret.
func serveReceiver(ctx context.Context, addr string, out io.Writer) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("AW_WEBHOOK_RECEIVER_LISTEN: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(receiverPath, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodOptions: // the CloudEvents abuse-protection handshake
			w.Header().Set("WebHook-Allowed-Origin", r.Header.Get("WebHook-Request-Origin"))
			w.Header().Set("WebHook-Allowed-Rate", "*")
			return
		case http.MethodPost:
		default:
			http.Error(w, "POST or OPTIONS", http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		outMu.Lock()
		fmt.Fprintf(out, "[webhook-receiver] %s %s (%d bytes, webhook-id %s)\n", r.Header.Get("Content-Type"), ceType(r.Header, body), len(body), r.Header.Get("Webhook-Id"))
		outMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return "http://" + ln.Addr().String() + receiverPath, nil
}

// ceType is the delivery's CloudEvents type: a ce-type header (binary
// mode) or the type attribute of the structured body.
func ceType(h http.Header, body []byte) string {
	if t := h.Get("Ce-Type"); t != "" {
		return t
	}
	var ev struct {
		Type    string `json:"type"`
		Subject string `json:"subject"`
	}
	if err := json.Unmarshal(body, &ev); err == nil && ev.Type != "" {
		return ev.Type + " " + ev.Subject
	}
	return "?"
}
