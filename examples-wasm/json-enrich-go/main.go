// Example Weir stage in Go: json-enrich, the same stage as examples-wasm/json-enrich (Rust).
//
// Input: a click as a JSON object, such as
// {"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000}.
// Output: the same object (members sorted by name, a repeated name keeping its last value) plus:
//
//	domain       the URL's host, lower-cased (ASCII), without port
//	path         the URL's path ("/" when empty)
//	section      the path's first segment ("" for "/")
//	ref, utm_*   those query parameters, percent-decoded, when present
//	hour         the UTC hour (0-23) of ts (milliseconds), when ts is a number
//
// Derived fields overwrite input fields of the same name. Key, headers and timestamp pass through.
//
// Config: {"field": "url"}: the member that holds the URL (default "url"); anything else is
// refused (bad-config). Errors: bad-json (value not a JSON object), missing-field (no string at
// field), bad-url (not an absolute scheme://host/... URL).
package main

import (
	"bytes"
	"math"
	"slices"
	"strconv"

	weir "weir.local/sdk"
)

func init() {
	weir.Enricher(newStage)
}

// A c-shared (reactor) module has no main to run, but package main needs one.
func main() {}

type stage struct {
	field string
	out   []byte // reused output buffer
	mem   []member
}

func newStage(config weir.Config) (weir.Stage, error) {
	s := &stage{field: "url"}
	if config.IsEmpty() {
		return s, nil
	}
	root, err := weir.ParseJSON([]byte(config))
	if err != nil {
		return nil, weir.Errorf("bad-config", "invalid stage config: %v", err)
	}
	if root.Kind != weir.JSONObject {
		return nil, weir.Errorf("bad-config", "invalid stage config: not an object")
	}
	seen := false
	for name, value := range root.Members {
		switch {
		case !name.StringEquals("field"):
			return nil, weir.Errorf("bad-config", "invalid stage config: unknown field %s, expected `field`", name.Text)
		case seen:
			return nil, weir.Errorf("bad-config", "invalid stage config: duplicate field `field`")
		case value.Kind != weir.JSONString:
			return nil, weir.Errorf("bad-config", "invalid stage config: `field` must be a string")
		}
		s.field, seen = value.Str(), true
	}
	return s, nil
}

// member is an output member: its decoded name and its JSON text.
type member struct {
	name  []byte
	json  []byte
	order int
}

func (s *stage) Process(in *weir.Record, out *weir.Outputs) error {
	root, err := weir.ParseJSON(in.Value)
	if err != nil {
		return weir.Errorf("bad-json", "the value is not JSON: %v", err)
	}
	if root.Kind != weir.JSONObject {
		return weir.Errorf("bad-json", "the value is not a JSON object")
	}
	urlJSON, ok := root.Get(s.field)
	if !ok {
		return weir.Errorf("missing-field", "no `%s` field", s.field)
	}
	if urlJSON.Kind != weir.JSONString {
		return weir.Errorf("missing-field", "`%s` is not a string", s.field)
	}
	text := urlJSON.AppendStr(nil)
	u, ok := parseURL(text)
	if !ok {
		return weir.Errorf("bad-url", "cannot parse %q", text)
	}

	mem := s.mem[:0]
	add := func(name, json []byte) { mem = append(mem, member{name, json, len(mem)}) }
	for name, value := range root.Members {
		if bytes.IndexByte(name.Text, '\\') >= 0 {
			add(name.AppendStr(nil), value.Text)
		} else {
			add(name.Text[1:len(name.Text)-1], value.Text)
		}
	}
	str := func(v []byte) []byte { return weir.AppendJSONString(nil, v) }
	add([]byte("domain"), str(lowerASCII(u.host)))
	add([]byte("path"), str(u.path))
	section, _, _ := bytes.Cut(bytes.TrimPrefix(u.path, []byte("/")), []byte("/"))
	add([]byte("section"), str(section))
	if u.hasQuery {
		for pair := range bytes.SplitSeq(u.query, []byte("&")) {
			if len(pair) == 0 {
				continue
			}
			name, value, _ := bytes.Cut(pair, []byte("="))
			n := decode(name)
			if string(n) == "ref" || bytes.HasPrefix(n, []byte("utm_")) {
				add(n, str(decode(value)))
			}
		}
	}
	if ts, ok := root.Get("ts"); ok && ts.Kind == weir.JSONNumber {
		ms, ok := ts.Int64()
		if !ok {
			ms = saturate(ts.Float64())
		}
		add([]byte("hour"), strconv.AppendInt(nil, utcHour(ms), 10))
	}

	// Sorted by name; of a repeated name the last one wins.
	slices.SortFunc(mem, func(a, b member) int {
		if c := bytes.Compare(a.name, b.name); c != 0 {
			return c
		}
		return a.order - b.order
	})
	o := append(s.out[:0], '{')
	first := true
	for i, m := range mem {
		if i+1 < len(mem) && bytes.Equal(mem[i+1].name, m.name) {
			continue
		}
		if !first {
			o = append(o, ',')
		}
		first = false
		o = weir.AppendJSONString(o, m.name)
		o = append(o, ':')
		o = append(o, m.json...)
	}
	o = append(o, '}')
	s.out, s.mem = o, mem
	out.EmitValue(o)
	return nil
}

// lowerASCII lower-cases ASCII letters only (bytes.ToLower would change other letters too).
func lowerASCII(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// saturate is Rust's `f as i64`: truncation, saturating at the ends.
func saturate(f float64) int64 {
	switch {
	case f >= 9223372036854775807.0:
		return math.MaxInt64
	case f <= -9223372036854775808.0:
		return math.MinInt64
	}
	return int64(f)
}

func utcHour(ms int64) int64 {
	const hourMS = 3_600_000
	h := ms / hourMS
	if ms%hourMS < 0 {
		h--
	}
	r := h % 24
	if r < 0 {
		r += 24
	}
	return r
}
