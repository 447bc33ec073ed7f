"""The schema model behind the WorldModel interface: its StepFn (and one step of mctx's
recurrent_fn over it) equals the task's exact dynamics on hand-made grids, MCTS on it takes the
push a hand count says is best, fitting through the registry recovers the dynamics, and bad
input is named."""

import functools
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs.discrete_arm import (
    LAYOUTS,
    arm_rules,
    grid_state,
    push_arm_spec,
    push_next,
)
from prototypes.envs.schema_world import sample_transitions
from prototypes.models import registry
from prototypes.models.schema import SchemaModelConfig, rules_to_state
from prototypes.planning.mcts import MCTSConfig, make_mcts_search, make_recurrent_fn
from prototypes.types import Transition

PX, MX, PY, MY = range(4)
EYE = np.eye(4, dtype=np.float32)


@functools.cache
def _model(name: str = "two_blocks"):
    spec = push_arm_spec(LAYOUTS[name])
    model = registry.make_model("schema", None, spec)
    world, rules = arm_rules()
    state = rules_to_state(world, rules, SchemaModelConfig().max_schemas)
    return spec, replace(model, predict=jax.jit(model.predict)), state


def _flat(s):
    return jnp.asarray(s.reshape(1, -1), jnp.float32)


def test_step_and_one_recurrent_step_equal_push_next_by_hand():
    spec, model, state = _model()
    walls = LAYOUTS["two_blocks"].walls
    # gripper (5, 1), blocks (5, 2) and (1, 5), goals (5, 3) and (2, 2): +x pushes the first
    # block onto its goal (reward 1, one goal left: not done); -y moves the gripper up to
    # (4, 1); a block against the L wall ((3, 3) is wall): +y from (1, 3) is refused
    s = grid_state(walls, (5, 1), [(5, 2), (1, 5)], [(5, 3), (2, 2)])
    for a, reward in ((PX, 1.0), (MY, 0.0), (MX, 0.0), (PY, 0.0)):
        out = model.predict(state, jax.random.key(0), _flat(s), jnp.asarray(EYE[a][None]))
        np.testing.assert_array_equal(np.asarray(out.obs[0]).reshape(s.shape), push_next(s, a))
        assert float(out.reward[0]) == reward and not bool(out.done[0])
    blocked = grid_state(walls, (1, 3), [(2, 3), (5, 5)], [(5, 4), (1, 1)])
    out = model.predict(state, jax.random.key(0), _flat(blocked), jnp.asarray(EYE[PY][None]))
    np.testing.assert_array_equal(np.asarray(out.obs[0]).reshape(s.shape), blocked)
    # one step of the MCTS recurrent_fn (codebook eye(4), index 0 = +x): the same next grid as
    # embedding, reward 1, discount gamma (not done), zero value and uniform prior
    step_fn = functools.partial(model.predict, state)
    book = jnp.asarray(EYE)
    rec = make_recurrent_fn(
        step_fn, book, 0.9, lambda x: jnp.zeros((1, 4)), lambda k, x: jnp.zeros(1)
    )
    out, emb = rec((), jax.random.key(1), jnp.array([PX]), _flat(s))
    np.testing.assert_array_equal(np.asarray(emb[0]).reshape(s.shape), push_next(s, PX))
    np.testing.assert_allclose(np.asarray(out.reward), [1.0])
    np.testing.assert_allclose(np.asarray(out.discount), [0.9], rtol=1e-6)


@pytest.mark.slow  # compiles predict for two grid sizes
def test_the_last_goal_ends_the_episode_and_the_model_is_lifted_across_grid_sizes():
    spec, model, state = _model("train")
    s = grid_state(LAYOUTS["train"].walls, (2, 1), [(2, 2)], [(2, 3)])
    out = model.predict(state, jax.random.key(0), _flat(s), jnp.asarray(EYE[PX][None]))
    assert float(out.reward[0]) == 1.0 and bool(out.done[0])
    # the same fitted state on the 10 x 10 map (400 inputs instead of 256): same rules
    big = LAYOUTS["big_three_blocks"]
    s = grid_state(big.walls, (8, 1), [(8, 2), (2, 2), (2, 6)], [(8, 4), (1, 1), (6, 5)])
    spec_big = push_arm_spec(big)
    model_big = registry.make_model("schema", None, spec_big)
    for a in range(4):
        out = model_big.predict(state, jax.random.key(0), _flat(s), jnp.asarray(EYE[a][None]))
        np.testing.assert_array_equal(np.asarray(out.obs[0]).reshape(s.shape), push_next(s, a))


@pytest.mark.slow  # compiles a 64-simulation search
def test_mcts_on_the_schema_model_takes_the_push_onto_the_goal():
    # gripper (5, 1), block (5, 2), goal (5, 3): +x covers the goal now (return 1, done); every
    # other first action needs at least 4 more steps, worth at most 0.9^4 < 1 with gamma 0.9
    spec, model, state = _model("train")
    s = grid_state(LAYOUTS["train"].walls, (5, 1), [(5, 2)], [(5, 3)])
    cfg = MCTSConfig(num_simulations=64, max_depth=6, gamma=0.9, value="zero", gumbel_scale=0.0)
    search = make_mcts_search(cfg, EYE)
    out = search(jax.random.key(0), _flat(s), functools.partial(model.predict, state))
    assert int(out.index[0]) == PX


@pytest.mark.slow  # the schema learner on 1,600 transitions: a few seconds
def test_fit_through_the_registry_recovers_the_dynamics():
    # i.i.d. random 6 x 6 grids under the true schemas (every attribute of every cell
    # independent, as in tests/models/test_schema.py); the fitted model then steps hand-made
    # arm grids exactly as push_next does
    world, rules = arm_rules()
    rng = np.random.default_rng(0)
    x, a, x1, _ = sample_transitions(world, rules, rng, 1600, (6, 6), (0.2, 0.25, 0.3, 0.2))
    spec = push_arm_spec(LAYOUTS["train"])
    model = registry.make_model("schema", None, spec)
    flat = lambda g: jnp.asarray(g.reshape(len(g), -1), jnp.float32)  # noqa: E731
    data = Transition(
        obs=flat(x),
        action=jnp.asarray(EYE[a]),
        reward=jnp.zeros(len(a)),
        next_obs=flat(x1),
        done=jnp.zeros(len(a), bool),
    )
    state = model.init(jax.random.key(0), jax.tree.map(lambda v: v[0], data))
    state, metrics = model.fit(state, jax.random.key(1), data)
    # 32 = per direction: gripper off 2, gripper on 2, block off/on 1 each, solid off/on 1 each
    assert int(metrics["model/schemas"]) == 32 and int(metrics["model/leftover"]) == 0
    walls = LAYOUTS["train"].walls
    s = grid_state(walls, (5, 1), [(5, 2), (2, 5), (1, 2)], [(5, 3)])
    for act in range(4):
        out = model.predict(state, jax.random.key(0), _flat(s), jnp.asarray(EYE[act][None]))
        np.testing.assert_array_equal(np.asarray(out.obs[0]).reshape(s.shape), push_next(s, act))


def test_bad_input_is_named():
    spec, model, state = _model("train")
    with pytest.raises(ValueError, match="observation size 250 is not W \\* W \\* 4"):
        model.predict(state, jax.random.key(0), jnp.zeros((1, 250)), jnp.asarray(EYE[:1]))
    world, rules = arm_rules()
    with pytest.raises(ValueError, match="32 attribute schemas do not fit max_schemas=10"):
        rules_to_state(world, rules, 10)
    with pytest.raises(ValueError, match="max_schemas must be >= 1"):
        SchemaModelConfig(max_schemas=0)
