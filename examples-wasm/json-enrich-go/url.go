package main

import (
	"bytes"
	"unicode/utf8"
)

// url is an absolute URL `scheme://[userinfo@]host[:port][/path][?query][#fragment]`, split
// and checked as the Rust example's parser does.
type url struct {
	host, path, query []byte
	hasQuery          bool
}

func isAlpha(c byte) bool { return c|32 >= 'a' && c|32 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return isAlpha(c) || isDigit(c) }

func parseURL(s []byte) (url, bool) {
	var u url
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == ' ' {
			return u, false
		}
	}
	scheme, rest, ok := bytes.Cut(s, []byte("://"))
	if !ok || len(scheme) == 0 || !isAlpha(scheme[0]) {
		return u, false
	}
	for _, c := range scheme[1:] {
		if !isAlnum(c) && c != '+' && c != '-' && c != '.' {
			return u, false
		}
	}
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, rest := rest[:end], rest[end:]
	hostPort := authority
	if at := bytes.LastIndexByte(authority, '@'); at >= 0 {
		hostPort = authority[at+1:]
	}
	host, port := hostPort, []byte(nil)
	if len(hostPort) > 0 && hostPort[0] == '[' {
		close := bytes.IndexByte(hostPort, ']')
		if close < 0 {
			return u, false
		}
		host = hostPort[:close+1]
		if after := hostPort[close+1:]; len(after) > 0 {
			if after[0] != ':' {
				return u, false
			}
			port = after[1:]
		}
	} else if colon := bytes.LastIndexByte(hostPort, ':'); colon >= 0 {
		host, port = hostPort[:colon], hostPort[colon+1:]
	}
	if len(port) > 0 {
		v := 0
		for _, c := range port {
			if !isDigit(c) {
				return u, false
			}
			v = v*10 + int(c-'0')
			if v > 65535 {
				return u, false
			}
		}
	}
	if !validHost(host) {
		return u, false
	}
	if hash := bytes.IndexByte(rest, '#'); hash >= 0 {
		rest = rest[:hash]
	}
	path, query, hasQuery := bytes.Cut(rest, []byte("?"))
	if len(path) == 0 {
		path = []byte("/")
	}
	return url{host: host, path: path, query: query, hasQuery: hasQuery}, true
}

func validHost(h []byte) bool {
	if len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']' {
		ip6 := h[1 : len(h)-1]
		if len(ip6) == 0 {
			return false
		}
		for _, c := range ip6 {
			if !isAlnum(c) && c != ':' && c != '.' && c != '%' {
				return false
			}
		}
		return true
	}
	if len(h) == 0 {
		return false
	}
	for _, c := range h {
		if c < 0x80 && !isAlnum(c) && bytes.IndexByte([]byte("-._~%!$&'()*+,;="), c) < 0 {
			return false
		}
	}
	return true
}

func hexVal(c byte) int {
	switch {
	case isDigit(c):
		return int(c - '0')
	case c|32 >= 'a' && c|32 <= 'f':
		return int(c|32-'a') + 10
	}
	return -1
}

// decode percent-decodes form-encoded text (`+` is a space); malformed escapes stay as written,
// and invalid UTF-8 is replaced by U+FFFD, one per maximal invalid subpart (as Rust's
// String::from_utf8_lossy does; Go's own replacement is one per byte).
func decode(s []byte) []byte {
	if bytes.IndexAny(s, "%+") < 0 {
		return s
	}
	raw := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '+':
			raw = append(raw, ' ')
		case s[i] == '%' && i+2 < len(s) && hexVal(s[i+1]) >= 0 && hexVal(s[i+2]) >= 0:
			raw = append(raw, byte(hexVal(s[i+1])<<4|hexVal(s[i+2])))
			i += 2
		default:
			raw = append(raw, s[i])
		}
	}
	return lossy(raw)
}

func lossy(s []byte) []byte {
	if utf8.Valid(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			out = append(out, c)
			i++
			continue
		}
		need, lo, hi := 0, byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c == 0xE0:
			need, lo = 2, 0xA0
		case c == 0xED:
			need, hi = 2, 0x9F
		case c >= 0xE1 && c <= 0xEF:
			need = 2
		case c == 0xF0:
			need, lo = 3, 0x90
		case c >= 0xF1 && c <= 0xF3:
			need = 3
		case c == 0xF4:
			need, hi = 3, 0x8F
		default:
			out = append(out, "\uFFFD"...)
			i++
			continue
		}
		j := 1
		for ; j <= need && i+j < len(s); j++ {
			b := s[i+j]
			if j == 1 && (b < lo || b > hi) || j > 1 && (b < 0x80 || b > 0xBF) {
				break
			}
		}
		if j == need+1 {
			out = append(out, s[i:i+j]...)
		} else {
			out = append(out, "\uFFFD"...)
		}
		i += j
	}
	return out
}
