// Package forecast projects when an account's debt reaches its blocking
// threshold from its recent observations: a straight line fitted by least
// squares, its slope the rate per day, anchored at the last observation.
// It refuses what would be a guess: too few points, too short a span, a
// flat or falling line, or points too scattered for a line to describe
// (the fit's R² under MinFit). It is pure: no I/O, no clock.
package forecast

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/shopspring/decimal"
)

// Method names the projection in events.
const Method = "least_squares"

// Point is one observed debt.
type Point struct {
	At    time.Time
	Value decimal.Decimal
}

// Options bound what counts as a projection.
type Options struct {
	// MinPoints is the fewest observations a line is fitted to (at least 2; default 4).
	MinPoints int
	// MinSpan is the least time between the first and last observation
	// (default: none).
	MinSpan time.Duration
	// MinFit is the least R² of the fit (0 to 1; default 0.5): a scattered
	// series is no trend.
	MinFit float64
}

func (o Options) withDefaults() Options {
	if o.MinPoints < 2 {
		o.MinPoints = 4
	}
	if o.MinFit == 0 {
		o.MinFit = 0.5
	}
	return o
}

// Projection is a fitted trend.
type Projection struct {
	// RatePerDay is the fitted growth per day, rounded to cents.
	RatePerDay decimal.Decimal
	// ETA is when the line from the last observation reaches the threshold.
	ETA time.Time
	// Fit is the R² of the line.
	Fit    float64
	Points []Point
}

// Reasons there is no projection.
var (
	ErrTooFew     = errors.New("too few observations")
	ErrNotRising  = errors.New("the debt is not rising")
	ErrScattered  = errors.New("the observations follow no line")
	ErrAlreadyMet = errors.New("the debt is already at the threshold")
)

// Project fits a line to points (oldest first) and says when it reaches
// threshold.
func Project(points []Point, threshold decimal.Decimal, o Options) (Projection, error) {
	o = o.withDefaults()
	if len(points) < o.MinPoints {
		return Projection{}, fmt.Errorf("%w: %d of %d", ErrTooFew, len(points), o.MinPoints)
	}
	first, last := points[0], points[len(points)-1]
	if span := last.At.Sub(first.At); span <= 0 || span < o.MinSpan {
		return Projection{}, fmt.Errorf("%w: they span %s of %s", ErrTooFew, span, o.MinSpan)
	}
	if last.Value.GreaterThanOrEqual(threshold) {
		return Projection{}, ErrAlreadyMet
	}
	slope, fit, ok := line(points)
	if !ok {
		return Projection{}, fmt.Errorf("%w: one moment", ErrTooFew)
	}
	if math.IsNaN(fit) || slope <= 0 {
		return Projection{}, ErrNotRising
	}
	if fit < o.MinFit {
		return Projection{}, fmt.Errorf("%w: R² %.2f under %.2f", ErrScattered, fit, o.MinFit)
	}
	rate := decimal.NewFromFloat(slope).Round(2)
	if !rate.IsPositive() {
		return Projection{}, ErrNotRising
	}
	days := threshold.Sub(last.Value).InexactFloat64() / slope
	if math.IsInf(days, 0) || math.IsNaN(days) || days > 365*100 {
		return Projection{}, ErrNotRising
	}
	return Projection{RatePerDay: rate, ETA: last.At.Add(time.Duration(days * 24 * float64(time.Hour))), Fit: fit, Points: points}, nil
}

// Slope is the least-squares growth per day of points, rounded to cents,
// whatever its direction; false for fewer than two moments.
func Slope(points []Point) (decimal.Decimal, bool) {
	slope, _, ok := line(points)
	if !ok {
		return decimal.Zero, false
	}
	return decimal.NewFromFloat(slope).Round(2), true
}

// line fits points by least squares: the slope per day and R² (NaN for a
// flat series); false when they hold one moment only. x is in days since
// the first point: float64 is exact enough for a slope, and the amounts
// reported stay decimals.
func line(points []Point) (slope, fit float64, ok bool) {
	if len(points) < 2 {
		return 0, 0, false
	}
	first := points[0].At
	n := float64(len(points))
	var sx, sy, sxx, sxy, syy float64
	for _, p := range points {
		x := p.At.Sub(first).Hours() / 24
		y := p.Value.InexactFloat64()
		sx, sy, sxx, sxy, syy = sx+x, sy+y, sxx+x*x, sxy+x*y, syy+y*y
	}
	vx, vy, cxy := sxx-sx*sx/n, syy-sy*sy/n, sxy-sx*sy/n
	if vx <= 0 {
		return 0, 0, false
	}
	if vy == 0 {
		return 0, math.NaN(), true
	}
	return cxy / vx, cxy * cxy / (vx * vy), true
}
