package detect_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/schemas"
)

// debtAt is an ActivePlatform observation with debt against a 600 EUR threshold, at t0 + day days.
func debtAt(day int, debt string) detect.Observation {
	o := ap("active", debt)
	o.Debt.Threshold, o.Debt.Currency = dp("600"), "EUR"
	o.At = t0.Add(time.Duration(day) * 24 * time.Hour)
	return o
}

// crossings describes each reported debt change: "prev>cur:crossed@step".
func crossings(pol detect.Policy, obs ...detect.Observation) (string, detect.Record) {
	var rec detect.Record
	var out []string
	for _, o := range obs {
		var ch []detect.Change
		ch, rec = detect.Observe(rec, o, pol)
		for _, c := range ch {
			if c.Debt == nil {
				continue
			}
			s := c.Previous.Value + ">" + c.Current.Value
			if c.Debt.Crossed != "" {
				s += ":" + c.Debt.Crossed
			}
			if c.Debt.Step != nil {
				s += "@" + c.Debt.Step.String()
			}
			out = append(out, s)
		}
	}
	return strings.Join(out, " "), rec
}

func ladderPolicy() detect.Policy {
	pol := detect.DefaultPolicy()
	pol.DebtStep = d("1000") // only crossings are reported
	pol.DebtLadder = []decimal.Decimal{d("50"), d("80"), d("100")}
	return pol
}

func TestDebtLadder(t *testing.T) {
	cases := []struct {
		name  string
		debts []string
		want  string
	}{
		// lines 300, 480, 600; hysteresis 2% of 600 = 12
		{"each step once on the way up", []string{"0", "310", "350", "490", "500", "610", "650"}, "0>310:above@50 310>490:above@80 490>610:above@100"},
		{"several steps in one move name the highest", []string{"0", "620"}, "0>620:above@100"},
		{"hovering at a line does not flap", []string{"0", "485", "475", "482", "470", "481"}, "0>485:above@80"},
		{"clearly below, then up again: crossed again", []string{"0", "485", "460", "490"}, "0>485:above@80 485>460:below@80 460>490:above@80"},
		{"falling from the threshold to under every step", []string{"0", "610", "100"}, "0>610:above@100 610>100:below@100"},
		{"a baseline over a step is not crossed again", []string{"500", "520", "590"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obs := make([]detect.Observation, len(c.debts))
			for i, v := range c.debts {
				obs[i] = debtAt(i, v)
			}
			got, _ := crossings(ladderPolicy(), obs...)
			if got != c.want {
				t.Fatalf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestLadderSeverities(t *testing.T) {
	v, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	var rec detect.Record
	var sev []string
	for i, debt := range []string{"0", "310", "610", "100"} {
		var ch []detect.Change
		ch, rec = detect.Observe(rec, debtAt(i, debt), ladderPolicy())
		for _, c := range ch {
			e, err := c.Event(event.Meta{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1", ObservedAt: t0, Standing: rec.Standing()})
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Validate(string(e.Type()), e.Cloud.Data()); err != nil {
				t.Fatalf("%v\n%s", err, e.Cloud.Data())
			}
			if e.Data.Debt.Currency != "EUR" {
				t.Errorf("currency %q", e.Data.Debt.Currency)
			}
			sev = append(sev, string(e.Data.Severity)+"@"+e.Data.Debt.Line)
		}
	}
	if got := strings.Join(sev, " "); got != "warning@300 critical@600 info@600" {
		t.Fatalf("severities %s", got)
	}
}

func TestSubscriptionCreditLimitWhereSet(t *testing.T) {
	pol := detect.DefaultPolicy()
	pol.DebtThreshold = dp("5000")
	obs := func(debt, threshold, limit string) detect.Observation {
		o := ap("active", debt)
		o.Debt.Threshold, o.Debt.CreditLimit = nil, nil
		if threshold != "" {
			o.Debt.Threshold = dp(threshold)
		}
		if limit != "" {
			o.Debt.CreditLimit = dp(limit)
		}
		return o
	}
	cases := []struct{ name, threshold, limit, source string }{
		{"blocking threshold first", "600", "300", "account"},
		{"credit limit where the account has no threshold", "", "300", "subscription_credit_limit"},
		{"a zero threshold is none", "0", "300", "subscription_credit_limit"},
		{"a zero limit is none", "", "0.0", "config"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, rec := detect.Observe(detect.Record{}, obs("0", c.threshold, c.limit), pol)
			ch, _ := detect.Observe(rec, obs("6000", c.threshold, c.limit), pol)
			if len(ch) != 1 || ch[0].Debt.ThresholdSource != c.source || ch[0].Debt.Crossed != "above" {
				t.Fatalf("%+v", ch[0].Debt)
			}
		})
	}
}

func TestPrepaidBalanceFloor(t *testing.T) {
	pol := detect.DefaultPolicy()
	pol.BalanceFloor = dp("0")
	prepaid := func(bal string, paid bool) detect.Observation {
		o := ap("active", "")
		o.Balance = &detect.Balance{Amount: d(bal), Prepaid: paid, Currency: "EUR"}
		return o
	}
	var rec detect.Record
	var got []string
	for _, o := range []detect.Observation{prepaid("40", true), prepaid("5", true), prepaid("-12.5", true), prepaid("-30", true), prepaid("0.5", true), prepaid("2", true)} {
		var ch []detect.Change
		ch, rec = detect.Observe(rec, o, pol)
		for _, c := range ch {
			got = append(got, c.Field+":"+c.Previous.Value+">"+c.Current.Value+":"+c.Debt.Crossed)
		}
		if rec.Balance.Below != slices(rec.Problems(), event.ProblemBelowFloor) {
			t.Fatalf("problems %v with below %v", rec.Problems(), rec.Balance.Below)
		}
	}
	if s := strings.Join(got, " "); s != "balance:40>-12.5:below balance:-12.5>2:above" {
		t.Fatalf("%s", s)
	}
	// A postpaid account's balance is no concern of the floor.
	_, rec = detect.Observe(detect.Record{}, prepaid("40", false), pol)
	if ch, _ := detect.Observe(rec, prepaid("-40", false), pol); len(ch) != 0 {
		t.Fatalf("postpaid: %+v", ch)
	}
}

func slices(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func forecastPolicy() detect.Policy {
	pol := detect.DefaultPolicy()
	pol.DebtStep = d("1000")
	pol.Forecast = detect.ForecastPolicy{Horizon: 7 * 24 * time.Hour, SampleEvery: 12 * time.Hour}
	return pol
}

func TestForecast(t *testing.T) {
	cases := []struct {
		name  string
		debts []string
		want  int
	}{
		{"rising debt: announced once", []string{"150", "195", "240", "285", "330", "375"}, 1},
		{"flat debt: none", []string{"300", "300", "300", "300", "300", "300"}, 0},
		{"too few points: none", []string{"150", "195", "240"}, 0},
		{"rising but far off: none", []string{"10", "11", "12", "13", "14", "15"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rec detect.Record
			var got []*event.Forecast
			for i, v := range c.debts {
				var ch []detect.Change
				ch, rec = detect.Observe(rec, debtAt(i, v), forecastPolicy())
				for _, x := range ch {
					if x.Type == event.TypeDebtForecast {
						got = append(got, x.Forecast)
					}
				}
			}
			if len(got) != c.want {
				t.Fatalf("%d forecasts, want %d: %+v", len(got), c.want, got)
			}
			if c.want == 0 {
				return
			}
			f := got[0]
			// announced at the 4th point (285 on day 3, +45/day): 600 is 7 days on.
			if f.RatePerDay != "45" || f.Threshold != "600" || f.Currency != "EUR" || len(f.Observations) != 4 || f.Method != "least_squares" {
				t.Fatalf("%+v", f)
			}
			if want := debtAt(3, "0").At.Add(7 * 24 * time.Hour); !f.ETA.Equal(want) {
				t.Fatalf("eta %s, want %s", f.ETA, want)
			}
			m := event.Meta{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1", ObservedAt: t0}
			e, err := detect.Change{Type: event.TypeDebtForecast, Field: "current_debt", Forecast: f}.Event(m)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := schemas.Default()
			if err := v.Validate(string(e.Type()), e.Cloud.Data()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestStandingAndSince(t *testing.T) {
	pol := detect.DefaultPolicy()
	// Already on credit hold and over the threshold at baseline.
	first := ap("credit hold", "620")
	_, rec := detect.Observe(detect.Record{}, first, pol)
	st := rec.Standing()
	if strings.Join(st.Problems, ",") != "credit_hold,over_threshold" || st.Since == nil || !st.Since.Equal(t0) || st.Debt != "620" || st.Threshold != "500" {
		t.Fatalf("baseline standing %+v", st)
	}
	// Active again, still over the threshold: still in bad standing since t0.
	later := ap("active", "620")
	later.At = t0.Add(time.Hour)
	_, rec = detect.Observe(rec, later, pol)
	if st := rec.Standing(); strings.Join(st.Problems, ",") != "over_threshold" || !st.Since.Equal(t0) {
		t.Fatalf("%+v", st)
	}
	paid := ap("active", "0")
	paid.At = t0.Add(2 * time.Hour)
	_, rec = detect.Observe(rec, paid, pol)
	if st := rec.Standing(); len(st.Problems) != 0 || st.Since != nil || !rec.BadSince.IsZero() {
		t.Fatalf("%+v", st)
	}
	// Degraded counts as bad standing.
	for range 3 {
		_, rec = detect.Fail(rec, t0.Add(3*time.Hour), "x", "y", nil, pol)
	}
	if st := rec.Standing(); strings.Join(st.Problems, ",") != "degraded" || !st.Since.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("%+v", st)
	}
	_ = first
}
