// Example Weir stage in Go: trap, the Go twin of examples-wasm/misbehaving/trap.
//
// Passes every record through unchanged, and panics on a value that contains the marker
// trap_on: the SDK logs the panic and traps the instance, and the host must dead-letter that
// record alone and carry on with a fresh instance. Config: {"trap_on": "poison"} (the default);
// an empty marker is refused.
package main

import (
	"bytes"

	weir "weir.local/sdk"
)

func init() {
	weir.Enricher(func(config weir.Config) (weir.Stage, error) {
		s := &stage{marker: []byte("poison")}
		if config.IsEmpty() {
			return s, nil
		}
		root, err := weir.ParseJSON([]byte(config))
		if err != nil || root.Kind != weir.JSONObject {
			return nil, weir.Errorf("bad-config", "invalid stage config: %v", err)
		}
		for name, value := range root.Members {
			if !name.StringEquals("trap_on") || value.Kind != weir.JSONString {
				return nil, weir.Errorf("bad-config", "invalid stage config: expected `trap_on`, a string")
			}
			s.marker = []byte(value.Str())
		}
		if len(s.marker) == 0 {
			return nil, weir.Errorf("bad-config", "`trap_on` must not be empty")
		}
		return s, nil
	})
}

func main() {}

type stage struct{ marker []byte }

func (s *stage) Process(in *weir.Record, out *weir.Outputs) error {
	if bytes.Contains(in.Value, s.marker) {
		panic("the record is poisoned")
	}
	out.EmitInput()
	return nil
}
