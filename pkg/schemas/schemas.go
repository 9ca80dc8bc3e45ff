// Package schemas holds the JSON Schemas of the event contract (a generated copy of
// the repository's schemas/, which go:embed cannot reach) and validates event data
// against them. TestNoDrift fails when the copy and schemas/ differ.
package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:generate sh -c "rm -rf files/* && cp ../../schemas/*.json ../../schemas/asyncapi.yaml files/ && mkdir -p files/upstream && cp ../../schemas/upstream/*.json files/upstream/"

// Files is the embedded copy of schemas/.
//
//go:embed files
var Files embed.FS

// Base is the $id prefix of every schema.
const Base = "https://accountwatch.io/schemas/v1/"

// ErrUnknownSchema is returned for a type that has no schema.
var ErrUnknownSchema = errors.New("no schema for type")

// Validator validates event data against the schema of its type.
type Validator struct {
	schemas map[string]*jsonschema.Schema
}

var (
	defaultOnce sync.Once
	defaultVal  *Validator
	defaultErr  error
)

// Default compiles the embedded schemas once.
func Default() (*Validator, error) {
	defaultOnce.Do(func() { defaultVal, defaultErr = New(Files) })
	return defaultVal, defaultErr
}

// New compiles every *.json schema of fsys (the root or a "files" folder), with
// format assertions on (a malformed date-time fails validation).
func New(fsys fs.FS) (*Validator, error) {
	if sub, err := fs.Sub(fsys, "files"); err == nil {
		if _, err := fs.Stat(sub, "defs.json"); err == nil {
			fsys = sub
		}
	}
	return compile(fsys, Base, "com.accountwatch.")
}

// compile compiles every *.json of fsys under base, each known by prefix and
// its name without ".json" (defs.json is only referred to).
func compile(fsys fs.FS, base, prefix string) (*Validator, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", n, err)
		}
		if err := c.AddResource(base+n, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", n, err)
		}
	}
	v := &Validator{schemas: map[string]*jsonschema.Schema{}}
	for _, n := range names {
		if n == "defs.json" {
			continue
		}
		s, err := c.Compile(base + n)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", n, err)
		}
		v.schemas[prefix+strings.TrimSuffix(n, ".json")] = s
	}
	return v, nil
}

// UpstreamBase is the $id prefix of the schemas of the providers' documented
// answers (schemas/upstream: written from the documents' parameter tables,
// not from any Go type).
const UpstreamBase = "https://accountwatch.io/schemas/upstream/"

var (
	upstreamOnce sync.Once
	upstreamVal  *Validator
	upstreamErr  error
)

// Upstream compiles the schemas of the providers' answers once; Validate
// takes a schema's name without ".json" ("bss.GetCustomerList").
func Upstream() (*Validator, error) {
	upstreamOnce.Do(func() {
		sub, err := fs.Sub(Files, "files/upstream")
		if err != nil {
			upstreamErr = err
			return
		}
		upstreamVal, upstreamErr = compile(sub, UpstreamBase, "")
	})
	return upstreamVal, upstreamErr
}

// Types lists the CloudEvents types that have a schema.
func (v *Validator) Types() []string {
	out := make([]string, 0, len(v.schemas))
	for t := range v.schemas {
		out = append(out, t)
	}
	return out
}

// Validate checks the JSON data of an event of type ceType.
func (v *Validator) Validate(ceType string, data []byte) error {
	s, ok := v.schemas[ceType]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownSchema, ceType)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: data is not JSON: %w", ceType, err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("%s: %w", ceType, err)
	}
	return nil
}
