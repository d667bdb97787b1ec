"""Hypothesis strategies: well-typed policy expressions, fact sheets, and policy texts."""

from __future__ import annotations

from hypothesis import strategies as st

from engine import ast

KINDS = ["language_model", "vision_encoder", "audio_encoder", "head"]
RELATIONS = ["identical", "derived", "independent", "unknown"]

# Text that exercises escapes, braces and Korean.
texts = st.text(alphabet=st.sampled_from(list('ab xyz"\\{}\n\t한국어원천성-_.')), max_size=12)
numbers = st.one_of(st.integers(0, 1000).map(float), st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
names = st.sampled_from(["c", "d", "x", "item"])


def lit(v):
    return ast.Literal(v)


def bool_paths(var):
    paths = [ast.Path("trail", ("present",)), ast.Path("config", ("identical",))]
    if var:
        paths.append(ast.Path(var, ("reinitialized",)))
    return st.sampled_from(paths)


def num_paths(var):
    paths = [ast.Path("tokenizer", ("vocab_overlap",)), ast.Path("model", ("parameters",))]
    if var:
        paths += [ast.Path(var, ("parameters",)), ast.Path(var, ("match", "similarity"))]
    return st.sampled_from(paths)


def str_paths(var):
    paths = [ast.Path("tokenizer", ("reference",))]
    if var:
        paths += [ast.Path(var, ("kind",)), ast.Path(var, ("match", "relation"))]
    return st.sampled_from(paths)


def num_expr(var, depth):
    base = st.one_of(numbers.map(lit), num_paths(var))
    if depth <= 0:
        return base
    sub = num_expr(var, depth - 1)
    return st.one_of(
        base,
        st.builds(lambda op, a, b: ast.Arith(op, a, b), st.sampled_from("+-*/"), sub, sub),
        sub.map(ast.Neg),
        st.builds(ast.Otherwise, num_paths(var), sub),
        st.builds(lambda a: ast.Call("abs", (a,)), sub),
    )


def str_expr(var, depth):
    return st.one_of(st.sampled_from(KINDS + RELATIONS).map(lit), str_paths(var),
                     st.builds(lambda p: ast.Call("decided", (p,)), str_paths(var)))


def bool_expr(var=None, depth=3):
    base = st.one_of(st.booleans().map(lit), bool_paths(var))
    if depth <= 0:
        return base
    sub = bool_expr(var, depth - 1)
    num = num_expr(var, 1)
    s = str_expr(var, 1)
    inner_var = st.sampled_from([n for n in ["c", "d"] if n != var])
    return st.one_of(
        base,
        sub.map(ast.Not),
        st.builds(lambda op, xs: ast.BoolChain(op, tuple(xs)), st.sampled_from(["and", "or"]),
                  st.lists(sub, min_size=2, max_size=3)),
        st.builds(ast.Implies, sub, sub),
        st.builds(lambda op, a, b: ast.Compare(op, a, b), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
                  num, num),
        st.builds(lambda op, a, b: ast.Compare(op, a, b), st.sampled_from(["==", "!="]), s, s),
        st.builds(lambda neg, a, xs: ast.Member(neg, a, ast.ListLit(tuple(lit(x) for x in xs))),
                  st.booleans(), s, st.lists(st.sampled_from(KINDS + RELATIONS), max_size=3)),
        st.builds(lambda p: ast.Call("known", (p,)), st.one_of(bool_paths(var), num_paths(var), str_paths(var))),
        inner_var.flatmap(lambda v: st.builds(
            lambda kind, where, body: ast.Quantifier(kind, v, ast.Path("components"), where, body),
            st.sampled_from(["any", "all", "none"]), st.none() | bool_expr(v, depth - 2), bool_expr(v, depth - 1))),
        inner_var.flatmap(lambda v: st.builds(
            lambda where, n: ast.Compare(">=", ast.Count(v, ast.Path("components"), where), lit(float(n))),
            st.none() | bool_expr(v, depth - 2), st.integers(0, 3))),
    )


def maybe(strategy):
    """A value, or absent (unknown): None marks a key to leave out."""
    return st.one_of(st.none(), strategy)


components = st.lists(st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["language_model", "vision_encoder", "lm_head"]),
    "kind": st.sampled_from(KINDS),
    "parameters": st.integers(0, 10**6),
    "reinitialized": st.booleans(),
    "match": st.fixed_dictionaries({}, optional={
        "relation": st.sampled_from(RELATIONS),
        "similarity": st.floats(0, 1),
        "reference": st.sampled_from(["llama", "siglip"]),
    }),
}), max_size=4)

facts = st.fixed_dictionaries({}, optional={
    "components": components,
    "trail": st.fixed_dictionaries({}, optional={"present": st.booleans()}),
    "config": st.fixed_dictionaries({}, optional={"identical": st.booleans()}),
    "tokenizer": st.fixed_dictionaries({}, optional={
        "vocab_overlap": st.floats(0, 1), "reference": st.sampled_from(["llama", "qwen"])}),
    "model": st.fixed_dictionaries({}, optional={"parameters": st.integers(0, 10**9)}),
})
