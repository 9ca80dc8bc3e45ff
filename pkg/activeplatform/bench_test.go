package activeplatform_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/activeplatform"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
)

// BenchmarkGet compares Client.Get (decoding into exact decimals, evidence
// hashing, retry policy, no rate limit) with a bare net/http loop that only
// fetches and reads the same endpoint, against the same simulator in the same
// run: one request at a time ("serial"), and with 16 in flight as the poller's
// worker pool runs them ("workers16"). Report client gets/s over bare gets/s.
func BenchmarkGet(b *testing.B) {
	_, url := simtest.Start(b, simtest.Seed())
	c, err := activeplatform.New(url, simtest.APToken)
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	target := url + "/api/vendor/v1/accounts/1000123.json?api_token=" + simtest.APToken
	client := func(b *testing.B) {
		if _, err := c.Get(context.Background(), "1000123"); err != nil {
			b.Fatal(err)
		}
	}
	bare := func(b *testing.B) {
		resp, err := hc.Get(target)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
	for _, mode := range []struct {
		name    string
		workers int
	}{{"serial", 0}, {"workers16", 16}} {
		for _, side := range []struct {
			name string
			get  func(*testing.B)
		}{{"client", client}, {"bare", bare}} {
			b.Run(mode.name+"/"+side.name, func(b *testing.B) {
				b.ReportAllocs()
				if mode.workers == 0 {
					for b.Loop() {
						side.get(b)
					}
				} else {
					b.SetParallelism(mode.workers / 2) // × GOMAXPROCS (2)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							side.get(b)
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
			})
		}
	}
}
