"""Reads template.yaml: the resources the embedded runtime and the tests build from it.

Only what this template uses of CloudFormation is resolved: !Ref / !GetAtt / !Sub against the
names given by the caller, parameter defaults overridden by the caller.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


class _Tag:
    def __init__(self, tag: str, value: Any) -> None:
        self.tag = tag
        self.value = value

    def __repr__(self) -> str:
        return f"{self.tag}({self.value!r})"


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> _Tag:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return _Tag(tag_suffix, value)


_CfnLoader.add_multi_constructor("!", _construct_tag)


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open() as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


def resources(resource_type: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    template = template or load_template()
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def parameter_defaults(template: dict[str, Any] | None = None) -> dict[str, str]:
    template = template or load_template()
    return {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}


@dataclass
class Resolver:
    """Resolves intrinsic functions against concrete local names."""

    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, _Tag):
            return self._resolve_tag(value)
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, inner),) = value.items()
                if key == "Ref":
                    return self._ref(inner)
                if key == "Fn::GetAtt":
                    return self._get_att(inner)
                if key == "Fn::Sub":
                    return self._sub(inner)
            return {key: self.resolve(inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def _resolve_tag(self, tag: _Tag) -> Any:
        if tag.tag == "Ref":
            return self._ref(tag.value)
        if tag.tag == "GetAtt":
            return self._get_att(tag.value)
        if tag.tag == "Sub":
            return self._sub(tag.value)
        raise ValueError(f"unsupported intrinsic !{tag.tag}")

    def _ref(self, name: str) -> str:
        if name not in self.refs:
            raise KeyError(f"no local value for !Ref {name}")
        return self.refs[name]

    def _get_att(self, value: str | list[str]) -> str:
        key = value if isinstance(value, str) else ".".join(value)
        if key not in self.attributes:
            raise KeyError(f"no local value for !GetAtt {key}")
        return self.attributes[key]

    def _sub(self, value: str | list[Any]) -> str:
        text, extra = (value, {}) if isinstance(value, str) else (value[0], self.resolve(value[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name:
                return self._get_att(name)
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)


def table_definitions(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """`create_table` keyword arguments for every AWS::DynamoDB::Table, keyed by logical id (no TableName)."""
    definitions: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources("AWS::DynamoDB::Table", template).items():
        properties = resource["Properties"]
        kwargs: dict[str, Any] = {
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if "GlobalSecondaryIndexes" in properties:
            kwargs["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        if "StreamSpecification" in properties:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
        definitions[logical_id] = kwargs
    return definitions


def time_to_live(logical_id: str, template: dict[str, Any] | None = None) -> dict[str, Any] | None:
    properties = resources("AWS::DynamoDB::Table", template)[logical_id]["Properties"]
    spec = properties.get("TimeToLiveSpecification")
    return dict(spec) if spec else None


def create_tables(
    dynamodb_client: Any, names: dict[str, str], template: dict[str, Any] | None = None
) -> None:
    """Creates each table of the template under the local name given for its logical id."""
    for logical_id, kwargs in table_definitions(template).items():
        dynamodb_client.create_table(TableName=names[logical_id], **kwargs)
        ttl = time_to_live(logical_id, template)
        if ttl:
            dynamodb_client.update_time_to_live(TableName=names[logical_id], TimeToLiveSpecification=ttl)


def state_machine_definition(
    logical_id: str,
    resolver: Resolver,
    parameter_overrides: dict[str, str] | None = None,
    template: dict[str, Any] | None = None,
) -> str:
    """The ASL of a state machine with its DefinitionSubstitutions applied, as `sam build` would."""
    properties = resources("AWS::Serverless::StateMachine", template)[logical_id]["Properties"]
    definition = (ROOT / properties["DefinitionUri"]).read_text()
    refs = {**parameter_defaults(template), **(parameter_overrides or {}), **resolver.refs}
    local = Resolver(refs=refs, attributes=resolver.attributes)
    substitutions = {
        name: str(local.resolve(value))
        for name, value in properties.get("DefinitionSubstitutions", {}).items()
    }
    for name, value in substitutions.items():
        definition = definition.replace("${" + name + "}", value)
    json.loads(definition)
    return definition
