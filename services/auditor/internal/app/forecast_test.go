package app_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// TestAccountPageShowsTheForecastInBrowser: the console's account page says
// when the debt reaches its threshold, in the alerts' words, and shows the
// account's way through warning, credit hold and recovery.
// AW_SCREENSHOT_DIR keeps the page for docs/screenshots.
func TestAccountPageShowsTheForecastInBrowser(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	now := time.Now().UTC()
	// The journey five days ago; paid down to 150 EUR, the debt has grown
	// by 45 EUR a day since: 600 EUR in ~6 days.
	// One journey: the account's record below is where its last event, the
	// forecast made from that growth, left it.
	j := eventtest.NewJourney(t, "1000125", now.Add(-5*24*time.Hour))
	var hist []detect.Sample
	var points []event.Point
	for i, v := range []string{"150", "195", "240", "285", "330"} {
		at := now.Add(time.Duration(i-4) * 24 * time.Hour)
		hist = append(hist, detect.Sample{At: at, Value: v})
		points = append(points, event.Point{At: at, Value: v})
	}
	m := eventtest.Meta("1000125", map[string]string{"team": "emea"})
	m.AccountName, m.ObservedAt, m.Revision = "Acme Hosting GmbH", now, 5
	m.Chain = event.Chain{Seq: 5, Prev: j.Paid.Hash()}
	m.Standing = &event.Standing{Problems: []string{}, Status: "active", Debt: "330", Threshold: "600", Currency: "EUR"}
	fc := eventtest.Must(t)(event.DebtForecast(m, event.Forecast{Method: "least_squares", Threshold: "600", ThresholdSource: "account", Currency: "EUR",
		Current: "330", RatePerDay: "45", ETA: now.Add(6 * 24 * time.Hour), HorizonHours: 14 * 24, Observations: points}))
	evs := []*event.Event{j.Ladder, j.Hold, j.Active, j.Paid, fc}
	if _, err := eventbus.NewPublisher(f.bus.JS).PublishAll(ctx, evs); err != nil {
		t.Fatal(err)
	}
	kv, _ := f.bus.JS.KeyValue(ctx, eventbus.BucketState)
	r := detect.Record{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000125", Name: "Acme Hosting GmbH",
		Enums: map[string]event.Value{detect.FieldStatus: {Value: "active"}},
		Debt: &detect.DebtState{Value: "330", Current: "330", Threshold: "600", Currency: "EUR", History: hist,
			Forecast: &detect.ForecastState{ETA: now.Add(6 * 24 * time.Hour), RatePerDay: "45", At: now}},
		ChangedAt: now, Chain: event.Chain{Seq: 5, Prev: fc.Hash()}}
	b, _ := json.Marshal(state.Entry{Record: r})
	if _, err := kv.Put(ctx, state.Key(r.Provider, r.Instance, r.AccountID), b); err != nil {
		t.Fatal(err)
	}
	tctx, shot, text := browser(t)
	var forecast, timeline string
	var png []byte
	err := chromedp.Do(tctx,
		chromedp.Navigate(f.base+"/"),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", token),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#accounts"),
		chromedp.Navigate(f.base+"/accounts/activeplatform/ap-main/1000125"),
		chromedp.WaitVisible("#forecast"),
		text("#forecast", &forecast),
		text("#timeline", &timeline),
		shot("5-account-forecast"),
		func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			var err error
			png, err = chromedp.FullScreenshot(100)(ctx, tg)
			return chromedp.Void{}, err
		},
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if want := "reaches its 600.00 EUR threshold in ~6 days (" + now.Add(6*24*time.Hour).Format("2006-01-02") + ") at +45.00 EUR/day"; !strings.Contains(forecast, want) {
		t.Errorf("forecast %q, want %q", forecast, want)
	}
	if !strings.Contains(forecast, "trend +45.00 EUR/day") {
		t.Errorf("no trend: %q", forecast)
	}
	for _, want := range []string{"Debt past 80% of its threshold", "Credit hold", "Account active again", "Debt back under threshold", "600.00 EUR threshold in ~6 days"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline lacks %q: %q", want, timeline)
		}
	}
	if dir := os.Getenv("AW_SCREENSHOT_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "console-account.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
