"""The error a stage raises for a record (or a configuration) it refuses."""


class StageError(Exception):
    """Why a stage refused a record, or (from `__init__`) its configuration.

    Raise it from `process` and that record goes to the dead-letter topic with `code` and
    `message` in its headers; the rest of the batch carries on. `code` is short and
    machine-readable (`bad-json`, `missing-field`); `message` is for humans.
    """

    def __init__(self, code, message=""):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __eq__(self, other):
        return isinstance(other, StageError) and (self.code, self.message) == (
            other.code, other.message)

    def __hash__(self):
        return hash((self.code, self.message))
