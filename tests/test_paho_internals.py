"""The paho-mqtt internals the collector's receive path relies on are there, as tested.

ingest/paho_client.py subclasses paho's Client and reaches into its internals; the list
is ``PAHO_INTERNALS`` there. A paho release that renames or reshapes any of them fails
here with one message, before the receive path misbehaves.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from importlib.metadata import version
from types import ModuleType, SimpleNamespace
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from ingest.paho_client import PAHO_INTERNALS, BurstReadingClient, PahoInternals

_PINGRESP = 0xD0


def _parameters(function: Any) -> tuple[str, ...]:
    names = []
    for parameter in list(inspect.signature(function).parameters.values())[1:]:  # no self
        prefix = {parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}
        names.append(prefix.get(parameter.kind, "") + parameter.name)
    return tuple(names)


def _own_names(subclass: type) -> set[str]:
    """What ``subclass`` defines itself: class attributes and every ``self.x = …`` target."""
    names = {name for name in vars(subclass) if not name.startswith("__")}
    tree = ast.parse(textwrap.dedent(inspect.getsource(subclass)))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return names


def internal_problems(
    module: ModuleType | SimpleNamespace, subclass: type, internals: PahoInternals
) -> list[str]:
    """One line per internal of ``internals`` that ``module`` (paho's client) lacks or changed."""
    client_class = module.Client
    problems = [
        f"no {name} in paho.mqtt.client"
        for name in internals.module_names
        if not hasattr(module, name)
    ]
    client = client_class(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    for name, kind in internals.attributes.items():
        if not hasattr(client, name):
            problems.append(f"a new Client has no attribute {name}")
        elif not isinstance(getattr(client, name), kind):
            found = type(getattr(client, name)).__name__
            problems.append(f"Client.{name} is a {found}, not a {kind.__name__}")
    for name, expected in internals.methods.items():
        method = getattr(client_class, name, None)
        if not callable(method):
            problems.append(f"no method Client.{name}")
        elif _parameters(method) != expected:
            found = ", ".join(_parameters(method))
            problems.append(f"Client.{name}({found}), not ({', '.join(expected)})")
    keys = tuple(getattr(client, "_in_packet", {}))
    if keys != internals.in_packet_keys:
        problems.append(f"Client._in_packet has keys {keys}, not {internals.in_packet_keys}")
    read = set(re.findall(r"_in_packet\[['\"](\w+)['\"]\]", inspect.getsource(client_class)))
    if unknown := sorted(read - set(internals.in_packet_keys)):
        problems.append(f"Client reads _in_packet keys {unknown} the subclass does not set")
    mine = _own_names(subclass) - set(internals.attributes) - set(internals.overridden)
    if shadowed := sorted(n for n in mine if hasattr(client_class, n) or hasattr(client, n)):
        problems.append(f"the subclass's own names {shadowed} now exist in Client too")
    return problems


def _fail_message(problems: list[str]) -> str:
    return (
        f"paho-mqtt {version('paho-mqtt')} changed internals the collector's receive path"
        f" relies on: {'; '.join(problems)}; re-test ingest/paho_client.py before raising"
        " the pin"
    )


def test_paho_internals_are_as_tested() -> None:
    problems = internal_problems(paho, BurstReadingClient, PAHO_INTERNALS)
    assert not problems, _fail_message(problems)


def test_paho_internals_in_packet_is_what_the_subclass_sets() -> None:
    seen: list[tuple[str, ...]] = []

    class Spy(BurstReadingClient):
        def _packet_handle(self) -> MQTTErrorCode:
            seen.append(tuple(self._in_packet))
            return super()._packet_handle()

    client = Spy(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    assert client._handle_with_paho(_PINGRESP, b"") == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert seen == [PAHO_INTERNALS.in_packet_keys], "the packet handed to paho"
    assert tuple(client._in_packet) == PAHO_INTERNALS.in_packet_keys, "the idle state after it"


def test_paho_internals_checker_reports_a_changed_paho() -> None:
    class ChangedClient(paho.Client):
        def _easy_log(self, level: int, message: str, *args: Any) -> None:  # renamed fmt
            pass

        def _recv_into(self) -> None:  # a name the subclass defines for itself
            pass

    names = {n: getattr(paho, n) for n in PAHO_INTERNALS.module_names if n != "time_func"}
    changed = SimpleNamespace(**names, Client=ChangedClient)
    problems = internal_problems(changed, BurstReadingClient, PAHO_INTERNALS)
    assert problems == [
        "no time_func in paho.mqtt.client",
        "Client._easy_log(level, message, *args), not (level, fmt, *args)",
        "the subclass's own names ['_recv_into'] now exist in Client too",
    ]
    message = _fail_message(problems)
    assert message.startswith("paho-mqtt 2.")
    assert "re-test ingest/paho_client.py before raising the pin" in message
