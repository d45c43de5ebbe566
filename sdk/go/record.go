// Package weir writes Weir stages in Go.
//
// A stage is a WebAssembly component of the contract weir:stage@0.1.0 (sdk/wit/stage.wit). This
// package hides the component ABI (hand-written glue: there is no wit-bindgen for Go here) and the
// flat batch encoding (sdk/wit/BATCH.md, format 3). An enrich stage registers itself in an init
// function:
//
//	func init() {
//		weir.Enricher(func(config weir.Config) (weir.Stage, error) { return &myStage{}, nil })
//	}
//
// and implements Process, which is called once per input record. See sdk/go/README.md.
package weir

import (
	"fmt"
	"math"
)

// Contract is the contract version this package implements; BatchFormat the batch encoding.
const (
	Contract    = "weir:stage@0.1.0"
	BatchFormat = 3
)

// NoTimestamp is an absent timestamp: an output without one keeps its input's.
const NoTimestamp int64 = math.MinInt64

// Header is one Kafka header. A nil Value is a null header value.
type Header struct {
	Name  string
	Value []byte
}

// Record is one Kafka record. A nil Key or Value is absent (null); a present empty one is a
// non-nil empty slice. Inputs share the bytes of the batch the host sent: they are valid until
// Process returns (copy what you keep).
type Record struct {
	Offset    int64 // source offset (outputs keep their input's)
	Timestamp int64 // ms since the epoch, or NoTimestamp
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Header returns the value of the first header called name, and whether there is one.
func (r *Record) Header(name string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Name == name {
			return h.Value, true
		}
	}
	return nil, false
}

// Error refuses a configuration or sends one record to the dead-letter topic: a short
// machine-readable Code (such as "bad-json") and a human-readable Message.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// asError turns any error into a stage error (code "error" unless it is an *Error).
func asError(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Code: "error", Message: err.Error()}
}

// Config is the stage's `config` table from the pipeline file, as JSON text ("" when none).
type Config string

// IsEmpty reports whether the config is empty: no text, only whitespace, "{}" or "null".
func (c Config) IsEmpty() bool {
	t := trimSpace(string(c))
	if t == "" || t == "null" {
		return true
	}
	if t[0] == '{' && t[len(t)-1] == '}' {
		return trimSpace(t[1:len(t)-1]) == ""
	}
	return false
}

func trimSpace(s string) string {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' }
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// Stage is an enrich stage's instance, made once per instance by the function given to Enricher.
type Stage interface {
	// Process handles one input record: emit zero or more outputs on out (none filters the
	// record out) and return nil, or return an error to send the record to the dead-letter topic
	// (outputs emitted before the error are dropped). A panic traps the instance: the host
	// discards it and dead-letters the record.
	Process(in *Record, out *Outputs) error
}

// Enricher registers the enrich stage of this module: newStage is called once per instance with
// the stage's configuration; an error refuses the configuration (the pipeline does not start).
// Call it from an init function.
func Enricher(newStage func(config Config) (Stage, error)) {
	enricherFactory = newStage
}

var (
	enricherFactory func(Config) (Stage, error)
	stage           Stage
)
