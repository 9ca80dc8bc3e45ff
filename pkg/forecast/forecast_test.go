package forecast_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/forecast"
)

var t0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

func series(values ...string) []forecast.Point {
	out := make([]forecast.Point, len(values))
	for i, v := range values {
		out[i] = forecast.Point{At: t0.Add(time.Duration(i) * 24 * time.Hour), Value: decimal.RequireFromString(v)}
	}
	return out
}

func TestProject(t *testing.T) {
	th := decimal.NewFromInt(600)
	cases := []struct {
		name   string
		points []forecast.Point
		err    error
		rate   string
		eta    time.Duration // after the last point
	}{
		// +45 a day from 330: 465 on day 3, the threshold (135 more) three days later.
		{name: "rising", points: series("330", "375", "420", "465"), rate: "45", eta: 72 * time.Hour},
		{name: "rising with noise", points: series("330", "380", "415", "465", "508"), rate: "44"},
		{name: "flat", points: series("400", "400", "400", "400"), err: forecast.ErrNotRising},
		{name: "falling", points: series("500", "450", "420", "380"), err: forecast.ErrNotRising},
		{name: "too short", points: series("330", "375", "420"), err: forecast.ErrTooFew},
		{name: "scattered", points: series("100", "500", "90", "520", "120", "530", "110"), err: forecast.ErrScattered},
		{name: "already there", points: series("450", "520", "580", "610"), err: forecast.ErrAlreadyMet},
		{name: "one moment", points: []forecast.Point{{t0, decimal.NewFromInt(1)}, {t0, decimal.NewFromInt(2)}, {t0, decimal.NewFromInt(3)}, {t0, decimal.NewFromInt(4)}}, err: forecast.ErrTooFew},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := forecast.Project(c.points, th, forecast.Options{})
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err %v, want %v (projection %+v)", err, c.err, p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.RatePerDay.Round(0).String(); got != c.rate {
				t.Errorf("rate %s, want ~%s", p.RatePerDay, c.rate)
			}
			last := c.points[len(c.points)-1].At
			if c.eta != 0 && p.ETA.Sub(last).Round(time.Minute) != c.eta {
				t.Errorf("eta %s after the last point, want %s", p.ETA.Sub(last), c.eta)
			}
			if !p.ETA.After(last) {
				t.Errorf("eta %s not after the last observation", p.ETA)
			}
		})
	}
}

func TestMinSpan(t *testing.T) {
	pts := series("330", "375", "420", "465")
	if _, err := forecast.Project(pts, decimal.NewFromInt(600), forecast.Options{MinSpan: 7 * 24 * time.Hour}); !errors.Is(err, forecast.ErrTooFew) {
		t.Fatalf("3 days of points with a 7-day minimum: %v", err)
	}
}
