"""{{name}}: upper-cases each record's value and appends the configured `suffix`.

Config: `{ suffix = "!" }` (the default). Errors: `empty-value` (a null or empty value),
`bad-utf8` (a value that is not text).
"""

import weir
from weir import StageError


class Stage:
    def __init__(self, config):
        """`config` is the `config` table of the stage's entry in `pipeline.toml`, as a dict."""
        unknown = sorted(set(config) - {"suffix"})
        if unknown:
            raise StageError("bad-config", f"unknown config key `{unknown[0]}`")
        self.suffix = str(config.get("suffix", "!"))

    def process(self, record):
        if not record.value:
            raise StageError("empty-value", "there is nothing to shout")
        record.value = record.value_str().upper() + self.suffix
        return record


# componentize-py builds the component from this module's `Enrich`.
Enrich = weir.enricher(Stage)
