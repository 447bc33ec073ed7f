"""Learned schemas as AND/OR factor graphs exported to pgmpy: exact inference there agrees with
evaluating the schemas directly."""

import numpy as np
import pytest

from prototypes.envs.schema_world import ground, holds_any, push_world, sample_states
from prototypes.graphs.pgmpy_io import exact_marginals, to_pgmpy_factor_graph
from prototypes.models.schema import schema_factor_graph


def test_event_graph_exports_and_agrees_with_the_schemas():
    spec, rules = push_world()
    graph = schema_factor_graph(spec, rules, "off:block")
    # 4 schemas (one per direction): 4 AND + 1 OR, actions tied to "action" (4 action literals),
    # negative literals tied to their attribute
    assert sum(v.name.startswith("schema") for v in graph.variables) == 4
    to_pgmpy_factor_graph(graph).check_model()
    rng = np.random.default_rng(0)
    states = sample_states(spec, rng, 6, (5, 5), (0.3, 0.4, 0.2, 0.2))
    cell = (2, 2)
    attrs = sorted({v.name for v in graph.variables if "@" in v.name and " " not in v.name})
    checked = set()
    for s in states:
        for a in range(len(spec.actions)):
            feats = ground(spec, s[None], np.array([a]))[0][cell]
            expected = bool(holds_any(rules.off[1], feats[None])[0])
            evidence = {"action": spec.actions[a]}
            for name in attrs:  # "block@(0,1)" -> that cell's attribute
                attribute, off = name.split("@")
                dr, dc = (int(x) for x in off.strip("()").split(","))
                evidence[name] = int(s[cell[0] + dr, cell[1] + dc, spec.attribute_index(attribute)])
            p = exact_marginals(graph, evidence)["off:block"]
            assert p[1] == pytest.approx(float(expected), abs=1e-9)
            checked.add(expected)
    assert checked == {True, False}


def test_event_without_schemas_and_unknown_event():
    spec, rules = push_world()
    assert schema_factor_graph(spec, rules, "on:wall") is None
    with pytest.raises(ValueError, match="unknown event 'on:colour'"):
        schema_factor_graph(spec, rules, "on:colour")
