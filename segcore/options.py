"""Typed options, declared once: a builder's keyword arguments or a dataclass's fields.

A model option is declared where the builder takes it: its name, default and type
come from the builder's signature (the annotation, else the default's type), its
help text from the builder's docstring ("Args:" section). `ModelOptions` gathers
the options of a family's builder and of its family-level functions (U-Net tiling,
DeepLab evaluation scales); the trainers' flags, `--set model.KEY=VALUE`, config
files and the engine's checks are all derived from it. The same `Option` type
describes `TrainConfig` and `AugmentConfig` fields (dataclass annotations), so
every value from a flag, a `--set` string or a JSON/YAML file is checked the same
way: an unknown key or a wrong type is a ConfigError naming the key.

`key_value` is the argparse type of `--option KEY=VALUE` / `--set KEY=VALUE`.
"""

import argparse
import ast
import dataclasses
import inspect
import re
import typing

from segcore.errors import ConfigError

NOT_OPTIONS = ("num_classes", "input_shape", "weights", "name")  # the engine sets these
_SCALARS = (bool, int, float, str)


def key_value(text):
    """`--option KEY=VALUE` -> (key, Python literal or plain string)."""
    key, sep, value = text.partition("=")
    if not sep or not all(part.isidentifier() for part in key.split(".")):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, literal(value)


def literal(text):
    """A Python literal of `text` (numbers, tuples, True/None...), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def boolean(text):
    """argparse type for true/false flags (1/0, yes/no, on/off accepted)."""
    value = str(text).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


@dataclasses.dataclass(frozen=True)
class Option:
    """One typed option. kind: bool, int, float, str, tuple, list, dict, or None (any
    value); element: the type of a tuple's or list's items (None: any)."""

    name: str
    kind: object
    default: object = None
    element: object = None
    nullable: bool = True
    help: str = ""

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")

    @property
    def multiple(self):
        return self.kind in (tuple, list)

    def describe(self):
        if self.kind is None:
            return "any value"
        if self.multiple:
            item = getattr(self.element, "__name__", "value")
            return f"a list of {item}"
        return {bool: "true or false", int: "an integer", float: "a number",
                str: "a string", dict: "a mapping"}[self.kind]

    def coerce(self, value, where=""):
        """`value` (from JSON, YAML or Python) as this option's type, or a ConfigError."""
        label = f"{where}{self.name}"
        if value is None and self.nullable or self.kind is None:
            return value
        if self.multiple:
            if isinstance(value, _SCALARS) and not isinstance(value, str):
                value = [value]  # one value of a multi-value option (--eval-scales 1.0)
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{label}: expected {self.describe()}, got {value!r}")
            item = Option(self.name, self.element, nullable=False) if self.element else None
            items = [item.coerce(v, where) if item else v for v in value]
            return tuple(items) if self.kind is tuple else list(items)
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if self.kind is bool and isinstance(value, str):
            try:
                return boolean(value)
            except ValueError:
                pass
        if isinstance(value, self.kind) and not (self.kind is int and isinstance(value, bool)):
            return value
        raise ConfigError(f"{label}: expected {self.describe()}, got {value!r}")

    def parse(self, text, where=""):
        """A string from the command line (a flag's or `--set`'s value) as this type."""
        if self.kind is str:
            return text
        value = text if not isinstance(text, str) else (
            None if text.lower() in ("none", "null") and self.nullable else literal(text))
        if self.multiple and isinstance(value, str) and value.strip():
            value = [literal(part) for part in re.split(r"[,\s]+", value.strip())]
        return self.coerce(value, where)


def _kind_of(annotation, default):
    """(kind, element, nullable) of a signature or dataclass annotation."""
    nullable = default is None
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = True
        annotation = args[0] if len(args) == 1 else None
        origin = typing.get_origin(annotation)
    if annotation in (None, inspect.Parameter.empty, object, typing.Any):
        if default is None:
            return None, None, True
        annotation = type(default)
        origin = None
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return origin, (args[0] if args else None), nullable
    if annotation in (tuple, list):
        element = type(default[0]) if default else None
        return annotation, element, nullable
    if annotation in (dict, *_SCALARS):
        return annotation, None, nullable
    return None, None, nullable


def docstring_args(function):
    """{argument: its help text} from a Google-style "Args:" docstring section."""
    doc = inspect.getdoc(function) or ""
    texts, current = {}, None
    in_args = False
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:"):
            in_args = True
            continue
        if in_args and line and not line.startswith(" "):
            break  # the next section (Returns: ...)
        match = re.match(r"^  (\w+)(?: \([^)]*\))?: ?(.*)$", line) if in_args else None
        if match:
            current = match.group(1)
            texts[current] = match.group(2).strip()
        elif in_args and current and line.startswith("    "):
            texts[current] = (texts[current] + " " + line.strip()).strip()
    return texts


def signature_options(function, exclude=NOT_OPTIONS):
    """{name: Option} of `function`'s keyword arguments with defaults."""
    helps = docstring_args(function)
    options = {}
    hints = typing.get_type_hints(function)
    for name, parameter in inspect.signature(function).parameters.items():
        if name in exclude or parameter.default is inspect.Parameter.empty:
            continue
        kind, element, nullable = _kind_of(hints.get(name, parameter.annotation),
                                           parameter.default)
        options[name] = Option(name, kind, parameter.default, element, nullable,
                               helps.get(name, ""))
    return options


def dataclass_options(cls, exclude=()):
    """{name: Option} of a dataclass's fields."""
    hints = typing.get_type_hints(cls)
    options = {}
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        default = field.default if field.default is not dataclasses.MISSING else (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else None)
        kind, element, nullable = _kind_of(hints.get(field.name), default)
        options[field.name] = Option(field.name, kind, default, element, nullable)
    return options


class ModelOptions:
    """The model options of a family: the builder's keyword arguments, then those of
    the family's other functions that read `config.model` (each declared once, in the
    signature that takes it)."""

    def __init__(self, family, builder, *others):
        self.family = family
        self.groups = [signature_options(builder)] + [signature_options(f) for f in others]
        self.options = {name: option for group in self.groups for name, option in group.items()}

    def __iter__(self):
        return iter(self.options.values())

    def __contains__(self, name):
        return name in self.options

    def check(self, model, where=""):
        """`model` (config.model) with each value coerced to its option's type;
        ConfigError (its message starting with `where`) naming an unknown key and
        listing the valid ones, or naming a value of the wrong type."""
        unknown = sorted(set(model) - set(self.options) - {"num_classes"})
        if unknown:
            raise ConfigError(
                f"{where}model option(s) {', '.join(unknown)} unknown to the {self.family} "
                f"family; expected {', '.join(self.options)}")
        label = f"{where}model."
        checked = {k: self.options[k].coerce(v, label) for k, v in model.items()
                   if k != "num_classes"}
        if "num_classes" in model:
            checked["num_classes"] = Option("num_classes", int).coerce(model["num_classes"], label)
        return checked

    def split(self, model):
        """[builder kwargs given in `model`, then each other function's options with
        their defaults filled in], after `check`."""
        checked = self.check(model)
        given = {k: v for k, v in checked.items() if k in self.groups[0]}
        others = [{name: checked.get(name, option.default) for name, option in group.items()}
                  for group in self.groups[1:]]
        return [given, *others]
