"""The SQL models on Apache Spark: the portable subset of DuckDB SQL they are written in,
and the project's rules that turn it into Spark SQL.

Why our own rules on top of sqlglot: sqlglot transpiles every model from DuckDB to
Spark without an error, yet several come out answering differently on Spark
(measured on the sample, each model fed the same input tables): `epoch()` becomes
whole-second `UNIX_TIMESTAMP`, `date_diff('day', ...)` a count of 24-hour spans, the
`ORDER BY` inside `list(...)` is dropped, `collect_list` drops NULLs, a JSON path with a
quoted key finds nothing, `regexp_full_match`, `list_slice` and `to_days` are passed
through unchanged and unknown to Spark. Only running both engines and comparing shows
it, which is what tests/sql/test_spark_portability.py does.

Two halves, one per concern:

* `portability_problems(sql)`: the constructs the rules cannot make equal, each as
  one sentence; a model must have none (a test checks every model). They are written
  another way in the model (sql/README.md lists them).
* `to_spark(sql)`: DuckDB SQL of the subset to Spark SQL, through sqlglot and the
  rules below; `$name` parameters become Spark's named `:name` parameters.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

__all__ = ["portability_problems", "to_spark"]


def portability_problems(sql: str) -> list[str]:
    """Why `sql` is outside the portable subset: one sentence per construct found
    (empty when it is inside). Parsed as DuckDB SQL."""
    problems = []
    tokens = sqlglot.tokenize(sql, read="duckdb")
    for token, following in zip(tokens, tokens[1:], strict=False):
        if token.text.lower() == "len" and following.token_type == TokenType.L_PAREN:
            problems.append("len(): one name for strings and lists in DuckDB, two in Spark; "
                            "use length() for a string, array_length() for a list")
    for tree in sqlglot.parse(sql, read="duckdb"):
        if tree is None:
            continue
        problems += _problems_of(tree)
    return list(dict.fromkeys(problems))


def _problems_of(tree: exp.Expression) -> list[str]:
    problems = []
    for join in tree.find_all(exp.Join):
        if "ASOF" in (join.args.get("kind") or "").upper() or join.args.get("method") and \
                "ASOF" in str(join.args["method"]).upper():
            problems.append("ASOF join: Spark has none; join on the inequality and keep the "
                            "nearest row with row_number()")
    for star in tree.find_all(exp.Star):
        if star.args.get("replace"):
            problems.append("SELECT * REPLACE: Spark has none; name the columns")
        if star.args.get("rename"):
            problems.append("SELECT * RENAME: Spark has none; name the columns")
    for agg in tree.find_all(exp.ArrayAgg):
        order = agg.this if isinstance(agg.this, exp.Order) else None
        if order is not None and any(o.args.get("desc") for o in order.expressions):
            problems.append("list(... ORDER BY ... DESC): the rule sorts ascending only; "
                            "order by the negated key")
    for frame in tree.find_all(exp.WindowSpec):
        for bound in (frame.args.get("start"), frame.args.get("end")):
            if isinstance(bound, exp.Expression) and not isinstance(bound, exp.Literal | exp.Var):
                problems.append("a window frame bounded by an expression: Spark needs a "
                                "literal bound")
    for call in tree.find_all(exp.Anonymous):
        name = call.name.lower()
        if name in _NOT_PORTABLE:
            problems.append(f"{name}(): {_NOT_PORTABLE[name]}")
    for replace in tree.find_all(exp.RegexpReplace):
        pattern = replace.expression
        anchored = isinstance(pattern, exp.Literal) and pattern.name.startswith("^")
        modifiers = replace.args.get("modifiers")
        every = modifiers is not None and "g" in modifiers.name
        if not every and not anchored:
            problems.append("regexp_replace() without 'g' replaces the first match in "
                            "DuckDB and every match in Spark: anchor the pattern with ^ or "
                            "pass 'g'")
    return problems


# Functions DuckDB has and Spark answers differently, with what to write instead.
_NOT_PORTABLE = {
    "hash": "the engines hash differently; use md5(), which they compute alike",
}


def to_spark(sql: str) -> str:
    """The Spark SQL of one DuckDB statement of the portable subset (a model's SELECT,
    or any query the library runs on the engine)."""
    problems = portability_problems(sql)
    if problems:
        raise ValueError("not portable SQL: " + "; ".join(problems))
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_rule)
    return tree.sql(dialect="spark")


def _rule(node: exp.Expression) -> exp.Expression:
    """One node rewritten for Spark where sqlglot's own translation answers otherwise."""
    for kind, rewrite in _RULES:
        if isinstance(node, kind):
            replaced = rewrite(node)
            if replaced is not None:
                return replaced
    return node


def _spark(text: str, **nodes: exp.Expression) -> exp.Expression:
    """A Spark expression from a template, with `nodes` put in for their names."""
    tree = sqlglot.parse_one(text, read="spark")
    return tree.transform(lambda n: nodes[n.name].copy()
                          if isinstance(n, exp.Column) and n.name in nodes
                          and not n.table else n)


def _epoch(node: exp.TimeToUnix) -> exp.Expression:
    # DuckDB's epoch() keeps the fraction of a second; UNIX_TIMESTAMP drops it.
    return _spark("cast(unix_micros(cast(x__ as timestamp)) as double) / 1000000",
                  x__=node.this)


def _date_diff(node: exp.DateDiff) -> exp.Expression | None:
    # date_diff('day', a, b) counts day boundaries crossed; Spark's DATEDIFF(DAY, ...)
    # counts whole 24-hour spans. datediff() of the two dates is DuckDB's answer.
    unit = (node.args.get("unit").name if node.args.get("unit") else "day").lower()
    if unit != "day":
        return None
    return _spark("cast(datediff(cast(b__ as date), cast(a__ as date)) as bigint)",
                  a__=node.expression, b__=node.this)


def _to_days(node: exp.ToDays) -> exp.Expression:
    return _spark("make_dt_interval(n__, 0, 0, 0)", n__=node.this)


def _full_match(node: exp.RegexpFullMatch) -> exp.Expression:
    # regexp_full_match(value, pattern, 'i'): the whole value matches, case-insensitive
    # with 'i'. Java regexes read the patterns the models use as RE2 does.
    options = node.args.get("options")
    flags = "(?i)" if options is not None and "i" in options.name else ""
    return _spark(f"v__ rlike concat('{flags}^(?:', p__, ')$')",
                  v__=node.this, p__=node.expression)


def _list_agg(node: exp.ArrayAgg) -> exp.Expression | None:
    # list(x ORDER BY k): collect_list drops the order and the NULLs; collected as
    # structs (k..., x), sorted, then x taken back, it keeps both.
    order = node.this if isinstance(node.this, exp.Order) else None
    if order is None:
        return None
    value = order.this
    keys = [o.this for o in order.expressions]
    if isinstance(value, exp.Distinct):
        (inner,) = value.expressions
        if len(keys) == 1 and keys[0] == inner:
            return _spark("array_sort(collect_set(x__))", x__=inner)
        return None
    fields = ", ".join(f"k{i}__" for i in range(len(keys)))
    names = {f"k{i}__": key for i, key in enumerate(keys)}
    return _spark(f"transform(array_sort(collect_list(struct({fields}, x__ as v__))), "
                  "s__ -> s__.v__)", x__=value, **names)


def _json_text(node: exp.TryCast) -> exp.Expression | None:
    # try_cast(x as json): the text when it is JSON, else NULL. Spark has no JSON type.
    if node.to.this != exp.DataType.Type.JSON:
        return None
    return _spark("if(try_parse_json(x__) is not null, x__, null)", x__=node.this)


def _json_field(node: exp.JSONExtractScalar) -> exp.Expression | None:
    # json_extract_string(j, '$."' || key || '"'): a top-level key by name. Spark's
    # get_json_object reads no quoted key; its bracket form takes any name.
    path = node.expression
    parts = _concat_parts(path)
    if len(parts) == 3 and all(isinstance(p, exp.Literal) for p in (parts[0], parts[2])) \
            and parts[0].name == '$."' and parts[2].name == '"':
        return exp.Anonymous(this="get_json_object", expressions=[
            node.this.copy(),
            exp.Concat(expressions=[exp.Literal.string("$['"), parts[1].copy(),
                                    exp.Literal.string("']")])])
    return None


def _concat_parts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.DPipe):
        return _concat_parts(node.this) + _concat_parts(node.expression)
    if isinstance(node, exp.Concat):
        return [p for e in node.expressions for p in _concat_parts(e)]
    if isinstance(node, exp.Paren):
        return _concat_parts(node.this)
    return [node]


def _list_slice(node: exp.Anonymous) -> exp.Expression | None:
    # list_slice(l, begin, end), both ends included; Spark's slice takes a length.
    if node.name.lower() != "list_slice" or len(node.expressions) != 3:
        return None
    items, begin, end = node.expressions
    return _spark("slice(l__, b__, e__ - b__ + 1)", l__=items, b__=begin, e__=end)


def _quantiles(node: exp.PercentileCont) -> exp.Expression:
    # quantile_cont(x, q) and quantile_cont(x, [q, ...]): Spark's percentile() is the
    # same interpolated quantile and takes one fraction or an array of them.
    fractions = node.expression
    if isinstance(fractions, exp.Array):
        fractions = exp.Anonymous(this="array", expressions=[
            f.copy() for f in fractions.expressions])
    return exp.Anonymous(this="percentile", expressions=[node.this.copy(), fractions.copy()])


def _bigint_rank(node: exp.Window) -> exp.Expression | None:
    # row_number(), rank() and dense_rank() are BIGINT in DuckDB, INT in Spark: a model's
    # column keeps DuckDB's type on both.
    if not isinstance(node.this, exp.RowNumber | exp.Rank | exp.DenseRank):
        return None
    if isinstance(node.parent, exp.Cast):
        return None
    return exp.Cast(this=node.copy(), to=exp.DataType.build("bigint"))


def _replacement(node: exp.RegexpReplace) -> exp.Expression:
    # Back-references: \1 in DuckDB (RE2), $1 in Spark (Java).
    replacement = node.args.get("replacement")
    if isinstance(replacement, exp.Literal) and replacement.is_string:
        import re

        node = node.copy()
        node.set("replacement", exp.Literal.string(
            re.sub(r"\\(\d)", r"$\1", replacement.name)))
    return node


_RULES = (
    (exp.TimeToUnix, _epoch),
    (exp.DateDiff, _date_diff),
    (exp.ToDays, _to_days),
    (exp.RegexpFullMatch, _full_match),
    (exp.ArrayAgg, _list_agg),
    (exp.TryCast, _json_text),
    (exp.JSONExtractScalar, _json_field),
    (exp.Anonymous, _list_slice),
    (exp.RegexpReplace, _replacement),
    (exp.PercentileCont, _quantiles),
    (exp.Window, _bigint_rank),
)
