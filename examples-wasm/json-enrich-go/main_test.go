package main

import (
	"strings"
	"testing"

	weir "weir.local/sdk"
)

func run(t *testing.T, config string, values ...string) []weir.Result {
	t.Helper()
	st, err := newStage(weir.Config(config))
	if err != nil {
		t.Fatal(err)
	}
	var records []weir.Record
	for i, v := range values {
		records = append(records, weir.Record{Offset: int64(i), Timestamp: 1, Key: []byte("k"), Value: []byte(v)})
	}
	out, err := weir.Run(st, records)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEnrichesAClick(t *testing.T) {
	out := run(t, "", `{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000}`)
	got := string(out[0].Outputs[0].Value)
	want := `{"domain":"shop.example","hour":22,"path":"/products/42","ref":"mail","section":"products","ts":1700000000000,"url":"https://shop.example/products/42?ref=mail","user":"u17"}`
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestRefusesBadInputs(t *testing.T) {
	for value, code := range map[string]string{
		"not json":                  "bad-json",
		"":                          "bad-json",
		`{"user":"u1"}`:             "missing-field",
		`{"url":"/products/42"}`:    "bad-url",
		`{"url":"https://"}`:        "bad-url",
		`{"url":"http://h/","a":1,}`: "bad-json",
	} {
		if out := run(t, "", value); out[0].Err == nil || out[0].Err.Code != code {
			t.Errorf("%q: got %+v, want %s", value, out[0], code)
		}
	}
}

func TestLargeValues(t *testing.T) {
	big := `{"blob":"` + strings.Repeat("y", 200_000) + `","url":"https://big.example/x"}`
	if out := run(t, "", big); out[0].Err != nil {
		t.Fatal(out[0].Err)
	}
}
