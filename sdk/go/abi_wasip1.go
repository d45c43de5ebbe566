//go:build wasip1

package weir

// The component ABI of the enricher world, written by hand (the canonical ABI of
// sdk/wit/stage.wit lowered to core wasm): `wasm-tools component embed` attaches the WIT and
// `wasm-tools component new` lifts these exports into `weir:stage/enrich@0.1.0`.
//
// Memory handed to the host stays referenced from Go variables until the host's post-return
// call; memory the host asks for (cabi_realloc) comes from an arena allocated in ordinary code,
// because allocating from the Go heap inside cabi_realloc may run the garbage collector, which
// reads the clock through a WASI import, which the component model forbids at that point.

import (
	"encoding/binary"
	"unsafe"
)

//go:wasmimport weir:stage/host@0.1.0 log
func hostLog(level, msgPtr, msgLen, fieldsPtr, fieldsLen uint32)

//go:wasmimport weir:stage/host@0.1.0 counter-add
func hostCounterAdd(namePtr, nameLen uint32, delta uint64)

//go:wasmimport weir:stage/host@0.1.0 histogram-record
func hostHistogramRecord(namePtr, nameLen uint32, value float64)

// trap executes `unreachable` (trap_wasm.s).
func trap()

func ptr[T any](p *T) uint32 { return uint32(uintptr(unsafe.Pointer(p))) }

func strPtr(s string) uint32 {
	if len(s) == 0 {
		return 1 // any aligned address: the host reads nothing
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.StringData(s))))
}

func bytesPtr(b []byte) uint32 {
	if len(b) == 0 {
		return 1
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// ---------------------------------------------------------------------------------------------
// The arena behind cabi_realloc.

var (
	arena     = make([]byte, 1<<20)
	arenaUsed int
	// The largest request that did not fit: the arena grows to twice it after the call.
	arenaWant int
	// Blocks that did not fit in the arena, kept alive until the call returns.
	overflow [][]byte
)

// cabiRealloc is nosplit: a function prologue that checks the stack is where the scheduler
// would take over (when the garbage collector asked for it), and the scheduler reads the clock.
//
//go:wasmexport cabi_realloc
//go:nosplit
func cabiRealloc(oldPtr, oldSize, align, newSize uint32) uint32 {
	if oldPtr != 0 && newSize <= oldSize {
		return oldPtr
	}
	start := (arenaUsed + int(align) - 1) &^ (int(align) - 1)
	if start+int(newSize) <= len(arena) {
		arenaUsed = start + int(newSize)
		p := uint32(uintptr(unsafe.Pointer(&arena[start])))
		if oldPtr != 0 {
			copy(arena[start:start+int(oldSize)], unsafe.Slice((*byte)(unsafe.Pointer(uintptr(oldPtr))), oldSize))
		}
		return p
	}
	return overflowAlloc(oldPtr, oldSize, align, newSize)
}

// overflowAlloc serves a request too big for the arena from the Go heap: the first batch larger
// than any before (the arena then grows to twice its size after the call). Allocating may start
// the garbage collector, which is why the arena exists.
func overflowAlloc(oldPtr, oldSize, align, newSize uint32) uint32 {
	if arenaUsed+int(newSize) > arenaWant {
		arenaWant = arenaUsed + int(newSize)
	}
	block := make([]byte, newSize+align)
	overflow = append(overflow, block)
	base := uintptr(unsafe.Pointer(&block[0]))
	p := (base + uintptr(align) - 1) &^ (uintptr(align) - 1)
	if oldPtr != 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(p)), oldSize), unsafe.Slice((*byte)(unsafe.Pointer(uintptr(oldPtr))), oldSize))
	}
	return uint32(p)
}

// arenaReset drops the blocks that did not fit the arena and grows it when one did not. Called
// in init and process once their input is read, where the Go heap may be used (the post-return
// calls only rewind the bump pointer: the component model forbids imports there too).
func arenaReset() {
	overflow = nil
	if arenaWant > len(arena) {
		arena = make([]byte, 2*arenaWant)
		arenaWant = 0
	}
}

func hostBytes(p, n uint32) []byte {
	if n == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n)
}

// ---------------------------------------------------------------------------------------------
// weir:stage/enrich@0.1.0

// A return area: the canonical ABI returns anything larger than one value through memory.
var retArea [8]uint32

// Kept alive until post-return.
var (
	resultBuf []byte
	errCode   string
	errMsg    string
	bt        batch
)

//go:wasmexport weir:stage/enrich@0.1.0#batch-format
func exportBatchFormat() uint32 { return BatchFormat }

//go:wasmexport weir:stage/enrich@0.1.0#init
func exportInit(p, n uint32) uint32 {
	config := Config(hostBytes(p, n)) // copies
	arenaReset()
	arenaUsed = 0
	defer catchPanic()
	if enricherFactory == nil {
		panic("weir: no stage registered (call weir.Enricher in an init function)")
	}
	s, err := enricherFactory(config)
	if err != nil {
		e := asError(err)
		errCode, errMsg = e.Code, e.Message
		retArea[0] = 1
		retArea[1], retArea[2] = strPtr(errCode), uint32(len(errCode))
		retArea[3], retArea[4] = strPtr(errMsg), uint32(len(errMsg))
		return ptr(&retArea[0])
	}
	stage = s
	retArea[0] = 0
	return ptr(&retArea[0])
}

//go:wasmexport cabi_post_weir:stage/enrich@0.1.0#init
//go:nosplit
func postInit(uint32) { arenaUsed = 0 }

//go:wasmexport weir:stage/enrich@0.1.0#process
func exportProcess(p, n uint32) uint32 {
	defer catchPanic()
	if stage == nil {
		panic("weir: process called before init")
	}
	resultBuf = processBatch(stage, &bt, hostBytes(p, n), resultBuf[:0])
	// The input is read: drop the blocks that did not fit the arena, and make room for a batch
	// twice this size next time, here where the collector may run.
	if want := 2 * int(n); want > len(arena) && want > arenaWant {
		arenaWant = want
	}
	arenaReset()
	retArea[0], retArea[1] = bytesPtr(resultBuf), uint32(len(resultBuf))
	return ptr(&retArea[0])
}

//go:wasmexport cabi_post_weir:stage/enrich@0.1.0#process
//go:nosplit
func postProcess(uint32) {
	arenaUsed = 0
}

// catchPanic reports a panic to the host log (level error, `panic = "true"`) and traps: the
// host discards the instance and dead-letters the record.
func catchPanic() {
	if r := recover(); r != nil {
		Log(LevelError, panicMessage(r), "panic", "true")
		trap()
	}
}

// ---------------------------------------------------------------------------------------------
// weir:stage/host@0.1.0

func hostLogLine(level Level, message string, fields []string) {
	pairs := make([]uint32, 0, len(fields)*2)
	for i := 0; i+1 < len(fields); i += 2 {
		pairs = append(pairs, strPtr(fields[i]), uint32(len(fields[i])), strPtr(fields[i+1]), uint32(len(fields[i+1])))
	}
	fp := uint32(4)
	if len(pairs) > 0 {
		fp = ptr(&pairs[0])
	}
	hostLog(uint32(level), strPtr(message), uint32(len(message)), fp, uint32(len(pairs)/4))
	keepAlive(message, fields, pairs)
}

func hostCounter(name string, delta uint64) {
	hostCounterAdd(strPtr(name), uint32(len(name)), delta)
	keepAlive(name, nil, nil)
}

func hostHistogram(name string, value float64) {
	hostHistogramRecord(strPtr(name), uint32(len(name)), value)
	keepAlive(name, nil, nil)
}

var sink any

//go:noinline
func keepAlive(s string, f []string, p []uint32) {
	if len(s) == -1 {
		sink = [3]any{s, f, p}
	}
}

var _ = binary.LittleEndian
