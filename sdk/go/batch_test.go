package weir

import (
	"bytes"
	"encoding/binary"
	"testing"
)

type stageFunc func(in *Record, out *Outputs) error

func (f stageFunc) Process(in *Record, out *Outputs) error { return f(in, out) }

var testRecords = []Record{
	{Offset: 7, Timestamp: 5, Key: []byte("k"), Value: []byte(`{"a":1}`), Headers: []Header{{"h", []byte("v")}, {"n", nil}}},
	{Offset: 8, Timestamp: NoTimestamp},
}

func TestBatchRoundTrip(t *testing.T) {
	var bt batch
	if !bt.decode(encodeBatch(testRecords)) {
		t.Fatal("refused its own batch")
	}
	if bt.topic != "test" || len(bt.records) != 2 {
		t.Fatalf("got %q, %d records", bt.topic, len(bt.records))
	}
	r := bt.records[0]
	if r.Offset != 7 || r.Timestamp != 5 || string(r.Key) != "k" || string(r.Value) != `{"a":1}` ||
		len(r.Headers) != 2 || r.Headers[1].Name != "n" || r.Headers[1].Value != nil {
		t.Fatalf("got %+v", r)
	}
	if r := bt.records[1]; r.Offset != 8 || r.Timestamp != NoTimestamp || r.Key != nil || r.Value != nil || r.Headers != nil {
		t.Fatalf("got %+v", r)
	}
}

func TestRefusesARecordWhoseLengthDisagreesWithItsFields(t *testing.T) {
	// format, count, topic "test", partition: the first record's length follows.
	const at = 4 + 4 + 4 + 4 + 4
	for _, delta := range []int{-1, 1} {
		in := encodeBatch(testRecords)
		binary.LittleEndian.PutUint32(in[at:], uint32(int(binary.LittleEndian.Uint32(in[at:]))+delta))
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("length %+d: the batch was read", delta)
				}
			}()
			var bt batch
			bt.decode(in)
		}()
	}
}

func TestAnUnchangedInputIsWrittenAsTag2(t *testing.T) {
	var bt batch
	out := processBatch(stageFunc(func(in *Record, out *Outputs) error {
		out.EmitInput()
		return nil
	}), &bt, encodeBatch(testRecords), nil)
	if want := []byte{3, 0, 0, 0, 2, 0, 0, 0, 2, 2}; !bytes.Equal(out, want) {
		t.Fatalf("got %v, want %v", out, want)
	}
	out = processBatch(stageFunc(func(in *Record, out *Outputs) error {
		rec := *in
		rec.Timestamp = 6
		out.Emit(&rec)
		return nil
	}), &bt, encodeBatch(testRecords[:1]), nil)
	if out[8] != 0 || out[13] != 7 {
		t.Fatalf("a new timestamp: got %v", out)
	}
}

func TestTag2ReadsBackAsTheInput(t *testing.T) {
	got, err := decodeResult([]byte{3, 0, 0, 0, 1, 0, 0, 0, 2}, testRecords[:1])
	if err != nil {
		t.Fatal(err)
	}
	o := got[0].Outputs
	if got[0].Err != nil || len(o) != 1 || o[0].Offset != 7 || o[0].Timestamp != 5 || string(o[0].Key) != "k" ||
		string(o[0].Value) != `{"a":1}` || len(o[0].Headers) != 2 {
		t.Fatalf("got %+v", got)
	}
	if _, err := decodeResult([]byte{3, 0, 0, 0, 1, 0, 0, 0, 3}, testRecords[:1]); err == nil {
		t.Fatal("an unknown tag was read")
	}
}

func TestRun(t *testing.T) {
	got, err := Run(stageFunc(func(in *Record, out *Outputs) error {
		switch in.Offset {
		case 7:
			out.EmitInput()
			out.EmitValue([]byte("v2"))
		default:
			return Errorf("bad", "no")
		}
		return nil
	}), testRecords)
	if err != nil {
		t.Fatal(err)
	}
	if o := got[0].Outputs; len(o) != 2 || string(o[0].Value) != `{"a":1}` || string(o[1].Value) != "v2" ||
		o[1].Timestamp != 5 || string(o[1].Key) != "k" || len(o[1].Headers) != 2 {
		t.Fatalf("got %+v", got[0])
	}
	if e := got[1].Err; e == nil || e.Code != "bad" || e.Message != "no" {
		t.Fatalf("got %+v", got[1])
	}
}
