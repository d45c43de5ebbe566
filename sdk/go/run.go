package weir

import (
	"encoding/binary"
	"errors"
)

// Result is what a stage made of one input record: its outputs, or the error that dead-letters
// it.
type Result struct {
	Outputs []Record
	Err     *Error
}

// Run runs stage over records as the host does (one encoded batch in, one encoded result out)
// and decodes the result; for tests (`go test`). Outputs without a timestamp get their input's.
func Run(stage Stage, records []Record) ([]Result, error) {
	var bt batch
	out := processBatch(stage, &bt, encodeBatch(records), nil)
	return decodeResult(out, bt.records)
}

// encodeBatch encodes records as an input batch, as the host does.
func encodeBatch(records []Record) []byte {
	in := resultBegin(nil, len(records)) // format, count
	in = putBytes(in, []byte("test"))
	in = binary.LittleEndian.AppendUint32(in, 0)
	for _, r := range records {
		at := len(in)
		in = putU32(in, 0) // the record's length, set below
		in = binary.LittleEndian.AppendUint64(in, uint64(r.Offset))
		in = binary.LittleEndian.AppendUint64(in, uint64(r.Timestamp))
		in = putBytes(in, r.Key)
		in = putBytes(in, r.Value)
		in = putU32(in, uint32(len(r.Headers)))
		for _, h := range r.Headers {
			in = append(putU32(in, uint32(len(h.Name))), h.Name...)
			in = putBytes(in, h.Value)
		}
		binary.LittleEndian.PutUint32(in[at:], uint32(len(in)-at-4))
	}
	return in
}

func decodeResult(b []byte, inputs []Record) (results []Result, err error) {
	defer func() {
		if recover() != nil {
			err = errors.New("weir: malformed batch result")
		}
	}()
	r := reader{b: b}
	if r.u32() != BatchFormat || int(r.u32()) != len(inputs) {
		return nil, errors.New("weir: batch result of another format or size")
	}
	for i := range inputs {
		r.need(1)
		tag := r.b[r.pos]
		r.pos++
		if tag == 1 {
			code, msg := r.bytes(), r.bytes()
			results = append(results, Result{Err: &Error{Code: string(code), Message: string(msg)}})
			continue
		}
		if tag == 2 {
			results = append(results, Result{Outputs: []Record{inputs[i]}})
			continue
		}
		if tag != 0 {
			return nil, errors.New("weir: malformed batch result")
		}
		var outs []Record
		for n := r.u32(); n > 0; n-- {
			r.need(1)
			same := r.b[r.pos]
			r.pos++
			o := Record{Offset: inputs[i].Offset, Timestamp: r.i64()}
			if o.Timestamp == NoTimestamp {
				o.Timestamp = inputs[i].Timestamp
			}
			if same&1 != 0 {
				o.Key = inputs[i].Key
			} else {
				o.Key = r.bytes()
			}
			if same&2 != 0 {
				o.Value = inputs[i].Value
			} else {
				o.Value = r.bytes()
			}
			if same&4 != 0 {
				o.Headers = inputs[i].Headers
			} else {
				for h := r.u32(); h > 0; h-- {
					name := r.bytes()
					o.Headers = append(o.Headers, Header{Name: string(name), Value: r.bytes()})
				}
			}
			outs = append(outs, o)
		}
		results = append(results, Result{Outputs: outs})
	}
	return results, nil
}
