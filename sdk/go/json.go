package weir

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// A small strict JSON reader and writer. ParseJSON validates a whole document the way the Rust
// SDK's serde_json does (RFC 8259: no trailing commas or characters, no leading zeros, no control
// characters, invalid UTF-8 or unpaired surrogates in strings, finite numbers, at most 127
// nested arrays and objects), so a Go stage refuses exactly the inputs a Rust stage refuses;
// encoding/json is laxer (it replaces invalid UTF-8 and lone surrogates). Values are views of
// the text: nothing is copied until asked.

// JSONKind is the kind of a JSON value.
type JSONKind uint8

const (
	JSONNull JSONKind = iota
	JSONFalse
	JSONTrue
	JSONNumber
	JSONString
	JSONArray
	JSONObject
)

// JSON is a JSON value: its kind and its text (a string's text includes the quotes).
type JSON struct {
	Kind JSONKind
	Text []byte
}

const maxDepth = 127

type jsonParser struct {
	s     []byte
	pos   int
	depth int
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *jsonParser) skipWS() {
	for p.pos < len(p.s) && isWS(p.s[p.pos]) {
		p.pos++
	}
}

// ParseJSON parses text as one JSON document.
func ParseJSON(text []byte) (JSON, error) {
	p := jsonParser{s: text}
	p.skipWS()
	v, err := p.value()
	if err != nil {
		return v, err
	}
	p.skipWS()
	if p.pos != len(p.s) {
		return v, errors.New("trailing characters")
	}
	return v, nil
}

func (p *jsonParser) value() (JSON, error) {
	if p.pos >= len(p.s) {
		return JSON{}, errors.New("EOF while parsing a value")
	}
	start := p.pos
	var kind JSONKind
	var err error
	switch c := p.s[p.pos]; {
	case c == 'n':
		kind, err = JSONNull, p.literal("null")
	case c == 't':
		kind, err = JSONTrue, p.literal("true")
	case c == 'f':
		kind, err = JSONFalse, p.literal("false")
	case c == '"':
		kind, err = JSONString, p.str()
	case c == '[':
		kind, err = JSONArray, p.container(']')
	case c == '{':
		kind, err = JSONObject, p.container('}')
	case c == '-' || (c >= '0' && c <= '9'):
		kind, err = JSONNumber, p.number()
	default:
		err = errors.New("expected value")
	}
	return JSON{Kind: kind, Text: p.s[start:p.pos]}, err
}

func (p *jsonParser) literal(word string) error {
	if !bytes.HasPrefix(p.s[p.pos:], []byte(word)) {
		return errors.New("expected value")
	}
	p.pos += len(word)
	return nil
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func hex4(s []byte, at int) (rune, bool) {
	if at+4 > len(s) {
		return 0, false
	}
	var v rune
	for i := 0; i < 4; i++ {
		d := hexVal(s[at+i])
		if d < 0 {
			return 0, false
		}
		v = v<<4 | rune(d)
	}
	return v, true
}

func (p *jsonParser) str() error {
	p.pos++
	for {
		if p.pos >= len(p.s) {
			return errors.New("EOF while parsing a string")
		}
		c := p.s[p.pos]
		switch {
		case c == '"':
			p.pos++
			return nil
		case c < 0x20:
			return errors.New("control character (\\u0000-\\u001F) found while parsing a string")
		case c == '\\':
			if p.pos+1 >= len(p.s) {
				return errors.New("EOF while parsing a string")
			}
			e := p.s[p.pos+1]
			if e == 'u' {
				u, ok := hex4(p.s, p.pos+2)
				if !ok {
					return errors.New("invalid escape")
				}
				p.pos += 6
				if u >= 0xDC00 && u <= 0xDFFF {
					return errors.New("lone trailing surrogate in hex escape")
				}
				if u >= 0xD800 && u <= 0xDBFF {
					if p.pos+1 >= len(p.s) || p.s[p.pos] != '\\' || p.s[p.pos+1] != 'u' {
						return errors.New("unexpected end of hex escape")
					}
					lo, ok := hex4(p.s, p.pos+2)
					if !ok {
						return errors.New("invalid escape")
					}
					if lo < 0xDC00 || lo > 0xDFFF {
						return errors.New("lone leading surrogate in hex escape")
					}
					p.pos += 6
				}
				continue
			}
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.pos += 2
			default:
				return errors.New("invalid escape")
			}
		case c < 0x80:
			p.pos++
		default:
			r, n := utf8.DecodeRune(p.s[p.pos:])
			if r == utf8.RuneError && n <= 1 {
				return errors.New("invalid unicode code point")
			}
			p.pos += n
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *jsonParser) digits() bool {
	start := p.pos
	for p.pos < len(p.s) && isDigit(p.s[p.pos]) {
		p.pos++
	}
	return p.pos > start
}

func (p *jsonParser) number() error {
	start := p.pos
	if p.s[p.pos] == '-' {
		p.pos++
	}
	if p.pos >= len(p.s) || !isDigit(p.s[p.pos]) {
		return errors.New("invalid number")
	}
	if p.s[p.pos] == '0' {
		p.pos++
		if p.pos < len(p.s) && isDigit(p.s[p.pos]) {
			return errors.New("invalid number")
		}
	} else {
		p.digits()
	}
	if p.pos < len(p.s) && p.s[p.pos] == '.' {
		p.pos++
		if !p.digits() {
			return errors.New("invalid number")
		}
	}
	if p.pos < len(p.s) && (p.s[p.pos] == 'e' || p.s[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.s) && (p.s[p.pos] == '+' || p.s[p.pos] == '-') {
			p.pos++
		}
		if !p.digits() {
			return errors.New("invalid number")
		}
	}
	if math.IsInf(JSON{JSONNumber, p.s[start:p.pos]}.Float64(), 0) {
		return errors.New("number out of range")
	}
	return nil
}

func (p *jsonParser) container(end byte) error {
	p.depth++
	if p.depth > maxDepth {
		return errors.New("recursion limit exceeded")
	}
	p.pos++
	p.skipWS()
	if p.pos < len(p.s) && p.s[p.pos] == end {
		p.pos++
		p.depth--
		return nil
	}
	eof := errors.New("EOF while parsing a list")
	if end == '}' {
		eof = errors.New("EOF while parsing an object")
	}
	for {
		if end == '}' {
			if p.pos >= len(p.s) {
				return eof
			}
			if p.s[p.pos] != '"' {
				return errors.New("key must be a string")
			}
			if err := p.str(); err != nil {
				return err
			}
			p.skipWS()
			if p.pos >= len(p.s) {
				return eof
			}
			if p.s[p.pos] != ':' {
				return errors.New("expected `:`")
			}
			p.pos++
			p.skipWS()
		}
		if _, err := p.value(); err != nil {
			return err
		}
		p.skipWS()
		if p.pos >= len(p.s) {
			return eof
		}
		if p.s[p.pos] == end {
			p.pos++
			p.depth--
			return nil
		}
		if p.s[p.pos] != ',' {
			return errors.New("expected `,` or `" + string(end) + "`")
		}
		p.pos++
		p.skipWS()
		if p.pos < len(p.s) && p.s[p.pos] == end {
			return errors.New("trailing comma")
		}
	}
}

// skipValue skips one value of validated text from s[pos]; returns the position after it.
func skipValue(s []byte, pos int) int {
	depth, inString := 0, false
	for {
		c := s[pos]
		pos++
		switch {
		case inString:
			if c == '\\' {
				pos++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case depth == 0:
			for pos < len(s) && !isWS(s[pos]) && s[pos] != ',' && s[pos] != '}' && s[pos] != ']' {
				pos++
			}
		}
		if depth == 0 && !inString {
			return pos
		}
	}
}

func kindOf(c byte) JSONKind {
	switch c {
	case '"':
		return JSONString
	case '{':
		return JSONObject
	case '[':
		return JSONArray
	case 'n':
		return JSONNull
	case 't':
		return JSONTrue
	case 'f':
		return JSONFalse
	}
	return JSONNumber
}

// Members yields an object's members in document order (a repeated name is yielded each time).
func (j JSON) Members(yield func(name, value JSON) bool) {
	s := j.Text
	i := 1
	for {
		for isWS(s[i]) || s[i] == ',' {
			i++
		}
		if s[i] == '}' {
			return
		}
		end := skipValue(s, i)
		name := JSON{JSONString, s[i:end]}
		i = end
		for isWS(s[i]) || s[i] == ':' {
			i++
		}
		end = skipValue(s, i)
		value := JSON{kindOf(s[i]), s[i:end]}
		i = end
		if !yield(name, value) {
			return
		}
	}
}

// Get returns an object's member called name (the last one when repeated).
func (j JSON) Get(name string) (JSON, bool) {
	var found JSON
	ok := false
	for k, v := range j.Members {
		if k.StringEquals(name) {
			found, ok = v, true
		}
	}
	return found, ok
}

// Str returns a string value, decoded.
func (j JSON) Str() string { return string(j.AppendStr(nil)) }

// AppendStr appends a string value's decoded UTF-8 to b.
func (j JSON) AppendStr(b []byte) []byte {
	s := j.Text[1 : len(j.Text)-1]
	for len(s) > 0 {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			return append(b, s...)
		}
		b = append(b, s[:i]...)
		e := s[i+1]
		s = s[i+2:]
		switch e {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, _ := hex4(s, 0)
			s = s[4:]
			if r >= 0xD800 && r <= 0xDBFF {
				lo, _ := hex4(s, 2)
				s = s[6:]
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			}
			b = utf8.AppendRune(b, r)
		default:
			b = append(b, e)
		}
	}
	return b
}

// StringEquals reports whether a string value decodes to exactly text.
func (j JSON) StringEquals(text string) bool {
	if bytes.IndexByte(j.Text, '\\') < 0 {
		return len(j.Text) == len(text)+2 && string(j.Text[1:len(j.Text)-1]) == text
	}
	return j.Str() == text
}

// Int64 returns a number written as an integer that fits an int64.
func (j JSON) Int64() (int64, bool) {
	v, err := strconv.ParseInt(string(j.Text), 10, 64)
	return v, err == nil
}

// Float64 returns a number as the nearest float64 (±Inf when out of range).
func (j JSON) Float64() float64 {
	v, _ := strconv.ParseFloat(string(j.Text), 64)
	return v
}

// AppendJSONString appends s as a quoted, escaped JSON string.
func AppendJSONString(b []byte, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		start = i + 1
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
