"""The redaction policy file (YAML): ``load_policy(path) -> Policy``, or ``PolicyError`` naming
the file, the line and what is wrong. Unknown keys, bad regular expressions, bad JSON paths
and bad actions are all rejected here, at start-up, never on the capture path.

    default_headers: true        # mask Authorization, Cookie, ... (false switches them off)
    headers: [X-Session, {name: X-Debug, action: drop}]
    allow_headers: [Host, Accept, Content-Type]    # allow-list mode: mask every other header
    json: [{path: $.user.email}, {path: "$.items[*].card", action: drop, part: request}]
    query: [token, {name: sig, action: drop}]
    regex: [{name: email, pattern: '[\\w.+-]+@[\\w-]+\\.[\\w.]+', in: [body, target]}]
    drop_request: [{path: ^/admin}, {method: DELETE, path: ^/users/}]
    on_unparsed_body: keep       # or drop: store no body when a JSON rule could not be applied

See docs/capture.md, "Redaction".
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import yaml

from sidecar.common.cli_args import boolean
from sidecar.contract.jsonpath import parse_path

__all__ = ["DEFAULT_HEADERS", "DropRule", "HeaderRule", "JsonRule", "Policy", "PolicyError", "RegexRule",
           "load_policy", "parse_json_path", "parse_policy"]

# Masked unless the policy says ``default_headers: false``.
DEFAULT_HEADERS = ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key")
ACTIONS = ("mask", "drop")
PARTS = {"request": frozenset({"request"}), "response": frozenset({"response"}),
         "both": frozenset({"request", "response"})}
PLACES = ("target", "headers", "body")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is ``FILE:LINE: what is wrong``."""


class HeaderRule(NamedTuple):
    """What happens to a header's value, and which rule said so (the metric's ``rule_kind``)."""

    action: str  # mask | drop
    kind: str  # default_header | header | allow_list


@dataclass(frozen=True, slots=True)
class JsonRule:
    text: str  # as written, for logs
    steps: tuple  # (("key", "a"), ("idx", "*"), ("any", "b"))
    action: str
    parts: frozenset[str]


@dataclass(frozen=True, slots=True)
class RegexRule:
    name: str
    text: re.Pattern  # over the target and header values
    raw: re.Pattern  # the same pattern over bodies (bytes)
    action: str
    places: frozenset[str]


@dataclass(frozen=True, slots=True)
class DropRule:
    path: re.Pattern | None
    methods: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy; ``Policy()`` is the built-in default (mask the secret headers)."""

    default_headers: bool = True
    headers: dict[str, str] = field(default_factory=dict)  # lower-case name -> action
    allow_headers: frozenset[str] | None = None  # lower-case names; None: no allow list
    json: tuple[JsonRule, ...] = ()
    query: dict[str, str] = field(default_factory=dict)  # parameter name -> action
    regex: tuple[RegexRule, ...] = ()
    drop_request: tuple[DropRule, ...] = ()
    on_unparsed_body: str = "keep"
    source: str = "built-in defaults"

    def header_actions(self) -> dict[str, HeaderRule]:
        """Lower-case header name -> its rule, defaults first, the policy's on top."""
        out = {h: HeaderRule(action="mask", kind="default_header") for h in DEFAULT_HEADERS} \
            if self.default_headers else {}
        out.update({h: HeaderRule(action=a, kind="header") for h, a in self.headers.items()})
        return out


def parse_json_path(text: str) -> tuple:
    """``$.a[*]..b`` -> (("key","a"),("idx","*"),("any","b")); ValueError if not a path (a rule
    must name a field: ``$`` alone is refused)."""
    if text == "$":
        raise ValueError(f"not a JSON path: {text!r} (start with $ and name a field, e.g. $.user.email)")
    return parse_path(text, example="$.user.email")


def load_policy(path: str) -> Policy:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the policy: {exc}") from None
    return parse_policy(text, path)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{mark.line + 1}:" if mark else ""
        raise PolicyError(f"{source}:{line} not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    return _Reader(source).policy(root)


class _Reader:
    """Walks the YAML node tree (which keeps line numbers) and builds a Policy."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node, what: str):
        raise PolicyError(f"{self.source}:{node.start_mark.line + 1}: {what}")

    def policy(self, root) -> Policy:
        if root is None or (isinstance(root, yaml.ScalarNode) and root.value == ""):
            return Policy(source=self.source)
        top = self.mapping(root, "the policy", ("version", "default_headers", "headers",
                                                "allow_headers", "json", "query", "regex",
                                                "drop_request", "on_unparsed_body"))
        kw: dict = {"source": self.source}
        if "version" in top and self.scalar(top["version"], "version") != "1":
            self.fail(top["version"], "version: only version 1 exists")
        if "default_headers" in top:
            kw["default_headers"] = self.boolean(top["default_headers"], "default_headers")
        if "headers" in top:
            kw["headers"] = dict(self.named(n, "headers") for n in self.seq(top["headers"], "headers"))
        if "allow_headers" in top:
            kw["allow_headers"] = frozenset(self.header_name(n, "allow_headers").lower()
                                            for n in self.seq(top["allow_headers"], "allow_headers"))
        if "json" in top:
            kw["json"] = tuple(self.json_rule(n) for n in self.seq(top["json"], "json"))
        if "query" in top:
            kw["query"] = dict(self.named(n, "query", header=False)
                               for n in self.seq(top["query"], "query"))
        if "regex" in top:
            kw["regex"] = tuple(self.regex_rule(n, i) for i, n in enumerate(self.seq(top["regex"], "regex")))
        if "drop_request" in top:
            node = top["drop_request"]
            items = [node] if isinstance(node, yaml.MappingNode) else self.seq(node, "drop_request")
            kw["drop_request"] = tuple(self.drop_rule(n) for n in items)
        if "on_unparsed_body" in top:
            kw["on_unparsed_body"] = self.choice(top["on_unparsed_body"], "on_unparsed_body",
                                                 ("keep", "drop"))
        return Policy(**kw)

    # -- rules -------------------------------------------------------------------------
    def named(self, node, what: str, header: bool = True) -> tuple[str, str]:
        """``NAME`` or ``{name: NAME, action: mask|drop}``."""
        action = "mask"
        if isinstance(node, yaml.MappingNode):
            m = self.mapping(node, f"a {what} rule", ("name", "action"), required=("name",))
            action = self.choice(m["action"], "action", ACTIONS) if "action" in m else action
            node = m["name"]
        if header:
            return self.header_name(node, what).lower(), action
        name = self.scalar(node, what)
        if not name:
            self.fail(node, f"{what}: empty parameter name")
        return name, action

    def header_name(self, node, what: str) -> str:
        name = self.scalar(node, what)
        if not _TOKEN.match(name):
            self.fail(node, f"{what}: not a header name: {name!r}")
        return name

    def json_rule(self, node) -> JsonRule:
        if isinstance(node, yaml.ScalarNode):  # short form: just the path
            m = {"path": node}
        else:
            m = self.mapping(node, "a json rule", ("path", "action", "part"), required=("path",))
        text = self.scalar(m["path"], "path")
        try:
            steps = parse_json_path(text)
        except ValueError as exc:
            self.fail(m["path"], f"json: {exc}")
        action = self.choice(m["action"], "action", ACTIONS) if "action" in m else "mask"
        part = self.choice(m["part"], "part", tuple(PARTS)) if "part" in m else "both"
        return JsonRule(text, steps, action, PARTS[part])

    def regex_rule(self, node, i: int) -> RegexRule:
        m = self.mapping(node, "a regex rule", ("name", "pattern", "action", "in"),
                         required=("pattern",))
        pattern = self.scalar(m["pattern"], "pattern")
        try:
            text = re.compile(pattern)
            raw = re.compile(pattern.encode("utf-8"))
        except re.error as exc:
            self.fail(m["pattern"], f"regex: bad pattern {pattern!r}: {exc}")
        if text.search(""):
            self.fail(m["pattern"], f"regex: pattern {pattern!r} matches the empty string")
        places = frozenset(PLACES)
        if "in" in m:
            places = frozenset(self.choice(n, "in", PLACES) for n in self.seq(m["in"], "in"))
        action = self.choice(m["action"], "action", ACTIONS) if "action" in m else "mask"
        name = self.scalar(m["name"], "name") if "name" in m else f"regex{i}"
        return RegexRule(name, text, raw, action, places)

    def drop_rule(self, node) -> DropRule:
        m = self.mapping(node, "a drop_request rule", ("path", "method"))
        if not m:
            self.fail(node, "drop_request: give a path (regular expression) and/or a method")
        path = None
        if "path" in m:
            text = self.scalar(m["path"], "path")
            try:
                path = re.compile(text)
            except re.error as exc:
                self.fail(m["path"], f"drop_request: bad path pattern {text!r}: {exc}")
        methods = None
        if "method" in m:
            methods = frozenset(x.strip().upper() for x in self.scalar(m["method"], "method").split(",")
                                if x.strip())
        return DropRule(path, methods)

    # -- YAML shapes -------------------------------------------------------------------
    def mapping(self, node, what: str, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping (key: value)")
        out = {}
        for k, v in node.value:
            name = self.scalar(k, "key")
            if name not in keys:
                self.fail(k, f"unknown key {name!r} in {what} (known: {', '.join(keys)})")
            if name in out:
                self.fail(k, f"key {name!r} given twice in {what}")
            out[name] = v
        for name in required:
            if name not in out:
                self.fail(node, f"{what} needs {name!r}")
        return out

    def seq(self, node, what: str) -> list:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list")
        return node.value

    def scalar(self, node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, f"{what} must be a single value, not a list or mapping")
        return node.value

    def boolean(self, node, what: str) -> bool:
        """``cli_args.boolean``, stricter on one point: an empty value (``default_headers:`` with
        nothing after it) is refused, not read as false, since a value left out by mistake must
        not switch masking off."""
        value = self.scalar(node, what)
        if not value.strip():
            self.fail(node, f"{what} must be true or false, got nothing")
        try:
            return boolean(value)
        except argparse.ArgumentTypeError:
            self.fail(node, f"{what} must be true or false, got {value!r}")

    def choice(self, node, what: str, options: tuple[str, ...]) -> str:
        value = self.scalar(node, what)
        if value not in options:
            self.fail(node, f"{what} must be one of {', '.join(options)}, got {value!r}")
        return value
