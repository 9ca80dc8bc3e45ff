package drive

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
)

// Sim is upstream-sim's admin API.
type Sim struct {
	Base   string // http://host:port
	client http.Client
}

// NewSim talks to the simulator at base.
func NewSim(base string) *Sim {
	return &Sim{Base: base, client: http.Client{Timeout: 10 * time.Second}}
}

func (s *Sim) call(ctx context.Context, method, path string, body any) error {
	return DoJSON(ctx, &s.client, method, s.Base+path, body, nil)
}

// Fault injects a fault into one simulated endpoint (upstream-sim's Fault JSON).
func (s *Sim) Fault(ctx context.Context, endpoint string, f map[string]any) error {
	return s.call(ctx, http.MethodPut, "/admin/faults/"+endpoint, f)
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults(ctx context.Context) error {
	return s.call(ctx, http.MethodDelete, "/admin/faults", nil)
}

// Ready reports whether the simulator answers.
func (s *Sim) Ready(ctx context.Context) error {
	return s.call(ctx, http.MethodGet, "/admin/stats", nil)
}

// Applied is a change made upstream, and when its event was stored (the
// stream's own timestamp).
type Applied struct {
	ledger.Change
	EventID string
	Stored  time.Time
}

// Driver changes the world in a closed loop.
type Driver struct {
	sim   *Sim
	world *World

	mu sync.Mutex
	// changes made, in order; open: per account, the change whose event is
	// not stored yet
	changes []*Applied
	open    map[ledger.Key]*Applied
	phase   string
	paused  bool
	errs    int
	lastErr error
}

// NewDriver drives world through sim.
func NewDriver(sim *Sim, world *World) *Driver {
	return &Driver{sim: sim, world: world, open: map[ledger.Key]*Applied{}, phase: "start"}
}

// SetPhase labels the changes made from now on.
func (d *Driver) SetPhase(p string) {
	d.mu.Lock()
	d.phase = p
	d.mu.Unlock()
}

// Pause stops (true) or resumes (false) the scripted changes; the canary
// goes on.
func (d *Driver) Pause(p bool) {
	d.mu.Lock()
	d.paused = p
	d.mu.Unlock()
}

// Run makes a change every pace, to an account whose last change is stored,
// until ctx ends or limit changes are made.
func (d *Driver) Run(ctx context.Context, pace time.Duration, limit int) {
	t := time.NewTicker(pace)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		stop := len(d.changes) >= limit
		paused := d.paused
		var idle []*Account
		for _, a := range d.world.Accounts {
			if a != d.world.Canary && d.open[a.Key] == nil {
				idle = append(idle, a)
			}
		}
		d.mu.Unlock()
		if stop {
			return
		}
		if paused || len(idle) == 0 {
			continue
		}
		if _, err := d.apply(ctx, idle[rand.IntN(len(idle))]); err != nil && ctx.Err() == nil {
			d.mu.Lock()
			d.errs++
			d.lastErr = err
			d.mu.Unlock()
		}
	}
}

// apply makes an account's next change.
func (d *Driver) apply(ctx context.Context, a *Account) (*Applied, error) {
	d.mu.Lock()
	if d.open[a.Key] != nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("%s: the last change's event is not stored yet", a.Key)
	}
	saved := *a
	c, path, set := a.next()
	ap := &Applied{Change: c}
	ap.Seq, ap.Phase = len(d.changes)+1, d.phase
	// open before the call: the event may be stored before the call returns
	d.open[a.Key] = ap
	d.mu.Unlock()
	ap.At = time.Now()
	// Not cancelled by the driver's stop: a change the upstream made must
	// be recorded, so a call is seen through (bounded) once started.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	err := d.sim.call(cctx, http.MethodPatch, path, set)
	cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		*a = saved
		delete(d.open, a.Key)
		return nil, err
	}
	d.changes = append(d.changes, ap)
	ap.Seq = len(d.changes)
	return ap, nil
}

// Observe is told of every event in the stream, in order: the event of an
// account's open change closes it.
func (d *Driver) Observe(e ledger.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ap := d.open[e.Key]
	if ap != nil && ap.Matches(e) {
		ap.EventID, ap.Stored = e.ID, e.Stored
		delete(d.open, e.Key)
	}
}

// ErrTimeout is returned when a canary's event did not make it in time.
var ErrTimeout = errors.New("timed out")

// Canary changes the canary account; WaitStored follows it to the stream.
func (d *Driver) Canary(ctx context.Context) (*Applied, error) { return d.Change(ctx, d.world.Canary) }

// Change changes one account (the canary, the late one) at once.
func (d *Driver) Change(ctx context.Context, a *Account) (*Applied, error) {
	for {
		ap, err := d.apply(ctx, a)
		if err == nil {
			return ap, nil
		}
		select { // the simulator's admin API is not under test; a refused call is retried
		case <-ctx.Done():
			return nil, fmt.Errorf("canary change: %v (%w)", err, ErrTimeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitStored waits until the event of a change is stored and returns its id.
func (d *Driver) WaitStored(ctx context.Context, ap *Applied) (string, error) {
	for {
		d.mu.Lock()
		id := ap.EventID
		d.mu.Unlock()
		if id != "" {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s: its event was not stored (%w)", ap.Change, ErrTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Changes are the changes made so far.
func (d *Driver) Changes() []ledger.Change {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]ledger.Change, len(d.changes))
	for i, c := range d.changes {
		out[i] = c.Change
	}
	return out
}

// Open counts changes whose event is not stored yet.
func (d *Driver) Open() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.open)
}

// Errors counts admin calls that failed, and the last failure.
func (d *Driver) Errors() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errs, d.lastErr
}
