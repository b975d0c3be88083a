"""The one place that turns bytes into records and back: msgspec structs, validated on decode.

Every record is a frozen `msgspec.Struct` whose fields, types and constraints are its schema;
decoding checks them in C. A failure becomes a `SchemaError` whose message names the record and
the field in the same words as the dead-letter reasons users read ("behaviour event: field 'ts'
must be an integer, got str").
"""
from __future__ import annotations

import base64

import re
import typing
from typing import Any, ClassVar

import msgspec
import orjson

# Ids and short texts: bounded, so one record cannot blow up a key's state.
Text = typing.Annotated[str, msgspec.Meta(max_length=256)]
NonEmptyText = typing.Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# Numeric ids are common in exported logs: accepted, and read as their decimal string.
Id = typing.Union[NonEmptyText, int]
OptionalId = typing.Union[Text, int, None]  # empty means absent
EpochMs = typing.Annotated[int, msgspec.Meta(ge=-(2 ** 63), le=2 ** 63 - 1)]


class SchemaError(ValueError):
    """A record that does not match its schema; the message says which field and why."""


class Record(msgspec.Struct, frozen=True):
    """A versioned record. `v` is the version it was written with; decoding a newer one fails loudly."""

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "record"  # how messages name it

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, raw: bytes | str):
        return decode(raw, cls, cls.WHAT)

    @classmethod
    def from_dict(cls, obj: dict):
        return convert(obj, cls, cls.WHAT)

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)

    def _check_version(self) -> None:
        version = self.v
        if type(version) is not int or not 1 <= version <= self.VERSION:
            raise ValueError(f"{self.WHAT}: unsupported schema version {version!r} "
                             f"(this release reads 1..{self.VERSION})")


class TextRecord(Record, frozen=True):
    """A record carried in a Flink string field (keyed state, window results): encodes to str."""

    def encode(self) -> str:
        return _ENCODER.encode(self).decode()


_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[Any, msgspec.json.Decoder] = {}


def encode(record) -> bytes:
    return _ENCODER.encode(record)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def dumps_str(obj: Any) -> str:
    return orjson.dumps(obj).decode()


# How the Kafka sources pass on a record with no value (a tombstone on a compacted topic), which the stock
# string schema fails on: this prefix, the record's timestamp, NUL, its key; and a value that is not UTF-8,
# which the stock schema would mangle into replacement characters: the other prefix, the value in base64
# (jobs/java/notify_engine/kafka/TextOrMarkerDeserializationSchema.java). NUL opens no JSON text.
TOMBSTONE = b"\x00tombstone\x00"
UNDECODABLE = "\x00undecodable\x00"


def source_bytes(text: str) -> bytes:
    """The record's value as the Kafka source read it: the exact bytes of a value that was not UTF-8 (the
    schema then rejects them, as it rejects them read straight from Kafka), else the text's UTF-8."""
    if text.startswith(UNDECODABLE):
        try:
            return base64.b64decode(text[len(UNDECODABLE):], validate=True)
        except ValueError:  # only begins like a marker: left to the schema, which rejects it
            pass
    return text.encode("utf-8", "surrogateescape")


def tombstone(raw: bytes) -> tuple[int, str] | None:
    """(The record's timestamp, its key) if `raw` stands for a tombstone, else None (bytes that only
    begin like one are left to the schema, which rejects them)."""
    if not raw.startswith(TOMBSTONE):
        return None
    ts, _, key = raw[len(TOMBSTONE):].partition(b"\x00")
    if not ts.lstrip(b"-").isdigit():
        return None
    return int(ts), key.decode("utf-8", "replace")


def loads_object(raw: bytes | str, what: str) -> dict:
    """A JSON object as a dict, for the few records read as free-form JSON (dead letters)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"malformed JSON in {what}: {exc}") from None
    if not isinstance(obj, dict):
        raise SchemaError(f"{what} must be a JSON object, got {_python_name(obj)}")
    return obj


def decode(raw: bytes | str, kind, what: str):
    """`raw` as `kind` (a record class or a tagged union of them); a SchemaError says what is wrong."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind)
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        raise SchemaError(explain(str(exc), obj, kind, what)) from None
    except msgspec.DecodeError as exc:
        raise SchemaError(f"malformed JSON in {what}: {exc}") from None
    except RecursionError:  # msgspec's own guard, at the interpreter's recursion limit: a poison pill otherwise
        raise SchemaError(f"malformed JSON in {what}: nested too deeply") from None


def convert(obj: Any, kind, what: str):
    """Built-in values (a dict read from a CSV row, say) as `kind`, validated as `decode` does."""
    try:
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as exc:
        raise SchemaError(explain(str(exc), obj, kind, what)) from None


# ------------------------------------------------------------------------------------- messages

_AT = re.compile(r"^(?P<message>.*?)(?: - at (?:`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean",
               "array": "a list", "object": "an object", "null": "null"}
_PYTHON_NAMES = {"str": "str", "int": "int", "float": "float", "bool": "bool", "array": "list", "object": "dict",
                 "null": "NoneType"}


def _python_name(value) -> str:
    return type(value).__name__


def _field(path: str) -> str:
    """`.e.ts` -> 'e.ts'; `.item_ids[3]` -> 'item_ids'."""
    return re.sub(r"\[[^\]]*\]", "", path).lstrip(".")


def _value_at(obj, path: str):
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        name, index = part
        try:
            obj = obj[name] if name else obj[int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def _tagged(kind) -> dict[str, type]:
    """Tag value -> record class of a tagged union (or of one tagged class)."""
    members = typing.get_args(kind) or (kind,)
    out = {}
    for member in members:
        info = getattr(member, "__struct_config__", None)
        if info is not None and info.tag is not None:
            out[info.tag] = member
    return out


def _allowed(kind, name: str) -> list[str]:
    """The values a Literal field allows, also inside a tuple of them or as the keys of a dict."""
    hint = typing.get_type_hints(kind, include_extras=True).get(name) if isinstance(kind, type) else None
    values, pending = set(), [hint] if hint is not None else []
    while pending:
        args = typing.get_args(pending.pop())
        values.update(arg for arg in args if isinstance(arg, str))
        pending.extend(arg for arg in args if not isinstance(arg, (str, int, float, msgspec.Meta)))
    return sorted(values)


def explain(text: str, obj: Any, kind, what: str) -> str:
    """A msgspec validation message in the house words; `obj` is the rejected value, parsed. Never fails:
    a message it cannot put better is given as msgspec wrote it."""
    try:
        return _explain(text, obj, kind, what)
    except Exception:  # the reason for a rejection must not become a crash of its own
        return f"{what}: {text}"


def _explain(text: str, obj: Any, kind, what: str) -> str:
    record, tags = kind, _tagged(kind)
    if len(tags) > 1 and isinstance(obj, dict):  # a union: which of its records was this meant to be?
        tag_field = next(iter(tags.values())).__struct_config__.tag_field
        tag = obj.get(tag_field)
        record = tags.get(tag) if isinstance(tag, str) else None
        if record is None:
            return f"{what}: unknown or missing '{tag_field}' {obj.get(tag_field)!r} (expected one of {sorted(tags)})"
    name = getattr(record, "WHAT", what) if isinstance(record, type) else what
    match = _AT.match(text)
    message, path = match["message"], match["path"] or ""
    field = _field(path)
    if not path and message.startswith("Expected `object`, got "):
        return f"{name} must be a JSON object, got {_PYTHON_NAMES.get(message.rsplit('`', 2)[1], 'value')}"
    if path == ".v":
        supported = getattr(record, "VERSION", 1)
        return f"{name}: unsupported schema version {_value_at(obj, path)!r} (this release reads 1..{supported})"
    if message.startswith(name):  # raised by the record's own checks, already in these words
        return message
    # State a release wrote itself can only be wrong through damage; input can be wrong in many ways.
    name = f"{name} is damaged" if getattr(record, "DAMAGE_WORDS", False) else name
    if missing := re.match(r"Object missing required field `(\w+)`", message):
        where = f"{field}." if field else ""
        return f"{name}: missing required field '{where}{missing[1]}'"
    expected = re.match(r"Expected `([^`]+)`(, got `(\w+)`)?", message)
    wanted = [t.strip() for t in expected[1].split("|") if t.strip() != "null"] if expected else []
    if "[" in path and "str" in [t.split(" ")[0] for t in wanted]:
        return f"{name}: field '{field}' must hold non-empty strings"
    if expected and expected[3]:
        kind = "str" if "str" in wanted else wanted[0]  # an id given as a number is still an id
        got = _PYTHON_NAMES.get(expected[3], expected[3])
        return f"{name}: field '{field}' must be {_TYPE_WORDS.get(kind, kind)}, got {got}"
    if longest := re.match(r"Expected `str` of length <= (\d+)", message):
        return f"{name}: field '{field}' is longer than {longest[1]} characters"
    if re.match(r"Expected `str` of length >= 1", message):
        return f"{name}: field '{field}' must not be empty"
    if most := re.match(r"Expected `(?:array|object)` of length <= (\d+)", message):
        return f"{name}: field '{field}' has more than {most[1]} entries"
    if least := re.match(r"Expected `(?:array|object)` of length >= (\d+)", message):
        return f"{name}: field '{field}' must have at least {least[1]} entries"
    if bound := re.match(r"Expected `\w+` (>=|<=|>|<) (\S+)", message):
        return f"{name}: field '{field}' must be {bound[1]} {bound[2]}, got {_value_at(obj, path)!r}"
    if re.match(r"Expected `str` matching regex", message):  # the record says what the form is
        form = getattr(record, "FORMATS", {}).get(field, "in the expected form")
        return f"{name}: field '{field}' must be {form}, got {_value_at(obj, path)!r}"
    if enum := re.match(r"Invalid enum value (.+)", message):
        return (f"{name}: field '{field}' has unknown value {enum[1]} "
                f"(expected one of {_allowed(record, field)})")
    if message.startswith("Number out of range"):
        return f"{name}: field '{field}' is out of range"
    if field:
        return f"{name}: field '{field}': {message}"
    return f"{name}: {message}"
