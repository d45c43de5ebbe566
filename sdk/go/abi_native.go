//go:build !wasip1

package weir

import (
	"fmt"
	"os"
)

// Outside wasm (go test), log lines go to standard error and metrics are dropped.

func hostLogLine(level Level, message string, fields []string) {
	fmt.Fprintln(os.Stderr, append([]any{[...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}[level], message}, anySlice(fields)...)...)
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func hostCounter(string, uint64)    {}
func hostHistogram(string, float64) {}
