// Package config loads service configuration: scalars from the environment
// (envconfig, AW_ prefix), secrets also from files (AW_X_FILE), lists from a YAML
// file. Every error names the key or the file and line at fault.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"gopkg.in/yaml.v3"
)

// Prefix of every environment key.
const Prefix = "AW"

// ErrInvalid is returned for any configuration that cannot be used.
var ErrInvalid = errors.New("invalid configuration")

// Validator is implemented by specs that check themselves after loading.
type Validator interface{ Validate() error }

// Load fills spec (a pointer to a struct with envconfig tags) from the
// environment. A field tagged secret:"true" may instead be read from the file
// named by <KEY>_FILE (Docker/Kubernetes secrets). A field tagged
// excludes:"OTHER_KEY,…" decides what those keys would: while it has a value
// (its own or its default), setting one of them is an error that names both,
// never a setting silently overridden. Then spec.Validate runs, if it exists.
func Load(spec any) error {
	if err := envconfig.Process(Prefix, spec); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := loadSecretFiles(reflect.ValueOf(spec).Elem()); err != nil {
		return err
	}
	if err := checkExcludes(reflect.ValueOf(spec).Elem()); err != nil {
		return err
	}
	if v, ok := spec.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return nil
}

func loadSecretFiles(v reflect.Value) error {
	for _, f := range fields(v) {
		if f.tag.Get("secret") != "true" || f.v.Kind() != reflect.String {
			continue
		}
		path, fileKey := "", ""
		for _, k := range []string{f.key + "_FILE", f.alt + "_FILE"} {
			if p, ok := os.LookupEnv(k); ok && p != "" {
				path, fileKey = p, k
				break
			}
		}
		if path == "" {
			continue
		}
		if f.v.String() != "" {
			return fmt.Errorf("%w: %s and %s are both set; use one", ErrInvalid, f.key, fileKey)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalid, fileKey, err)
		}
		f.v.SetString(strings.TrimRight(string(b), "\r\n"))
	}
	return nil
}

// LoadYAML decodes a YAML file strictly into v: an unknown key is an error with
// its line, so a typo never silently disables a route or a watch entry.
func LoadYAML(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	defer f.Close()
	if err := DecodeYAML(f, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, path, err)
	}
	if val, ok := v.(Validator); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
		}
	}
	return nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// ExpandEnv replaces ${NAME} and ${NAME:-default} with the environment's value.
// A bare $ is left alone, so a literal "$" in a value needs no escaping.
func ExpandEnv(b []byte) []byte {
	return envRef.ReplaceAllFunc(b, func(m []byte) []byte {
		g := envRef.FindSubmatch(m)
		if v, ok := os.LookupEnv(string(g[1])); ok && v != "" {
			return []byte(v)
		}
		return g[3]
	})
}

// DecodeYAML decodes one strict YAML document, after ExpandEnv; an empty
// document leaves v as is.
func DecodeYAML(r io.Reader, v any) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(ExpandEnv(b)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Usage writes the environment keys of spec with their defaults, for --help.
func Usage(w io.Writer, spec any) error {
	return envconfig.Usagef(Prefix, spec, w, "{{range .}}{{usage_key .}}\t{{usage_type .}}\t{{usage_default .}}\t{{usage_description .}}\n{{end}}")
}

// Duration is a time.Duration written in YAML as "90s" or "1h30m".
type Duration struct{ time.Duration }

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// ErrTime is returned by ParseTime for text that is neither form.
var ErrTime = errors.New("want a duration (24h) or an RFC 3339 time")

// ParseTime reads a moment the way the CLI and the APIs take one: a duration
// ("24h": that long before now) or an RFC 3339 time; "" is the zero time.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: %w", s, ErrTime)
	}
	return t, nil
}
