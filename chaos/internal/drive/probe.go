package drive

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
)

// ProbeStream is the run's own replicated stream: a publish the cluster
// acknowledges must be in it afterwards, whatever happened in between, and
// none may be acknowledged while two of the three nodes are down.
const ProbeStream = "CHAOS_PROBE"

// ProbeStreamConfig is the probe stream at replicas.
func ProbeStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: ProbeStream, Subjects: []string{"chaos.probe.>"}, Storage: jetstream.FileStorage, Replicas: replicas, Duplicates: 15 * time.Minute}
}

type probe struct {
	sent, acked time.Time
	ok          bool
	phase       string
}

// Prober publishes probes.
type Prober struct {
	js jetstream.JetStream

	mu      sync.Mutex
	probes  []probe
	windows [][2]time.Time
	phase   string
}

// SetPhase labels the probes sent from now on.
func (p *Prober) SetPhase(s string) {
	p.mu.Lock()
	p.phase = s
	p.mu.Unlock()
}

// NewProber publishes on js.
func NewProber(js jetstream.JetStream) *Prober { return &Prober{js: js} }

// Run publishes one probe every interval, each waiting up to timeout for
// its acknowledgement, until ctx ends.
func (p *Prober) Run(ctx context.Context, every, timeout time.Duration) {
	for n := 1; ctx.Err() == nil; n++ {
		id := "probe-" + strconv.Itoa(n)
		sent := time.Now()
		pctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := p.js.PublishMsg(pctx, &nats.Msg{Subject: "chaos.probe." + strconv.Itoa(n), Data: []byte(id), Header: nats.Header{jetstream.MsgIDHeader: []string{id}}},
			jetstream.WithExpectStream(ProbeStream))
		cancel()
		if ctx.Err() != nil {
			return // the run stopped it: neither acknowledged nor failed
		}
		p.mu.Lock()
		p.probes = append(p.probes, probe{sent: sent, acked: time.Now(), ok: err == nil, phase: p.phase})
		p.mu.Unlock()
		sleep(ctx, every-time.Since(sent))
	}
}

// NoQuorum records a stretch during which no quorum existed.
func (p *Prober) NoQuorum(from, to time.Time) {
	p.mu.Lock()
	p.windows = append(p.windows, [2]time.Time{from, to})
	p.mu.Unlock()
}

// Check counts what was lost (stored: the probes the stream holds, read
// back afterwards) or acknowledged without a quorum.
func (p *Prober) Check(stored map[string]bool) ledger.Probes {
	p.mu.Lock()
	defer p.mu.Unlock()
	var r ledger.Probes
	for i, pr := range p.probes {
		r.Sent++
		if !pr.ok {
			r.Failed++
			continue
		}
		r.Acked++
		id := "probe-" + strconv.Itoa(i+1)
		if !stored[id] {
			r.Lost++
			r.Details = append(r.Details, fmt.Sprintf("%s acknowledged at %s (%s), not in %s", id, pr.acked.Format("15:04:05.000"), pr.phase, ProbeStream))
		}
		for _, w := range p.windows {
			// Sent a second into the stretch and answered inside it: no
			// quorum could have stored it.
			if pr.sent.After(w[0].Add(time.Second)) && pr.acked.Before(w[1]) {
				r.AckedWithoutQuorum++
				r.Details = append(r.Details, fmt.Sprintf("%s acknowledged at %s while two nodes were down", id, pr.acked.Format("15:04:05.000")))
			}
		}
	}
	return r
}
