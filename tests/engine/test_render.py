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
])
def test_words_group_as_the_condition_does(catalogue, cond, expected):
    assert words(cond, catalogue) == expected
