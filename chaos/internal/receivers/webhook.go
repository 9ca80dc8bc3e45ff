package receivers

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Mode is how the webhook receiver answers.
type Mode int32

// Webhook receiver modes.
const (
	Healthy     Mode = iota // 204 to every delivery
	Unavailable             // 503, no Retry-After: the dispatcher's schedule decides
	Hang                    // no answer until the dispatcher gives up (its timeout)
)

func (m Mode) String() string {
	return [...]string{"healthy", "503", "hang"}[m]
}

// Webhook is a subscriber's endpoint; the run sets its Mode.
type Webhook struct {
	srv  *http.Server
	ln   net.Listener
	mode atomic.Int32
	// Deliveries tallies the events answered 2xx (by webhook-id).
	Deliveries *Tally
	hung       atomic.Int64
}

// StartWebhook serves on a loopback port.
func StartWebhook() (*Webhook, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	w := &Webhook{ln: ln, Deliveries: newTally()}
	w.srv = &http.Server{Handler: http.HandlerFunc(w.serve), ReadHeaderTimeout: 10 * time.Second}
	go w.srv.Serve(ln)
	return w, nil
}

// URL is the endpoint's URL.
func (w *Webhook) URL() string { return "http://" + w.ln.Addr().String() + "/hooks/accountwatch" }

// SetMode changes how deliveries are answered from now on.
func (w *Webhook) SetMode(m Mode) { w.mode.Store(int32(m)) }

// Hung counts requests that were left hanging.
func (w *Webhook) Hung() int64 { return w.hung.Load() }

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || r.Method != http.MethodPost {
		w.Deliveries.refuse()
		http.Error(rw, "bad request", http.StatusBadRequest)
		return
	}
	id := r.Header.Get("webhook-id")
	switch Mode(w.mode.Load()) {
	case Unavailable:
		w.Deliveries.refuse()
		http.Error(rw, "maintenance", http.StatusServiceUnavailable)
		return
	case Hang:
		w.Deliveries.refuse()
		w.hung.Add(1)
		select { // past the dispatcher's timeout: it hangs up first
		case <-r.Context().Done():
		case <-time.After(5 * time.Minute):
		}
		return
	}
	if !IDPattern.MatchString(id) || len(body) == 0 {
		w.Deliveries.refuse()
		http.Error(rw, "no webhook-id", http.StatusBadRequest)
		return
	}
	w.Deliveries.content(body)
	w.Deliveries.accept([]string{id})
	rw.WriteHeader(http.StatusNoContent)
}

// Close stops the receiver.
func (w *Webhook) Close() { _ = w.srv.Close() }
