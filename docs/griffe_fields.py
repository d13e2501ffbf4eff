"""A griffe extension for the API reference: the constructor of a class made of fields.

An ``eqx.Module`` becomes a dataclass, and a ``NamedTuple`` gets its ``__new__``, when the
class is created, which static analysis cannot see: without this they show no signature.
As for a dataclass, the parameters are the annotated attributes, base classes' first;
``ClassVar`` and ``eqx.AbstractVar`` annotations are not fields, and
``eqx.field(init=False)`` is no parameter. A class whose own or inherited ``__init__`` is
written out keeps it.
"""

from typing import Any

import griffe

_BASES = {"equinox.Module", "typing.NamedTuple"}
_NOT_FIELDS = {"equinox.AbstractVar", "equinox.AbstractClassVar"}
_FIELD_CALLS = {"equinox.field", "dataclasses.field"}


def _path(expr: Any) -> str:
    return getattr(expr, "canonical_path", str(expr))


def _has_fields(cls: griffe.Class) -> bool:
    if any(_path(base) in _BASES for base in cls.bases):
        return True
    return any(_has_fields(base) for base in cls.resolved_bases)


def _has_init(cls: griffe.Class) -> bool:
    return "__init__" in cls.members or any(_has_init(base) for base in cls.resolved_bases)


def _field_arguments(value: Any) -> dict[str, Any] | None:
    if isinstance(value, griffe.ExprCall) and _path(value.function) in _FIELD_CALLS:
        return {arg.name: arg.value for arg in value.arguments if hasattr(arg, "name")}
    return None


def _parameters(cls: griffe.Class) -> dict[str, griffe.Parameter]:
    parameters = {}
    for base in reversed(cls.resolved_bases):
        if _has_fields(base):
            parameters.update(_parameters(base))
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        classvar = "class-attribute" in member.labels and "instance-attribute" not in member.labels
        annotation = member.annotation
        abstract = isinstance(annotation, griffe.ExprSubscript) and _path(annotation.left)
        if classvar or "property" in member.labels or abstract in _NOT_FIELDS:
            continue
        arguments = _field_arguments(member.value)
        if arguments is not None and str(arguments.get("init")) == "False":
            continue
        if arguments is None:
            default = member.value
        elif "default_factory" in arguments:
            default = griffe.ExprCall(function=arguments["default_factory"], arguments=[])
        else:
            default = arguments.get("default")
        parameters[member.name] = griffe.Parameter(
            member.name, annotation=annotation, default=default, docstring=member.docstring
        )
    return parameters


def _classes(obj: griffe.Module | griffe.Class):
    for member in obj.members.values():
        if not member.is_alias and (member.is_module or member.is_class):
            if member.is_class:
                yield member
            yield from _classes(member)


class FieldInits(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # Decide every class first: a base given its __init__ here must not hide the fields.
        targets = [cls for cls in _classes(pkg) if _has_fields(cls) and not _has_init(cls)]
        for cls, parameters in [(cls, _parameters(cls).values()) for cls in targets]:
            init = griffe.Function("__init__", parent=cls, returns="None")
            init.parameters = griffe.Parameters(griffe.Parameter("self"), *parameters)
            cls.set_member("__init__", init)
