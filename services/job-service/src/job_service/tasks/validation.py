"""Checking a job's `args` against its task's input schema (JSON Schema draft 2020-12).

Errors name the field and the broken rule, never the value: arguments may carry secrets, and
jsonschema's own messages quote the offending value."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from conveyor_common.problems import FieldError

MAX_ERRORS = 20


def compile_schema(schema: dict[str, Any]) -> Draft202012Validator:
    """Raises `jsonschema.exceptions.SchemaError` for a schema that is not valid."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def args_errors(
    validator: Draft202012Validator, args: dict[str, Any], prefix: str
) -> list[FieldError]:
    """Field errors for `args`, each field spelled `<prefix>.<path>` (prefix e.g. `body.args`)."""
    if validator.is_valid(args):
        # The common case, at a third of the cost of collecting (no) errors.
        return []
    errors: list[FieldError] = []
    for error in sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path)):
        errors.extend(_describe(error, prefix))
        if len(errors) >= MAX_ERRORS:
            break
    return errors[:MAX_ERRORS]


def _field(prefix: str, path: Iterable[Any]) -> str:
    return ".".join([prefix, *(str(part) for part in path)])


def _describe(error: ValidationError, prefix: str) -> list[FieldError]:
    path = list(error.absolute_path)
    keyword = str(error.validator)
    constraint: Any = error.validator_value
    instance: Any = error.instance
    if keyword == "required" and isinstance(instance, dict):
        missing = [name for name in constraint if name not in instance]
        return [FieldError(field=_field(prefix, [*path, m]), reason="is required") for m in missing]
    if keyword == "additionalProperties" and isinstance(instance, dict):
        allowed = (
            set(error.schema.get("properties", {})) if isinstance(error.schema, dict) else set()
        )
        extra = sorted(str(k) for k in instance if k not in allowed) or ["?"]
        return [
            FieldError(field=_field(prefix, [*path, k]), reason="is not allowed") for k in extra
        ]
    return [FieldError(field=_field(prefix, path), reason=_reason(keyword, constraint))]


def _show(constraint: Any) -> str:
    if isinstance(constraint, Sequence) and not isinstance(constraint, str):
        return ", ".join(_show(c) for c in constraint)
    return repr(constraint) if isinstance(constraint, str) else str(constraint)


# The constraint comes from the task's schema (public, in `GET /v1/tasks`), so it may be shown.
_REASONS: dict[str, str] = {
    "type": "must be of type {c}",
    "enum": "must be one of: {c}",
    "const": "must equal {c}",
    "minimum": "must be >= {c}",
    "maximum": "must be <= {c}",
    "exclusiveMinimum": "must be > {c}",
    "exclusiveMaximum": "must be < {c}",
    "multipleOf": "must be a multiple of {c}",
    "minLength": "must be at least {c} characters long",
    "maxLength": "must be at most {c} characters long",
    "pattern": "must match the pattern {c}",
    "format": "must be a valid {c}",
    "minItems": "must have at least {c} items",
    "maxItems": "must have at most {c} items",
    "uniqueItems": "must not contain duplicate items",
    "minProperties": "must have at least {c} properties",
    "maxProperties": "must have at most {c} properties",
    "dependentRequired": "needs its dependent properties",
}


def _reason(keyword: str, constraint: Any) -> str:
    template = _REASONS.get(keyword)
    if template is not None:
        return template.format(c=_show(constraint))
    return f"does not satisfy the schema's `{keyword}` rule"
