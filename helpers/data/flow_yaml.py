"""A generated flow as the YAML document the workflow task retrieves (:func:`flow_to_yaml`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from helpers.data.flows import Flow, FlowStep, Value


def _value_yaml(v: Value):
    return v.literal if v.literal is not None else v.pill


def _step_yaml(s: FlowStep) -> dict:
    d: dict = {"id": s.sid}
    d["logic" if s.step.role in ("branch", "loop") else "action"] = s.step.name
    if s.step.category == "spoke":
        d["spoke"] = s.step.system
    if s.table is not None:
        d["table"] = s.table.name
    if s.cond is not None:
        d["condition"] = f"{s.cond.field.name} = {_value_yaml(s.cond)}"
    if s.values:
        key = "conditions" if s.step.role in ("lookup", "lookup_many") else (
            "inputs" if s.step.role == "integration" else "values")
        d[key] = {v.field.name: _value_yaml(v) for v in s.values}
    if s.who is not None:
        target = f"trigger.record.{s.who.field.name}" + (".manager" if s.who.via_manager else "")
        d["inputs" if "inputs" not in d else "recipients"] = {"to": target}
    if s.duration is not None:
        d["inputs"] = {"duration": f"{s.duration}d"}
    if s.children:
        d["then" if s.step.role == "branch" else "do"] = [_step_yaml(c) for c in s.children]
    return d


def flow_to_yaml(flow: Flow) -> str:
    """The flow as the YAML document the workflow task retrieves."""
    trig: dict = {"type": flow.trigger.kind}
    if flow.trigger.table is not None:
        trig["table"] = flow.trigger.table.name
    if flow.trigger.cond is not None:
        trig["condition"] = f"{flow.trigger.cond.field.name} = {_value_yaml(flow.trigger.cond)}"
    if flow.trigger.schedule is not None:
        trig["every"] = f"{flow.trigger.schedule}d"
    doc = {"name": flow.name, "domain": flow.domain.domain, "trigger": trig,
           "steps": [_step_yaml(s) for s in flow.steps]}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
