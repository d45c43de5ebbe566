package weir

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// The batch encoding (sdk/wit/BATCH.md, format 3): decoding input batches, writing results.

const absent = math.MaxUint32

type reader struct {
	b   []byte
	pos int
}

func (r *reader) need(n int) {
	if len(r.b)-r.pos < n {
		panic("weir: the host sent a truncated batch")
	}
}

func (r *reader) u32() uint32 {
	r.need(4)
	v := binary.LittleEndian.Uint32(r.b[r.pos:])
	r.pos += 4
	return v
}

func (r *reader) i64() int64 {
	r.need(8)
	v := int64(binary.LittleEndian.Uint64(r.b[r.pos:]))
	r.pos += 8
	return v
}

// bytes reads a `bytes?`: nil when absent, a (possibly empty) sub-slice of the batch otherwise.
func (r *reader) bytes() []byte {
	n := r.u32()
	if n == absent {
		return nil
	}
	r.need(int(n))
	v := r.b[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return v
}

// batch is a decoded input batch; its slices are reused from batch to batch.
type batch struct {
	topic     string
	partition int32
	records   []Record
	headers   []Header
}

// decode reads an input batch that borrows from b; false if b is of another format.
func (bt *batch) decode(b []byte) bool {
	r := reader{b: b}
	if r.u32() != BatchFormat {
		return false
	}
	n := int(r.u32())
	bt.topic = string(r.bytes())
	bt.partition = int32(r.u32())
	bt.records = bt.records[:0]
	bt.headers = bt.headers[:0]
	for i := 0; i < n; i++ {
		end := int(r.u32())
		r.need(end)
		end += r.pos
		rec := Record{Offset: r.i64(), Timestamp: r.i64(), Key: r.bytes(), Value: r.bytes()}
		h := int(r.u32())
		start := len(bt.headers)
		for j := 0; j < h; j++ {
			name := r.bytes()
			bt.headers = append(bt.headers, Header{Name: unsafe.String(unsafe.SliceData(name), len(name)), Value: r.bytes()})
		}
		if h > 0 {
			rec.Headers = bt.headers[start:len(bt.headers):len(bt.headers)]
		}
		if r.pos != end {
			panic("weir: the host sent a record whose length disagrees with its fields")
		}
		bt.records = append(bt.records, rec)
	}
	// Headers appended after a reallocation of bt.headers point at the new array: fix up.
	pos := 0
	for i := range bt.records {
		if h := len(bt.records[i].Headers); h > 0 {
			bt.records[i].Headers = bt.headers[pos : pos+h : pos+h]
			pos += h
		}
	}
	return true
}

// Outputs collects the outputs of one input record.
type Outputs struct {
	buf       *[]byte
	in        *Record
	allowSame bool // false for aggregate emits, which have no input
	start     int
	count     uint32
}

// Input is the record these outputs belong to.
func (o *Outputs) Input() *Record { return o.in }

func putU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

func putBytes(b []byte, v []byte) []byte {
	if v == nil {
		return putU32(b, absent)
	}
	return append(putU32(b, uint32(len(v))), v...)
}

func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// Emit emits rec. Fields that are the input's own (the same slices, not equal copies) are sent
// as "the same as the input" without a copy.
func (o *Outputs) Emit(rec *Record) {
	b := *o.buf
	var same byte
	if o.allowSame {
		if sameBytes(rec.Key, o.in.Key) {
			same |= 1
		}
		if sameBytes(rec.Value, o.in.Value) {
			same |= 2
		}
		if len(rec.Headers) == len(o.in.Headers) && unsafe.SliceData(rec.Headers) == unsafe.SliceData(o.in.Headers) {
			same |= 4
		}
	}
	b = append(b, same)
	ts := rec.Timestamp
	if o.allowSame && ts == o.in.Timestamp {
		ts = NoTimestamp
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(ts))
	if same&1 == 0 {
		b = putBytes(b, rec.Key)
	}
	if same&2 == 0 {
		b = putBytes(b, rec.Value)
	}
	if same&4 == 0 {
		b = putU32(b, uint32(len(rec.Headers)))
		for _, h := range rec.Headers {
			b = append(putU32(b, uint32(len(h.Name))), h.Name...)
			b = putBytes(b, h.Value)
		}
	}
	*o.buf = b
	o.count++
}

// EmitValue emits the input with a new value (key, headers and timestamp unchanged).
func (o *Outputs) EmitValue(value []byte) {
	rec := *o.in
	rec.Value = value
	o.Emit(&rec)
}

// EmitInput emits the input unchanged.
func (o *Outputs) EmitInput() { o.Emit(o.in) }

func resultBegin(b []byte, entries int) []byte {
	b = putU32(b[:0], BatchFormat)
	return putU32(b, uint32(entries))
}

func (o *Outputs) begin(buf *[]byte, in *Record, allowSame bool) {
	*o = Outputs{buf: buf, in: in, allowSame: allowSame, start: len(*buf)}
	*buf = append(*buf, 0, 0, 0, 0, 0)
}

// ok ends an entry. One output that is the input, unchanged and without a timestamp of its
// own, is written as tag 2 ("the input, unchanged").
func (o *Outputs) ok() {
	b := *o.buf
	if o.count == 1 && len(b) == o.start+14 && b[o.start+5] == 7 &&
		int64(binary.LittleEndian.Uint64(b[o.start+6:])) == NoTimestamp {
		b[o.start] = 2
		*o.buf = b[:o.start+1]
		return
	}
	binary.LittleEndian.PutUint32(b[o.start+1:], o.count)
}

func (o *Outputs) fail(e *Error) {
	b := append((*o.buf)[:o.start], 1)
	b = putU32(b, uint32(len(e.Code)))
	b = append(b, e.Code...)
	b = putU32(b, uint32(len(e.Message)))
	*o.buf = append(b, e.Message...)
}

// processBatch runs the stage over an encoded batch and appends the encoded result to out.
func processBatch(st Stage, bt *batch, input []byte, out []byte) []byte {
	if !bt.decode(input) {
		panic("weir: the host sent a batch of another format")
	}
	out = resultBegin(out, len(bt.records))
	var o Outputs
	for i := range bt.records {
		o.begin(&out, &bt.records[i], true)
		if err := st.Process(&bt.records[i], &o); err != nil {
			o.fail(asError(err))
		} else {
			o.ok()
		}
	}
	return out
}
