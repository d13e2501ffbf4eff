"""The docstring examples of the reference engine run and print what they say."""

import doctest

import pytest

from simgrad.reference import _dual, _explain, _ops, _tape


@pytest.mark.parametrize("module", [_ops, _dual, _tape, _explain])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
