package weir

import "fmt"

// Level is the severity of a log line.
type Level uint32

const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Log writes a log line through the host: it lands in the runtime's structured logs with the
// stage name, trace context, partition and offset. fields are name, value pairs.
func Log(level Level, message string, fields ...string) { hostLogLine(level, message, fields) }

// LogInfo, LogWarn and LogError log at that level.
func LogInfo(message string, fields ...string)  { Log(LevelInfo, message, fields...) }
func LogWarn(message string, fields ...string)  { Log(LevelWarn, message, fields...) }
func LogError(message string, fields ...string) { Log(LevelError, message, fields...) }

// CounterAdd adds delta to the stage's counter name (the host prefixes and labels it).
func CounterAdd(name string, delta uint64) { hostCounter(name, delta) }

// HistogramRecord records value in the stage's histogram name.
func HistogramRecord(name string, value float64) { hostHistogram(name, value) }

func panicMessage(r any) string {
	if e, ok := r.(error); ok {
		return "panic: " + e.Error()
	}
	return fmt.Sprint("panic: ", r)
}
