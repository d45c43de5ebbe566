"""Native tests of the stage (plain Python, no wasm): `python3 -m unittest` in this directory,
with `sdk/python` on `PYTHONPATH`."""

import json
import unittest

from weir import Record, StageError, testing

import app
from url import parse_url

CLICK = (
    '{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000,'
    '"ip":"81.2.69.160","ua":"Mozilla/5.0"}'
)


def enrich(value):
    return json.loads(app.enrich_value(value.encode(), "url"))


def code(value):
    with self_raises() as cm:
        app.enrich_value(value.encode(), "url")
    return cm.exception.code


class self_raises:
    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        assert typ is StageError, f"expected a StageError, got {typ}"
        self.exception = exc
        return True


class JsonEnrichTest(unittest.TestCase):
    def test_derives_fields_from_a_click(self):
        v = enrich(CLICK)
        self.assertEqual(
            (v["domain"], v["path"], v["section"], v["ref"], v["hour"], v["user"]),
            ("shop.example", "/products/42", "products", "mail", 22, "u17"),
        )
        self.assertNotIn("utm_source", v)

    def test_writes_what_the_rust_stage_writes(self):
        out = app.enrich_value(CLICK.encode(), "url")
        self.assertEqual(
            out,
            b'{"domain":"shop.example","hour":22,"ip":"81.2.69.160","path":"/products/42",'
            b'"ref":"mail","section":"products","ts":1700000000000,"ua":"Mozilla/5.0",'
            b'"url":"https://shop.example/products/42?ref=mail","user":"u17"}',
        )
        out = app.enrich_value(b'{"url":"http://h/","x":[1.0,-0,1e20,0.1,1e-7,18446744073709551616]}',
                               "url")
        self.assertIn(b'"x":[1.0,-0.0,1e+20,0.1,1e-7,1.8446744073709552e+19]', out)

    def test_copies_campaign_parameters(self):
        v = enrich(
            '{"url":"http://A.Example:8080/?utm_source=news%20letter&utm_medium=email&x=1#top"}'
        )
        self.assertEqual((v["domain"], v["path"], v["section"]), ("a.example", "/", ""))
        self.assertEqual((v["utm_source"], v["utm_medium"]), ("news letter", "email"))
        self.assertFalse({"x", "hour", "ref"} & v.keys())

    def test_refuses_bad_inputs(self):
        self.assertEqual(code("not json"), "bad-json")
        self.assertEqual(code("[1,2]"), "bad-json")
        self.assertEqual(code(""), "bad-json")
        self.assertEqual(code("NaN"), "bad-json")
        self.assertEqual(code('{"url":1e400}'), "bad-json")
        self.assertEqual(code('{"user":"u1"}'), "missing-field")
        self.assertEqual(code('{"url":42}'), "missing-field")
        self.assertEqual(code('{"url":"/products/42"}'), "bad-url")
        self.assertEqual(code('{"url":"https://"}'), "bad-url")

    def test_runs_as_a_stage_with_config(self):
        click = Record(b'{"link":"https://shop.example/cart","ts":0}', key=b"u1",
                       headers=[("trace", b"t")])
        out = testing.run(app.JsonEnrich, {"field": "link"}, [click, Record(b"{}")])
        enriched = out[0][0]
        self.assertEqual((enriched.key, enriched.header("trace")), (b"u1", b"t"))
        v = json.loads(enriched.value)
        self.assertEqual((v["section"], v["hour"]), ("cart", 0))
        self.assertEqual(out[1].code, "missing-field")

    def test_defaults_and_refuses_config(self):
        testing.Harness(app.JsonEnrich, "")
        testing.Harness(app.JsonEnrich, "{}")
        with self.assertRaises(StageError) as cm:
            testing.Harness(app.JsonEnrich, {"feild": "url"})
        self.assertEqual(cm.exception.code, "bad-config")


class UrlTest(unittest.TestCase):
    def test_splits_a_full_url(self):
        u = parse_url("https://user:pw@Shop.Example:8443/a/b?x=1&ref=mail#frag")
        self.assertEqual(
            (u.scheme, u.host, u.port, u.path, u.query, u.fragment, u.section()),
            ("https", "Shop.Example", 8443, "/a/b", "x=1&ref=mail", "frag", "a"),
        )
        self.assertEqual(parse_url("http://[::1]:80").host, "[::1]")
        self.assertEqual(parse_url("http://h:00080/").port, 80)

    def test_refuses_non_urls(self):
        for bad in ["", "example.com/path", "/relative", "http://", "http:///path", "1http://h",
                    "http://h:99999", "http://h:8o", "http://ho st/", "http://h/\n",
                    "http://[::1/", "http://[::1]x/", "http://h<x>/"]:
            self.assertIsNone(parse_url(bad), bad)

    def test_decodes_query_pairs(self):
        u = parse_url("http://h/?a=1&&b&c=x%20y+z&d=%zz&e=%e2%82%ac&f=%4")
        self.assertEqual(
            list(u.query_pairs()),
            [("a", "1"), ("b", ""), ("c", "x y z"), ("d", "%zz"), ("e", "€"), ("f", "%4")],
        )


if __name__ == "__main__":
    unittest.main()
