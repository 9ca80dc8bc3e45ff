package activeplatform_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/activeplatform"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// BenchmarkListing100k compares a full listing of 100,000 accounts through
// ListRaw (page validation, splitting, per-account fingerprint, prefetch) with a
// bare net/http loop fetching the same pages, against the same simulator.
func BenchmarkListing100k(b *testing.B) {
	seed := simtest.Seed()
	seed.ActivePlatform.Accounts = nil
	seed.ActivePlatform.Generate.Count = 100_000
	_, url := simtest.Start(b, seed)
	c, _ := activeplatform.New(url, simtest.APToken)
	b.Run("listraw", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := c.ListRaw(context.Background(), activeplatform.ListOptions{PerPage: 1000}, func([]byte, upstream.Fingerprint, upstream.Evidence) error { n++; return nil }); err != nil || n != 100_000 {
				b.Fatal(err, n)
			}
		}
		b.ReportMetric(100_000*float64(b.N)/b.Elapsed().Seconds(), "accounts/s")
	})
	b.Run("bare", func(b *testing.B) {
		for b.Loop() {
			for page := 1; page <= 100; page++ {
				resp, err := http.Get(fmt.Sprintf("%s/api/vendor/v1/accounts.json?api_token=%s&page=%d&per_page=1000", url, simtest.APToken, page))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		b.ReportMetric(100_000*float64(b.N)/b.Elapsed().Seconds(), "accounts/s")
	})
}

// BenchmarkSplitPage is the listing's own CPU per page, without HTTP: one
// 1,000-account page as the simulator writes it, split into accounts and
// each fingerprinted (what every account of every scan costs): scanned for
// each account's end, and predicted from the same page listed before (a
// steady-state scan, where 99% of the accounts are as they were).
func BenchmarkSplitPage(b *testing.B) {
	seed := simtest.Seed()
	seed.ActivePlatform.Accounts = nil
	seed.ActivePlatform.Generate.Count = 1000
	_, url := simtest.Start(b, seed)
	resp, err := http.Get(url + "/api/vendor/v1/accounts.json?per_page=1000&sorting%5Bfield%5D=id&sorting%5Breversed%5D=false&api_token=" + simtest.APToken)
	if err != nil {
		b.Fatal(err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	last, fps, err := activeplatform.WalkPage(page, nil)
	if err != nil || len(last) != 1000 {
		b.Fatal(err, len(last))
	}
	for _, mode := range []string{"scanned", "predicted"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			for b.Loop() {
				var predict activeplatform.Predictor
				if mode == "predicted" {
					k := 0
					predict = func() (int, upstream.Fingerprint, bool) {
						k++
						return len(last[k-1]), fps[k-1], true
					}
				}
				if items, _, err := activeplatform.WalkPage(page, predict); err != nil || len(items) != 1000 {
					b.Fatal(err, len(items))
				}
			}
		})
	}
}
