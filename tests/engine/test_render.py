"""The criteria document: each condition in words, grouped as the policy groups it."""

import pytest

from engine.render import describe_condition

from .helpers import HEADER, check_text


def words(cond: str, catalogue, params: str = "") -> str:
    policy = check_text(HEADER + params + f'rule r {{\n  level blocking\n  cite "c"\n  {cond}\n  message "m"\n}}\n',
                        catalogue)
    return describe_condition(policy.rules[0].rule, policy)


@pytest.mark.parametrize("cond,expected", [
    # Arithmetic keeps the brackets its precedence needs, and no others.
    ("require (trail.checkpoints + 1) * 2 >= 10",
     "Required: (`trail.checkpoints` + 1) * 2 is at least 10."),
    ("require trail.checkpoints + 1 * 2 >= 10",
     "Required: `trail.checkpoints` + 1 * 2 is at least 10."),
    ("require -(trail.checkpoints - 3) < 0",
     "Required: -(`trail.checkpoints` - 3) is less than 0."),
    ("require trail.checkpoints - (trail.checkpoints - 2) >= 2",
     "Required: `trail.checkpoints` - (`trail.checkpoints` - 2) is at least 2."),
    ("require trail.checkpoints - trail.checkpoints - 2 >= 2",
     "Required: `trail.checkpoints` - `trail.checkpoints` - 2 is at least 2."),
    # A quantifier's body and an `implies` reach as far right as they can: inside a larger
    # condition they are bracketed, or the sentence reads the other way.
    ('require (any c in components: c.kind == "head") and trail.present == true',
     'Required: (for some `c` in `components`: `c.kind` is "head") and `trail.present` is true.'),
    ('require any c in components: c.kind == "head" and trail.present == true',
     'Required: for some `c` in `components`: `c.kind` is "head" and `trail.present` is true.'),
    ("require (trail.continuous implies trail.committed) and trail.present",
     "Required: (if `trail.continuous`, then `trail.committed`) and `trail.present`."),
    ("require trail.continuous implies trail.committed and trail.present",
     "Required: if `trail.continuous`, then `trail.committed` and `trail.present`."),
    ("require (trail.present or trail.committed) and trail.continuous",
     "Required: (`trail.present` or `trail.committed`) and `trail.continuous`."),
    # `and` inside `or`: bracketed all the same, as English does not bind it tighter.
    ("require trail.present or trail.committed and trail.continuous",
     "Required: `trail.present` or (`trail.committed` and `trail.continuous`)."),
    # A list stays one list before an `and`; a count stays one number before its comparison.
    ('require card.license in ["mit", "own"] and trail.present',
     'Required: `card.license` is one of ["mit", "own"] and `trail.present`.'),
    ('require count(c in components where c.kind == "head") >= 1',
     'Required: (the number of items `c` in `components` for which `c.kind` is "head") is at least 1.'),
])
def test_words_group_as_the_condition_does(catalogue, cond, expected):
    assert words(cond, catalogue) == expected


@pytest.mark.parametrize("value,expected", [
    ("plain 텍스트, (ok).", "plain 텍스트, (ok)."),
    ("*a* _b_ `c` [d](e) <f> & | ~ \\", "\\*a\\* \\_b\\_ \\`c\\` \\[d\\](e) \\<f\\> \\& \\| \\~ \\\\"),
    ("two\nlines", "two lines"),
])
def test_markdown_text_shows_as_written(value, expected):
    from engine import markdown as md
    assert md.text(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("# not a heading", "\\# not a heading"), ("- not a list", "\\- not a list"),
    ("1. not a list", "1\\. not a list"), ("> no quote", "\\> no quote"), ("fine", "fine"),
])
def test_markdown_paragraph_starts_as_text(value, expected):
    from engine import markdown as md
    assert md.paragraph(value) == expected


@pytest.mark.parametrize("value,expected", [("a", "`a`"), ("a`b", "``a`b``"), ("`a", "`` `a ``")])
def test_markdown_code_holds_any_backticks(value, expected):
    from engine import markdown as md
    assert md.code(value) == expected


def test_rendered_document_shows_policy_text_as_written(catalogue):
    from engine.render import render_policy
    text = ('policy "t"\nversion "1"\ntitle ko "원천성 *초안*"\n'
            'param sep: string = "a|b"\n  "separator\\nsecond <b>line</b>"\n'
            'rule r {\n  title en "A *rule*"\n  level blocking\n  cite "c | d"\n  note "see <here>"\n'
            '  require card.license != sep\n  message "m"\n}\n')
    doc = render_policy(check_text(text, catalogue), catalogue)
    assert "# 원천성 \\*초안\\*" in doc
    assert '| `sep` | `"a\\|b"` | separator second \\<b\\>line\\</b\\> |' in doc
    assert "### 1. A \\*rule\\*" in doc and "- Source: c \\| d" in doc and "> see \\<here\\>" in doc
    assert 'Required: `card.license` is not `sep` (`"a|b"`).' in doc
