// Package config is the poller's YAML configuration: upstream connections,
// the configured part of the watch list, detection policy and the PII allow-list.
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	pkgconfig "github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
)

// File is the poller configuration file.
type File struct {
	Connections []Connection `yaml:"connections"`
	Watch       []WatchEntry `yaml:"watch"`
	Policy      Policy       `yaml:"policy"`
	// PIIAllow extends the attributes that may travel in events (globs; a custom
	// attribute by its name, e.g. custom_attributes["Tier"]).
	PIIAllow []string `yaml:"pii_allow"`
}

// Connection is one upstream connection (an "instance").
type Connection struct {
	Name     string         `yaml:"name"`
	Provider event.Provider `yaml:"provider"`
	// ActivePlatform: base URL and API token.
	URL          string `yaml:"url"`
	APIToken     string `yaml:"api_token"`
	APITokenEnv  string `yaml:"api_token_env"`
	APITokenFile string `yaml:"api_token_file"`
	// FullScanEvery: one cycle in N lists every account; the others list only
	// accounts updated since the previous scan (filters[updated_at]).
	FullScanEvery int `yaml:"full_scan_every"`
	PerPage       int `yaml:"per_page"`
	// Alibaba: endpoint (host[:port]), protocol, AccessKey.
	Endpoint            string            `yaml:"endpoint"`
	Protocol            string            `yaml:"protocol"`
	AccessKeyID         string            `yaml:"access_key_id"`
	AccessKeySecret     string            `yaml:"access_key_secret"`
	AccessKeySecretEnv  string            `yaml:"access_key_secret_env"`
	AccessKeySecretFile string            `yaml:"access_key_secret_file"`
	LegacySignature     bool              `yaml:"legacy_signature"`
	Spaces              []string          `yaml:"spaces"` // CAMS CustSpaceIds
	Interval            Duration          `yaml:"interval"`
	Jitter              float64           `yaml:"jitter"`
	QPS                 float64           `yaml:"qps"`
	Timeout             Duration          `yaml:"timeout"`
	Discovery           bool              `yaml:"discovery"`
	Labels              map[string]string `yaml:"labels"`
	// Currency is the currency of the connection's amounts where the
	// upstream names none (ActivePlatform's document has no currency field).
	Currency string `yaml:"currency"`
	// NameAttribute names the allow-listed attribute that names an account
	// the upstream gives no name (a BSS customer, a CAMS number), when its
	// watch entry has no display_name label.
	NameAttribute string `yaml:"name_attribute"`
}

// WatchEntry is a configured watch-list entry.
type WatchEntry struct {
	Connection string            `yaml:"connection"`
	Account    string            `yaml:"account"`
	Space      string            `yaml:"space"`
	Labels     map[string]string `yaml:"labels"`
}

// Policy is the detection policy.
type Policy struct {
	DebtStep       string `yaml:"debt_step"`
	DebtThreshold  string `yaml:"debt_threshold"`
	DebtHysteresis string `yaml:"debt_hysteresis"`
	DegradedAfter  int    `yaml:"degraded_after"`
	// DebtLadder are percentages of each account's threshold, each reported
	// once on the way up ([50, 80, 100]).
	DebtLadder []string `yaml:"debt_ladder"`
	// BalanceFloor is the least balance of a prepaid account.
	BalanceFloor string         `yaml:"balance_floor"`
	Forecast     ForecastPolicy `yaml:"forecast"`
}

// ForecastPolicy configures the time-to-threshold forecast (off without a horizon).
type ForecastPolicy struct {
	Horizon     Duration `yaml:"horizon"`
	SampleEvery Duration `yaml:"sample_every"`
	Window      Duration `yaml:"window"`
	MinPoints   int      `yaml:"min_points"`
	MinSpan     Duration `yaml:"min_span"`
	MaxPoints   int      `yaml:"max_points"`
}

// Duration is a time.Duration written as "60s".
type Duration = pkgconfig.Duration

// Load reads and checks the file, filling defaults and resolving secrets.
func Load(path string) (*File, error) {
	var f File
	if err := pkgconfig.LoadYAML(path, &f); err != nil {
		return nil, err
	}
	if err := f.resolve(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", pkgconfig.ErrInvalid, path, err)
	}
	return &f, nil
}

func (f *File) resolve() error {
	var errs []error
	names := map[string]bool{}
	for i := range f.Connections {
		c := &f.Connections[i]
		at := fmt.Sprintf("connections[%d] (%s)", i, c.Name)
		if err := event.ValidateInstance(c.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: %w", at, err))
		}
		if names[c.Name] {
			errs = append(errs, fmt.Errorf("%s.name: duplicate", at))
		}
		names[c.Name] = true
		if c.Interval.Duration == 0 {
			c.Interval.Duration = time.Minute
		}
		if c.Interval.Duration < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("%s.interval: %s is below 100ms", at, c.Interval))
		}
		if c.Jitter == 0 {
			c.Jitter = 0.1
		}
		if c.Jitter < 0 || c.Jitter > 0.5 {
			errs = append(errs, fmt.Errorf("%s.jitter: %v (want 0 to 0.5)", at, c.Jitter))
		}
		if c.Timeout.Duration == 0 {
			c.Timeout.Duration = 15 * time.Second
		}
		pr, ok := providers[c.Provider]
		if !ok {
			errs = append(errs, fmt.Errorf("%s.provider: %q (want one of %s)", at, c.Provider, strings.Join(providerNames(), ", ")))
			continue
		}
		for _, err := range pr.Check(c) {
			errs = append(errs, fmt.Errorf("%s.%w", at, err))
		}
	}
	for i, w := range f.Watch {
		c := f.Connection(w.Connection)
		if c == nil {
			errs = append(errs, fmt.Errorf("watch[%d].connection: %q is not a configured connection", i, w.Connection))
			continue
		}
		if w.Account == "" {
			errs = append(errs, fmt.Errorf("watch[%d].account: required", i))
		}
		if providers[c.Provider].Spaces && w.Space == "" {
			errs = append(errs, fmt.Errorf("watch[%d].space: required for an account of %s", i, c.Provider))
		}
	}
	if _, err := f.DetectPolicy(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Provider is what the configuration knows of a provider: how to check a
// connection of it (and fill its defaults), and whether its watched accounts
// name a space. Each provider's adapter (the poller's source package)
// registers its own.
type Provider struct {
	// Check returns one error per bad setting, each starting with the key
	// ("url: required").
	Check func(c *Connection) []error
	// Spaces: a watched account names its space (CAMS CustSpaceId).
	Spaces bool
}

var providers = map[event.Provider]Provider{}

// Spaces reports whether a watched account of provider p names its space.
func Spaces(p event.Provider) bool { return providers[p].Spaces }

// RegisterProvider makes a provider configurable (at init, by its adapter).
func RegisterProvider(p event.Provider, pr Provider) { providers[p] = pr }

func providerNames() []string {
	out := make([]string, 0, len(providers))
	for p := range providers {
		out = append(out, string(p))
	}
	sort.Strings(out)
	return out
}

// Secret takes a value given inline, through an environment variable, or
// from a file; err is nil and the value empty when none is given.
func Secret(inline, env, file string) (string, error) { return secret(inline, env, file) }

// OrMissing words a secret that could not be had, or was not given.
func OrMissing(err error) string { return orMissing(err) }

func orMissing(err error) string {
	if err != nil {
		return err.Error()
	}
	return "missing"
}

// secret takes a value given inline, through an environment variable, or from a file.
func secret(inline, env, file string) (string, error) {
	switch {
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return inline, nil
}

// Connection finds a connection by name.
func (f *File) Connection(name string) *Connection {
	for i := range f.Connections {
		if f.Connections[i].Name == name {
			return &f.Connections[i]
		}
	}
	return nil
}

// DetectPolicy converts the policy section.
func (f *File) DetectPolicy() (detect.Policy, error) {
	p := detect.DefaultPolicy()
	parse := func(name, s string, dst *decimal.Decimal) error {
		if s == "" {
			return nil
		}
		d, err := decimal.NewFromString(s)
		if err != nil || d.IsNegative() {
			return fmt.Errorf("policy.%s: %q is not a non-negative decimal", name, s)
		}
		*dst = d
		return nil
	}
	var th decimal.Decimal
	if err := errors.Join(parse("debt_step", f.Policy.DebtStep, &p.DebtStep), parse("debt_hysteresis", f.Policy.DebtHysteresis, &p.DebtHysteresis),
		parse("debt_threshold", f.Policy.DebtThreshold, &th)); err != nil {
		return p, err
	}
	if f.Policy.DebtThreshold != "" {
		p.DebtThreshold = &th
	}
	if p.DebtHysteresis.GreaterThanOrEqual(decimal.NewFromInt(1)) {
		return p, fmt.Errorf("policy.debt_hysteresis: %s (want a fraction below 1)", p.DebtHysteresis)
	}
	if f.Policy.DegradedAfter < 0 {
		return p, fmt.Errorf("policy.degraded_after: %d", f.Policy.DegradedAfter)
	}
	if f.Policy.DegradedAfter > 0 {
		p.DegradedAfter = f.Policy.DegradedAfter
	}
	for i, v := range f.Policy.DebtLadder {
		d, err := decimal.NewFromString(v)
		if err != nil || !d.IsPositive() || d.GreaterThan(decimal.NewFromInt(1000)) {
			return p, fmt.Errorf("policy.debt_ladder[%d]: %q is not a percentage above 0 (100 is the threshold)", i, v)
		}
		p.DebtLadder = append(p.DebtLadder, d)
	}
	if f.Policy.BalanceFloor != "" {
		d, err := decimal.NewFromString(f.Policy.BalanceFloor)
		if err != nil {
			return p, fmt.Errorf("policy.balance_floor: %q is not a decimal", f.Policy.BalanceFloor)
		}
		p.BalanceFloor = &d
	}
	fc := f.Policy.Forecast
	switch {
	case fc.Horizon.Duration < 0 || fc.SampleEvery.Duration < 0 || fc.Window.Duration < 0 || fc.MinSpan.Duration < 0:
		return p, errors.New("policy.forecast: durations must be >= 0")
	case fc.MinPoints != 0 && fc.MinPoints < 2:
		return p, fmt.Errorf("policy.forecast.min_points: %d (want 2 or more)", fc.MinPoints)
	case fc.MaxPoints != 0 && fc.MaxPoints < max(fc.MinPoints, 2):
		return p, fmt.Errorf("policy.forecast.max_points: %d (want min_points or more)", fc.MaxPoints)
	}
	p.Forecast = detect.ForecastPolicy{Horizon: fc.Horizon.Duration, SampleEvery: fc.SampleEvery.Duration, Window: fc.Window.Duration, MaxPoints: fc.MaxPoints}
	p.Forecast.Options.MinPoints, p.Forecast.Options.MinSpan = fc.MinPoints, fc.MinSpan.Duration
	return p, nil
}

// AllowList is the PII allow-list of events and stored state.
func (f *File) AllowList() *event.AllowList { return event.DefaultAllowList.With(f.PIIAllow...) }
