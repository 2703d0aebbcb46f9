"""Parser for Personalize filter expressions (docs/reference/personalize-api.md#filters) into a small syntax tree.

    expr  := part ("|" part)*
    part  := (INCLUDE|EXCLUDE) (ItemID|UserID) WHERE cond ((AND|OR) cond)* [IF ucond (AND ucond)*]
    cond  := Dataset.FIELD op value          op := IN | NOT IN | = | < | <= | > | >=
    value := "(" literal ("," literal)* ")" | "(" $PARAM ")" | $PARAM | literal | CurrentItem.FIELD

AND binds tighter than OR (the documentation does not say [U]; this is the usual reading).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from local_personalize.filters.errors import FilterError

MAX_DISTINCT_FIELDS = 5  # distinct fields per filter, docs/reference/personalize-api.md#quotas
OPERATORS = ("IN", "NOT IN", "=", "<", "<=", ">", ">=")
RANGE_OPERATORS = ("<", "<=", ">", ">=")
TARGET_DATASETS = {"ItemID": ("Items", "Interactions"), "UserID": ("Users",)}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
      | (?P<param>\$[A-Za-z0-9_]+)
      | (?P<op><=|>=|=|<|>)
      | (?P<punct>[(),|])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int


@dataclass(frozen=True)
class Value:
    """Right-hand side: literals, a $PARAM placeholder or a CurrentItem field."""

    literals: tuple[str | float, ...] = ()
    parameter: str | None = None  # name without "$"
    current_item_field: str | None = None


@dataclass(frozen=True)
class Condition:
    dataset: str  # Items | Interactions | Users | CurrentUser
    field: str
    operator: str
    value: Value


@dataclass
class Part:
    """One INCLUDE/EXCLUDE part: OR of AND-groups of conditions, optionally guarded by IF."""

    action: str  # INCLUDE | EXCLUDE
    target: str  # ItemID | UserID
    dataset: str
    any_of: list[list[Condition]] = field(default_factory=list)
    guards: list[Condition] = field(default_factory=list)


def tokenize(expression: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(expression):
        if expression[position:].strip() == "":
            break
        match = _TOKEN.match(expression, position)
        if match is None or match.end() == position:
            snippet = expression[position:].strip()[:20]
            raise FilterError(f"Invalid filter expression: unexpected text at position {position}: {snippet!r}")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, expression: str) -> None:
        self.tokens = tokenize(expression)
        self.index = 0

    def peek(self, offset: int = 0) -> Token | None:
        at = self.index + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def keyword(self, *words: str) -> str | None:
        """Consume and return the next token if it is one of `words` (case-insensitive)."""
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.upper() in {w.upper() for w in words}:
            self.index += 1
            return token.text.upper()
        return None

    def expect(self, what: str, *words: str) -> str:
        found = self.keyword(*words)
        if found is None:
            raise self.error(f"expected {what}")
        return found

    def error(self, message: str) -> FilterError:
        token = self.peek()
        where = f"at position {token.position} ({token.text!r})" if token else "at the end"
        return FilterError(f"Invalid filter expression: {message} {where}")

    def parse(self) -> list[Part]:
        parts = [self.part()]
        while (token := self.peek()) is not None and token.text == "|":
            self.index += 1
            parts.append(self.part())
        if self.peek() is not None:
            raise self.error("expected | or the end of the expression")
        return parts

    def part(self) -> Part:
        action = self.expect("INCLUDE or EXCLUDE", "INCLUDE", "EXCLUDE")
        target_token = self.peek()
        target = self.expect("ItemID or UserID", "ItemID", "UserID", "ActionID")
        if target == "ACTIONID":
            raise FilterError("Invalid filter expression: ActionID filters are not supported by local_personalize")
        target = "ItemID" if target == "ITEMID" else "UserID"
        self.expect("WHERE", "WHERE")
        first = self.condition()
        allowed = TARGET_DATASETS[target]
        if first.dataset not in allowed:
            raise FilterError(
                f"Invalid filter expression: {target} filters take conditions on {' or '.join(allowed)}, "
                f"not {first.dataset} (near position {target_token.position if target_token else 0})"
            )
        part = Part(action, target, first.dataset, [[first]])
        while (joiner := self.keyword("AND", "OR")) is not None:
            condition = self.condition()
            if condition.dataset != part.dataset:
                raise FilterError(
                    f"Invalid filter expression: conditions joined by AND/OR must all use {part.dataset}; "
                    f"use | to combine {part.dataset} and {condition.dataset} parts"
                )
            if joiner == "AND":
                part.any_of[-1].append(condition)
            else:
                part.any_of.append([condition])
        if self.keyword("IF") is not None:
            part.guards.append(self.condition(current_user=True))
            while self.keyword("AND") is not None:
                part.guards.append(self.condition(current_user=True))
        return part

    def condition(self, current_user: bool = False) -> Condition:
        token = self.peek()
        if token is None or token.kind != "word" or "." not in token.text:
            raise self.error("expected Dataset.FIELD")
        self.index += 1
        dataset, name = token.text.split(".", 1)
        dataset = _canonical_dataset(dataset)
        if current_user != (dataset == "CurrentUser"):
            raise FilterError(
                "Invalid filter expression: CurrentUser conditions go after IF, once, at the end of a part"
                if dataset == "CurrentUser" else
                f"Invalid filter expression: after IF only CurrentUser conditions are allowed, not {token.text}"
            )
        if dataset == "CurrentItem":
            raise FilterError("Invalid filter expression: CurrentItem may only appear on the right-hand side")
        operator = self.operator()
        value = self.value(operator)
        condition = Condition(dataset, name, operator, value)
        _check_condition(condition)
        return condition

    def operator(self) -> str:
        token = self.peek()
        if token is not None and token.kind == "op":
            self.index += 1
            return token.text
        if self.keyword("IN"):
            return "IN"
        if self.keyword("NOT"):
            self.expect("IN after NOT", "IN")
            return "NOT IN"
        raise self.error(f"expected an operator ({', '.join(OPERATORS)})")

    def value(self, operator: str) -> Value:
        token = self.peek()
        if token is None:
            raise self.error("expected a value")
        if token.text == "(":
            self.index += 1
            inner = self.peek()
            if inner is not None and inner.kind == "param":
                self.index += 1
                self.close()
                return Value(parameter=inner.text[1:])
            literals = [self.literal()]
            while (comma := self.peek()) is not None and comma.text == ",":
                self.index += 1
                literals.append(self.literal())
            self.close()
            return Value(literals=tuple(literals))
        if token.kind == "param":
            self.index += 1
            return Value(parameter=token.text[1:])
        if token.kind == "word" and token.text.split(".", 1)[0].lower() == "currentitem" and "." in token.text:
            self.index += 1
            return Value(current_item_field=token.text.split(".", 1)[1])
        return Value(literals=(self.literal(),))

    def literal(self) -> str | float:
        token = self.peek()
        if token is None or token.kind not in ("string", "number"):
            raise self.error("expected a double-quoted string or a number")
        self.index += 1
        if token.kind == "number":
            return float(token.text)
        return re.sub(r"\\(.)", r"\1", token.text[1:-1])

    def close(self) -> None:
        token = self.peek()
        if token is None or token.text != ")":
            raise self.error("expected )")
        self.index += 1


def _canonical_dataset(name: str) -> str:
    known = {"items": "Items", "interactions": "Interactions", "users": "Users",
             "currentuser": "CurrentUser", "currentitem": "CurrentItem"}
    canonical = known.get(name.lower())
    if canonical is None:
        if name.lower() in ("actions", "action_interactions"):
            raise FilterError(f"Invalid filter expression: {name} filters are not supported by local_personalize")
        raise FilterError(f"Invalid filter expression: unknown dataset {name!r} (Items, Interactions, Users, CurrentUser)")
    return canonical


def _check_condition(condition: Condition) -> None:
    value, operator = condition.value, condition.operator
    if value.parameter is not None and operator == "NOT IN":
        raise FilterError("Invalid filter expression: placeholders cannot be used with NOT IN")
    if condition.dataset == "Interactions":
        if condition.field.upper() != "EVENT_TYPE":
            raise FilterError("Invalid filter expression: Interactions conditions may only use EVENT_TYPE")
        if operator not in ("IN", "="):
            raise FilterError("Invalid filter expression: Interactions.EVENT_TYPE takes IN or =")
    if "*" in value.literals and (condition.dataset != "Interactions" or operator != "IN"):
        raise FilterError('Invalid filter expression: "*" is only allowed in Interactions.EVENT_TYPE IN ("*")')
    if operator in RANGE_OPERATORS and len(value.literals) > 1:
        raise FilterError(f"Invalid filter expression: {operator} takes one value, not a list")
    if value.current_item_field is not None and condition.dataset != "Items":
        raise FilterError("Invalid filter expression: CurrentItem values only compare with Items fields")


def parse(expression: str) -> list[Part]:
    """The parts of an expression; FilterError says what is wrong and where."""
    if not expression or not expression.strip():
        raise FilterError("Invalid filter expression: the expression is empty")
    parts = _Parser(expression).parse()
    fields = {
        (c.dataset, c.field.upper())
        for part in parts for group in part.any_of + [part.guards] for c in group
    }
    if len(fields) > MAX_DISTINCT_FIELDS:
        raise FilterError(
            f"Invalid filter expression: {len(fields)} distinct fields, at most {MAX_DISTINCT_FIELDS} are allowed"
        )
    return parts
