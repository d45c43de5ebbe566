//! A small, allocation-free parser for the absolute URLs found in clicks.
//!
//! It splits `scheme://[userinfo@]host[:port][/path][?query][#fragment]` into borrowed parts and
//! checks just enough to refuse what is not a URL; it does not normalise (no IDNA, no `..`
//! resolution). That is all the stage needs, at a fraction of a full WHATWG parser's size.

use std::borrow::Cow;

/// The parts of an absolute URL, borrowed from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Url<'a> {
    pub scheme: &'a str,
    /// The host as written: a name, an IPv4 address or a bracketed IPv6 address.
    pub host: &'a str,
    pub port: Option<u16>,
    /// The path, `/` when the URL has none.
    pub path: &'a str,
    /// The query without its `?`.
    pub query: Option<&'a str>,
    /// The fragment without its `#`.
    pub fragment: Option<&'a str>,
}

/// Parses an absolute URL with an authority (`scheme://host...`); `None` if `text` is not one.
pub fn parse_url(text: &str) -> Option<Url<'_>> {
    if text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return None;
    }
    let (scheme, rest) = text.split_once("://")?;
    let mut scheme_chars = scheme.chars();
    if !scheme_chars.next()?.is_ascii_alphabetic()
        || !scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }

    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(authority_end);
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_userinfo, hp)| hp);
    let (host, port) = split_port(host_port)?;
    if !valid_host(host) {
        return None;
    }

    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    Some(Url {
        scheme,
        host,
        port,
        path: if path.is_empty() { "/" } else { path },
        query,
        fragment,
    })
}

/// Splits `host[:port]`; an empty port (`host:`) is no port.
fn split_port(host_port: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if host_port.starts_with('[') {
        let close = host_port.find(']')?;
        let (host, after) = host_port.split_at(close + 1);
        match after {
            "" => (host, ""),
            _ => (host, after.strip_prefix(':')?),
        }
    } else {
        host_port.rsplit_once(':').unwrap_or((host_port, ""))
    };
    let port = match port {
        "" => None,
        p if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        _ => return None,
    };
    Some((host, port))
}

fn valid_host(host: &str) -> bool {
    if let Some(ip6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !ip6.is_empty()
            && ip6
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'%'));
    }
    // RFC 3986 reg-name: unreserved, percent-encoded and sub-delims (and UTF-8, as browsers send).
    !host.is_empty()
        && host
            .bytes()
            .all(|b| !b.is_ascii() || b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b))
}

impl<'a> Url<'a> {
    /// The first segment of the path: `products` for `/products/42`, empty for `/`.
    pub fn section(&self) -> &'a str {
        let path = self.path.strip_prefix('/').unwrap_or(self.path);
        path.split('/').next().unwrap_or_default()
    }

    /// The query's `name=value` pairs in order, percent-decoded (`+` is a space).
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + use<'a> {
        self.query
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
    }
}

/// Percent-decodes form-encoded text; malformed escapes stay as written, invalid UTF-8 is replaced.
fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: Option<&u8>) -> Option<u8> {
    (*b? as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_full_url() {
        let u = parse_url("https://user:pw@Shop.Example:8443/a/b?x=1&ref=mail#frag").unwrap();
        assert_eq!(
            u,
            Url {
                scheme: "https",
                host: "Shop.Example",
                port: Some(8443),
                path: "/a/b",
                query: Some("x=1&ref=mail"),
                fragment: Some("frag"),
            }
        );
        assert_eq!(u.section(), "a");
    }

    #[test]
    fn fills_in_an_empty_path() {
        let u = parse_url("http://example.com?q").unwrap();
        assert_eq!(
            (u.host, u.path, u.query, u.section()),
            ("example.com", "/", Some("q"), "")
        );
        let u = parse_url("http://[::1]:80").unwrap();
        assert_eq!((u.host, u.port, u.path), ("[::1]", Some(80), "/"));
        assert_eq!(parse_url("http://h:/p").unwrap().port, None);
    }

    #[test]
    fn refuses_non_urls() {
        for bad in [
            "",
            "example.com/path",
            "/relative",
            "http://",
            "http:///path",
            "1http://h",
            "http://h:99999",
            "http://h:8o",
            "http://ho st/",
            "http://h/\n",
            "http://[::1/",
            "http://[::1]x/",
            "http://h<x>/",
        ] {
            assert_eq!(parse_url(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decodes_query_pairs() {
        let u = parse_url("http://h/?a=1&&b&c=x%20y+z&d=%zz&e=%e2%82%ac&f=%4").unwrap();
        let pairs: Vec<_> = u.query_pairs().collect();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("a", "1"),
                ("b", ""),
                ("c", "x y z"),
                ("d", "%zz"),
                ("e", "€"),
                ("f", "%4")
            ]
        );
    }
}
