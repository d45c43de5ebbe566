// {{name}}: upper-cases each record's value and appends the configured `suffix`.
//
// Config: {"suffix": "!"} (the default). Errors: empty-value (a null or empty value).
package main

import (
	"bytes"

	weir "weir.local/sdk"
)

func init() {
	// Called once per instance with the `config` table of the stage's entry in pipeline.toml.
	weir.Enricher(func(config weir.Config) (weir.Stage, error) {
		s := &stage{suffix: []byte("!")}
		if config.IsEmpty() {
			return s, nil
		}
		root, err := weir.ParseJSON([]byte(config))
		if err != nil || root.Kind != weir.JSONObject {
			return nil, weir.Errorf("bad-config", "invalid stage config: %v", err)
		}
		for name, value := range root.Members {
			if !name.StringEquals("suffix") || value.Kind != weir.JSONString {
				return nil, weir.Errorf("bad-config", "invalid stage config: expected `suffix`, a string")
			}
			s.suffix = []byte(value.Str())
		}
		return s, nil
	})
}

// A c-shared (reactor) module has no main to run, but package main needs one.
func main() {}

type stage struct {
	suffix []byte
	out    []byte
}

// Process is called for every input record, in order.
func (s *stage) Process(in *weir.Record, out *weir.Outputs) error {
	if len(in.Value) == 0 {
		return weir.Errorf("empty-value", "there is nothing to shout")
	}
	s.out = append(append(s.out[:0], bytes.ToUpper(in.Value)...), s.suffix...)
	out.EmitValue(s.out)
	return nil
}
