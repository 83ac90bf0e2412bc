#!/usr/bin/env python3
"""Generate crates/api/src/wire.rs from the official SCF 2018-04-16 API definition.

Usage:
    python3 tools/gen_wire.py PATH_TO_API_JSON > crates/api/src/wire.rs

The input is the API definition JSON (top-level keys `actions` and `objects`).
Every object becomes a serde struct whose members are all optional, renamed to
the exact wire name, and rejected when unknown. The output is deterministic and
already laid out the way rustfmt (default settings) lays it out, so
`cargo fmt --check` passes on a freshly generated file.

Standard library only.
"""

from __future__ import annotations

import json
import re
import sys

# rustfmt's default max_width and attr_fn_like_width.
MAX_WIDTH = 100
ATTR_FN_LIKE_WIDTH = 70
INDENT = "    "

PRIMITIVES = {
    "string": "String",
    "datetime": "String",
    "int64": "i64",
    "uint64": "u64",
    "float": "f64",
    "bool": "bool",
}

# Strict and reserved keywords (2024 edition) that cannot be plain identifiers.
RUST_KEYWORDS = {
    "as", "async", "await", "break", "const", "continue", "crate", "dyn",
    "else", "enum", "extern", "false", "fn", "for", "gen", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "try", "typeof", "unsized",
    "virtual", "yield",
}
# Keywords that are not allowed even as raw identifiers.
NON_RAW_KEYWORDS = {"crate", "self", "Self", "super", "_"}

# Names from the std prelude that a struct may shadow; glob importers beware.
PRELUDE_TYPES = {"Option", "Result", "String", "Vec", "Box", "Default"}


def snake_case(name: str) -> str:
    """PascalCase / camelCase wire name -> snake_case, treating acronyms as words.

    A word boundary is placed
      * before an upper-case letter that follows a lower-case letter
        (`VpcConfig` -> `vpc_config`);
      * before an upper-case letter that follows an upper-case letter or a
        digit and is itself followed by a lower-case letter, i.e. where a new
        word starts after an acronym or a number (`CLSTopicId` ->
        `cls_topic_id`, `WSParams` -> `ws_params`, `L5Enable` -> `l5_enable`,
        `K8SLabel` -> `k8s_label`).
    Digits stick to the word before them (`CodeSha256` -> `code_sha256`).
    """
    out: list[str] = []
    n = len(name)
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0:
            prev = name[i - 1]
            nxt = name[i + 1] if i + 1 < n else ""
            if prev.islower():
                out.append("_")
            elif (prev.isupper() or prev.isdigit()) and nxt.islower():
                out.append("_")
        out.append(ch.lower())
    snake = "".join(out)
    snake = re.sub(r"[^a-z0-9_]", "_", snake)
    if snake and snake[0].isdigit():
        snake = "_" + snake
    return snake


def rust_ident(snake: str) -> str:
    if snake in NON_RAW_KEYWORDS:
        return snake + "_"
    if snake in RUST_KEYWORDS:
        return "r#" + snake
    return snake


def field_idents(members: list[dict]) -> list[str]:
    """Rust field names for one struct, unique within it.

    Two wire names that convert to the same snake_case name (e.g. `SubnetId`
    and `SubnetID`, `OrderBy` and `Orderby`) keep the plain name for the first
    member in definition order; later ones get a numeric suffix.
    """
    used: set[str] = set()
    idents = []
    for m in members:
        base = rust_ident(snake_case(m["name"]))
        ident = base
        k = 2
        while ident in used:
            ident = f"{base}_{k}"
            k += 1
        used.add(ident)
        idents.append(ident)
    return idents


MD_LINK = re.compile(r"\[([^\[\]]*)\]\((https?://[^()\s]*)\)")
BARE_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#@!$&'*+,;=%]+")


def escape_markdown(text: str) -> str:
    """Escape what rustdoc would misread in plain prose.

    Brackets would be taken for intra-doc links and angle brackets for HTML;
    bare URLs draw rustdoc::bare_urls. Well-formed `[text](url)` links are
    kept as they are.
    """

    def plain(chunk: str) -> str:
        parts = []
        last = 0
        for m in BARE_URL.finditer(chunk):
            parts.append(re.sub(r"([\[\]<>])", r"\\\1", chunk[last : m.start()]))
            parts.append(f"<{m.group(0)}>")
            last = m.end()
        parts.append(re.sub(r"([\[\]<>])", r"\\\1", chunk[last:]))
        return "".join(parts)

    out = []
    last = 0
    for m in MD_LINK.finditer(text):
        out.append(plain(text[last : m.start()]))
        out.append(f"[{plain(m.group(1))}]({m.group(2)})")
        last = m.end()
    out.append(plain(text[last:]))
    return "".join(out)


def doc_line(text: str | None) -> str:
    """First non-empty line of a document string, safe for a `///` comment."""
    for line in (text or "").splitlines():
        # Tabs trip clippy::tabs_in_doc_comments; collapse runs of whitespace
        # (including the odd no-break space) so the line reads cleanly.
        line = re.sub(r"[\s\u00a0\u3000]+", " ", line).strip()
        if line:
            return escape_markdown(line)
    return ""


def referenced(member: dict, objects: dict) -> str | None:
    """Name of the object a member points at (directly or as list element)."""
    if member["type"] in ("object", "list") and member["member"] not in PRIMITIVES:
        target = member["member"]
        if target not in objects:
            raise SystemExit(f"unknown object type {target!r} for member {member['name']!r}")
        return target
    return None


def boxed_edges(objects: dict) -> set[tuple[str, str]]:
    """(from, to) object edges that must be boxed to keep types finite.

    Only direct `object` members give a struct infinite size; a `list` member
    is a Vec, which already adds the indirection. Every direct edge inside a
    strongly connected component of the direct-edge graph (self-loops
    included) is boxed.
    """
    graph: dict[str, list[str]] = {}
    for name in sorted(objects):
        graph[name] = sorted(
            {
                t
                for m in objects[name]["members"]
                if m["type"] == "object" and (t := referenced(m, objects))
            }
        )

    # Tarjan's SCC, iterative so deep definitions cannot hit the recursion limit.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    component: dict[str, int] = {}
    counter = 0
    comp_id = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child_i = work.pop()
            if child_i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = graph[node]
            if child_i < len(children):
                work.append((node, child_i + 1))
                child = children[child_i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component[w] = comp_id
                    if w == node:
                        break
                comp_id += 1
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])

    return {
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if component[a] == component[b]
    }


def rust_type(owner: str, member: dict, objects: dict, boxed: set) -> str:
    kind = member["type"]
    detail = member["member"]
    if kind in ("string", "int", "float", "bool"):
        if detail not in PRIMITIVES:
            raise SystemExit(f"{owner}.{member['name']}: unknown primitive {detail!r}")
        return PRIMITIVES[detail]
    if kind == "list":
        inner = PRIMITIVES.get(detail) or referenced(member, objects)
        return f"Vec<{inner}>"
    if kind == "object":
        target = referenced(member, objects)
        if target is None:
            # An `object` whose member names a primitive; treat it as such.
            return PRIMITIVES[detail]
        if (owner, target) in boxed:
            return f"Box<{target}>"
        return target
    raise SystemExit(f"{owner}.{member['name']}: unknown member type {kind!r}")


def serde_attr(wire_name: str) -> list[str]:
    """The per-field serde attribute, split the way rustfmt splits it."""
    args = [f'rename = "{wire_name}"', "default", 'skip_serializing_if = "Option::is_none"']
    inner = ", ".join(args)
    one_line = f"{INDENT}#[serde({inner})]"
    # rustfmt keeps a function-like attribute on one line only while its
    # arguments fit in attr_fn_like_width (70% of max_width) and the whole
    # line fits in max_width.
    if len(inner) <= ATTR_FN_LIKE_WIDTH and len(one_line) <= MAX_WIDTH:
        return [one_line]
    lines = [f"{INDENT}#[serde("]
    lines += [f"{INDENT}{INDENT}{a}," for a in args[:-1]]
    lines.append(f"{INDENT}{INDENT}{args[-1]}")
    lines.append(f"{INDENT})]")
    return lines


def field_decl(ident: str, ty: str) -> list[str]:
    """`pub ident: Option<ty>,` laid out as rustfmt would."""
    one_line = f"{INDENT}pub {ident}: Option<{ty}>,"
    if len(one_line) <= MAX_WIDTH:
        return [one_line]
    # rustfmt moves the type to its own, further indented line.
    type_line = f"{INDENT}{INDENT}Option<{ty}>,"
    if len(type_line) > MAX_WIDTH:
        raise SystemExit(f"field {ident}: type too long to lay out like rustfmt")
    return [f"{INDENT}pub {ident}:", type_line]


def generate(api: dict) -> str:
    objects: dict = api["objects"]
    actions: dict = api["actions"]
    boxed = boxed_edges(objects)

    out: list[str] = []
    emit = out.append
    emit("// This file is generated by tools/gen_wire.py from the official SCF 2018-04-16")
    emit("// API definition. Do not edit it by hand: change the generator and regenerate with")
    emit("//     python3 tools/gen_wire.py scf-2018-04-16.api.zh.json > crates/api/src/wire.rs")
    emit("")
    emit("//! Wire models for every object of the SCF 2018-04-16 API definition.")
    emit("//!")
    emit("//! Each struct carries the object's members with their exact wire names. All")
    emit("//! fields are optional (absent members are `None` and are not serialized) and")
    emit("//! unknown members are rejected. Requests are `<Action>Request`, replies are")
    emit("//! `<Action>Response` (the object inside the `Response` envelope, `RequestId`")
    emit("//! included).")
    emit("")
    emit("use serde::{Deserialize, Serialize};")
    emit("")
    emit("/// Every action name in the API definition, sorted.")
    emit("pub const ACTIONS: &[&str] = &[")
    for action in sorted(actions):
        emit(f'{INDENT}"{action}",')
    emit("];")

    for name in sorted(objects):
        obj = objects[name]
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
            raise SystemExit(f"object name {name!r} is not a Rust type name")
        emit("")
        doc = doc_line(obj.get("document"))
        if doc:
            emit(f"/// {doc}")
        if name in PRELUDE_TYPES:
            if doc:
                emit("///")
            emit(f"/// Note: this type shadows the prelude `{name}` when glob-imported.")
        emit("#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]")
        emit("#[serde(deny_unknown_fields)]")
        members = obj["members"]
        if not members:
            emit(f"pub struct {name} {{}}")
            continue
        emit(f"pub struct {name} {{")
        for member, ident in zip(members, field_idents(members)):
            mdoc = doc_line(member.get("document"))
            if mdoc:
                emit(f"{INDENT}/// {mdoc}")
            out.extend(serde_attr(member["name"]))
            out.extend(field_decl(ident, rust_type(name, member, objects, boxed)))
        emit("}")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} PATH_TO_API_JSON > crates/api/src/wire.rs", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        api = json.load(f)
    sys.stdout.write(generate(api))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
