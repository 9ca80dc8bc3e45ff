package config

import (
	"encoding"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// field is one environment key of a spec, as envconfig reads it.
type field struct {
	// key is the prefixed name (AW_SINK_MAX_DELIVER), alt the unprefixed one
	// envconfig falls back to (SINK_MAX_DELIVER).
	key, alt string
	tag      reflect.StructTag
	v        reflect.Value
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// fields lists the keys of the struct v, embedded structs included (the
// specs of this project embed their shared parts: eventbus.Config,
// sink.Settings).
func fields(v reflect.Value) []field {
	var out []field
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() || f.Tag.Get("ignored") == "true" {
			continue
		}
		name := strings.ToUpper(f.Tag.Get("envconfig"))
		if f.Type.Kind() == reflect.Struct && name == "" && !reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
			out = append(out, fields(fv)...)
			continue
		}
		if name == "" {
			name = strings.ToUpper(f.Name)
		}
		out = append(out, field{key: Prefix + "_" + name, alt: name, tag: f.Tag, v: fv})
	}
	return out
}

// set reports whether the environment sets the key, under either name.
func (f field) set() bool {
	for _, k := range []string{f.key, f.alt} {
		if _, ok := os.LookupEnv(k); ok {
			return true
		}
	}
	return false
}

func checkExcludes(v reflect.Value) error {
	all := fields(v)
	byName := map[string]field{}
	for _, f := range all {
		byName[f.alt] = f
	}
	for _, f := range all {
		ex := f.tag.Get("excludes")
		if ex == "" || f.v.IsZero() {
			continue
		}
		for _, name := range strings.Split(ex, ",") {
			other, ok := byName[strings.TrimSpace(name)]
			if !ok {
				return fmt.Errorf("%w: %s excludes %s, which is no key of this service", ErrInvalid, f.key, name)
			}
			if other.set() {
				how := "its default " + strconv.Quote(f.tag.Get("default"))
				if f.set() {
					how = "it is set"
				}
				return fmt.Errorf("%w: %s is set, but %s decides it here (%s): set one of the two", ErrInvalid, other.key, f.key, how)
			}
		}
	}
	return nil
}

// Defaults sets every field of spec (a pointer to a struct with envconfig
// tags) that has a default tag to that default, reading nothing from the
// environment: the struct tags are the one place defaults are written, and
// tests and tools get them from here.
func Defaults(spec any) error {
	for _, f := range fields(reflect.ValueOf(spec).Elem()) {
		def, ok := f.tag.Lookup("default")
		if !ok {
			continue
		}
		if err := setText(f.v, def); err != nil {
			return fmt.Errorf("%s: default %q: %w", f.key, def, err)
		}
	}
	return nil
}

// setText parses s into v the way envconfig does for the kinds specs use.
func setText(v reflect.Value, s string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			d, err := time.ParseDuration(s)
			if err != nil {
				return err
			}
			v.SetInt(int64(d))
			return nil
		}
		n, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(n)
	default:
		return fmt.Errorf("a %s cannot have a default here", v.Type())
	}
	return nil
}

// Key is one environment key of a spec, for documentation checks and --help.
type Key struct {
	// Name is the prefixed key (AW_SINK_MAX_DELIVER).
	Name    string
	Default string
	Secret  bool
}

// Keys lists the environment keys spec (a pointer to a struct) reads.
func Keys(spec any) []Key {
	var out []Key
	for _, f := range fields(reflect.ValueOf(spec).Elem()) {
		out = append(out, Key{Name: f.key, Default: f.tag.Get("default"), Secret: f.tag.Get("secret") == "true"})
	}
	return out
}

// Undocumented lists the keys of spec that none of the files names (a
// service's README, the workspace README, docs/architecture.md), for a test
// that keeps the documentation in step with the settings.
func Undocumented(spec any, files ...string) ([]string, error) {
	var text strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		text.Write(b)
	}
	all := text.String()
	var out []string
	for _, k := range Keys(spec) {
		if !containsWord(all, k.Name) {
			out = append(out, k.Name)
		}
	}
	return out, nil
}

// containsWord finds key not followed by another key character (AW_SMTP
// is not documented by AW_SMTP_HOST).
func containsWord(text, key string) bool {
	for i := strings.Index(text, key); i >= 0; {
		end := i + len(key)
		if end == len(text) || !(text[end] == '_' || text[end] >= 'A' && text[end] <= 'Z' || text[end] >= '0' && text[end] <= '9') {
			return true
		}
		j := strings.Index(text[end:], key)
		if j < 0 {
			return false
		}
		i = end + j
	}
	return false
}
