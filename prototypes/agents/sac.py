"""Soft actor-critic (Haarnoja et al. 2018) as pure functions over a `SACState` pytree.

Twin Q networks with target copies updated by Polyak averaging, a tanh-squashed Gaussian policy,
and automatic entropy tuning (the temperature alpha is learned so that the policy's entropy
tracks `target_entropy = -target_entropy_scale * A`).

Actions: the policy and the critics work in the unit box [-1, 1]^A; `act` maps policy samples to
the env's bounds and `update` maps the env actions stored in a batch back to the unit box, so
target entropy and network inputs do not depend on the task's action scale.

The building blocks (`soft_bellman_target`, `tanh_gaussian_log_prob`, `polyak_update`,
`critic_loss`, `actor_loss`, `alpha_loss`) are plain functions that the tests check against hand
computations. `soft_q_target`, `critic_objective` and `actor_objective` apply them to a batch
through the networks, every loss is minimised by the one optimiser step `gradient_step`, and
`make_sac(cfg, spec)` composes these into one jitted `update`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from prototypes.config import arg, check
from prototypes.envs.registry import EnvSpec
from prototypes.types import Array, Bool, Float, Metrics, Params, PRNGKey, Transition

ApplyFn = Callable[..., Any]  # a Flax module's apply: (params, *inputs) -> outputs

__all__ = [
    "SACConfig",
    "SACState",
    "SAC",
    "make_sac",
    "Actor",
    "Critic",
    "soft_bellman_target",
    "tanh_gaussian_log_prob",
    "sample_tanh_gaussian",
    "polyak_update",
    "critic_loss",
    "actor_loss",
    "alpha_loss",
    "gradient_step",
    "unit_to_env",
    "env_to_unit",
    "twin_q",
    "soft_q_target",
    "critic_objective",
    "actor_objective",
    "alpha_objective",
]

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclass(frozen=True)
class SACConfig:
    hidden_size: int = arg(256, "width of the actor's and critics' hidden layers")
    hidden_layers: int = arg(2, "hidden layers per network")
    actor_lr: float = arg(3e-4, "actor Adam learning rate")
    critic_lr: float = arg(3e-4, "critic Adam learning rate")
    alpha_lr: float = arg(3e-4, "temperature Adam learning rate")
    gamma: float = arg(0.99, "discount")
    tau: float = arg(0.005, "Polyak rate: target <- tau * online + (1 - tau) * target")
    init_alpha: float = arg(1.0, "initial entropy temperature")
    target_entropy_scale: float = arg(1.0, "target entropy = -scale * action dim")
    batch_size: int = arg(256, "transitions per gradient step")

    def __post_init__(self) -> None:
        check(self.hidden_size >= 1, f"sac.hidden_size must be >= 1, got {self.hidden_size}")
        check(self.hidden_layers >= 1, f"sac.hidden_layers must be >= 1, got {self.hidden_layers}")
        for name in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha"):
            value = getattr(self, name)
            check(value > 0, f"sac.{name} must be > 0, got {value}")
        check(0.0 < self.gamma <= 1.0, f"sac.gamma must be in (0, 1], got {self.gamma}")
        check(0.0 < self.tau <= 1.0, f"sac.tau must be in (0, 1], got {self.tau}")
        check(self.batch_size >= 1, f"sac.batch_size must be >= 1, got {self.batch_size}")


# --- networks -----------------------------------------------------------------------------------


class Actor(nn.Module):
    """obs [B, O] -> mean [B, A], log_std [B, A] (log_std squashed into [LOG_STD_MIN, MAX])."""

    act_dim: int
    hidden_size: int
    hidden_layers: int

    @nn.compact
    def __call__(self, obs: Float[Array, "B O"]):
        x = obs
        for _ in range(self.hidden_layers):
            x = nn.relu(nn.Dense(self.hidden_size)(x))
        mean = nn.Dense(self.act_dim)(x)
        log_std = jnp.tanh(nn.Dense(self.act_dim)(x))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1.0)
        return mean, log_std


class Critic(nn.Module):
    """(obs [B, O], unit action [B, A]) -> Q [B]. Two independent copies make the twin."""

    hidden_size: int
    hidden_layers: int

    @nn.compact
    def __call__(self, obs: Float[Array, "B O"], action: Float[Array, "B A"]):
        x = jnp.concatenate([obs, action], axis=-1)
        for _ in range(self.hidden_layers):
            x = nn.relu(nn.Dense(self.hidden_size)(x))
        return nn.Dense(1)(x)[..., 0]


# --- the math, for one batch --------------------------------------------------------------------


def tanh_gaussian_log_prob(
    mean: Float[Array, "... A"], log_std: Float[Array, "... A"], pre_tanh: Float[Array, "... A"]
) -> Float[Array, ...]:
    """log pi(tanh(u)) for u ~ N(mean, exp(log_std)^2): the Gaussian log-density of u minus
    sum log(1 - tanh(u)^2), the latter computed stably as 2 (log 2 - u - softplus(-2u))."""
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    gauss = -0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.sum(gauss - log_det, axis=-1)


def sample_tanh_gaussian(
    key: PRNGKey, mean: Float[Array, "... A"], log_std: Float[Array, "... A"]
) -> tuple[Float[Array, "... A"], Float[Array, ...]]:
    """A reparameterised sample tanh(mean + std * eps) in (-1, 1)^A and its log-prob.
    The key is consumed."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(u), tanh_gaussian_log_prob(mean, log_std, u)


def soft_bellman_target(
    reward: Float[Array, " B"],
    done: Bool[Array, " B"],
    next_q1: Float[Array, " B"],
    next_q2: Float[Array, " B"],
    next_log_prob: Float[Array, " B"],
    alpha: Float[Array, ""],
    gamma: float,
) -> Float[Array, " B"]:
    """y = r + gamma * (1 - done) * (min(Q1', Q2') - alpha * log pi(a' | s'))."""
    soft_v = jnp.minimum(next_q1, next_q2) - alpha * next_log_prob
    return reward + gamma * (1.0 - done.astype(reward.dtype)) * soft_v


def polyak_update(online: Params, target: Params, tau: float) -> Params:
    """target <- tau * online + (1 - tau) * target, leaf by leaf."""
    return jax.tree.map(lambda o, t: tau * o + (1.0 - tau) * t, online, target)


def critic_loss(q1: Float[Array, " B"], q2: Float[Array, " B"], target: Float[Array, " B"]):
    """Sum over the twins of the mean squared TD error (target held fixed)."""
    target = jax.lax.stop_gradient(target)
    return jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2)


def actor_loss(
    q1: Float[Array, " B"], q2: Float[Array, " B"], log_prob: Float[Array, " B"], alpha
) -> Float[Array, ""]:
    """E[alpha * log pi(a|s) - min(Q1, Q2)(s, a)] for a ~ pi (reparameterised)."""
    return jnp.mean(alpha * log_prob - jnp.minimum(q1, q2))


def alpha_loss(
    log_alpha: Float[Array, ""], log_prob: Float[Array, " B"], target_entropy: float
) -> Float[Array, ""]:
    """-log_alpha * E[log pi + target_entropy]: alpha grows when entropy falls below target."""
    return -log_alpha * jnp.mean(jax.lax.stop_gradient(log_prob) + target_entropy)


def gradient_step(
    loss_fn: Callable[..., tuple[Float[Array, ""], Any]],
    tx: optax.GradientTransformation,
    params: Params,
    opt_state: optax.OptState,
    *loss_args: Any,
) -> tuple[Params, optax.OptState, Float[Array, ""], Any]:
    """One optimiser step on `loss_fn(params, *loss_args) -> (loss, aux)`, differentiated in
    `params` only (the other arguments are held fixed).

    Returns:
        (updated params, updated optimiser state, the loss at the old params, its aux).
    """
    (value, aux), grads = jax.value_and_grad(lambda p: loss_fn(p, *loss_args), has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value, aux


def unit_to_env(
    unit: Float[Array, "B A"], low: Float[Array, " A"], high: Float[Array, " A"]
) -> Float[Array, "B A"]:
    """Map [-1, 1]^A affinely onto the env's box [low, high]."""
    lo, hi = jnp.broadcast_to(low, unit.shape), jnp.broadcast_to(high, unit.shape)
    return lo + (unit + 1.0) * 0.5 * (hi - lo)


def env_to_unit(
    action: Float[Array, "B A"], low: Float[Array, " A"], high: Float[Array, " A"]
) -> Float[Array, "B A"]:
    """The inverse of `unit_to_env`, clipped to [-1, 1]^A."""
    lo, hi = jnp.broadcast_to(low, action.shape), jnp.broadcast_to(high, action.shape)
    return jnp.clip(2.0 * (action - lo) / (hi - lo) - 1.0, -1.0, 1.0)


def twin_q(
    critic_apply: ApplyFn,
    params: Params,
    obs: Float[Array, "B O"],
    unit_action: Float[Array, "B A"],
) -> tuple[Float[Array, " B"], Float[Array, " B"]]:
    """Q1, Q2 of the twin-stacked critic params (leading dim 2)."""
    q = jax.vmap(critic_apply, in_axes=(0, None, None))(params, obs, unit_action)
    return q[0], q[1]


def soft_q_target(
    actor_apply: ApplyFn,
    critic_apply: ApplyFn,
    actor_params: Params,
    target_critic_params: Params,
    key: PRNGKey,
    batch: Transition,
    alpha: Float[Array, ""],
    gamma: float,
) -> Float[Array, " B"]:
    """`soft_bellman_target` with a' ~ pi(. | s') and the target critics at (s', a').
    The key is consumed."""
    next_mean, next_log_std = actor_apply(actor_params, batch.next_obs)
    next_action, next_logp = sample_tanh_gaussian(key, next_mean, next_log_std)
    tq1, tq2 = twin_q(critic_apply, target_critic_params, batch.next_obs, next_action)
    return soft_bellman_target(batch.reward, batch.done, tq1, tq2, next_logp, alpha, gamma)


def critic_objective(
    critic_apply: ApplyFn,
    params: Params,
    obs: Float[Array, "B O"],
    unit_action: Float[Array, "B A"],
    target: Float[Array, " B"],
) -> tuple[Float[Array, ""], tuple[Float[Array, " B"], Float[Array, " B"]]]:
    """`critic_loss` of the twins at (obs, unit_action); aux (Q1, Q2)."""
    q1, q2 = twin_q(critic_apply, params, obs, unit_action)
    return critic_loss(q1, q2, target), (q1, q2)


def actor_objective(
    actor_apply: ApplyFn,
    critic_apply: ApplyFn,
    params: Params,
    critic_params: Params,
    key: PRNGKey,
    obs: Float[Array, "B O"],
    alpha: Float[Array, ""],
) -> tuple[Float[Array, ""], Float[Array, " B"]]:
    """`actor_loss` of a reparameterised a ~ pi(. | obs) under the critics; aux log pi(a | obs).
    The key is consumed."""
    mean, log_std = actor_apply(params, obs)
    pi_action, logp = sample_tanh_gaussian(key, mean, log_std)
    pq1, pq2 = twin_q(critic_apply, critic_params, obs, pi_action)
    return actor_loss(pq1, pq2, logp, alpha), logp


def alpha_objective(
    log_alpha: Float[Array, ""], log_prob: Float[Array, " B"], target_entropy: float
) -> tuple[Float[Array, ""], None]:
    """`alpha_loss` in the (loss, aux) form of `gradient_step`; no aux."""
    return alpha_loss(log_alpha, log_prob, target_entropy), None


# --- the agent ----------------------------------------------------------------------------------


@struct.dataclass
class SACState:
    """actor, critic (twin-stacked, leading dim 2), target_critic: params; *_opt: optax states;
    log_alpha: []; step: int32 [] gradient steps taken."""

    actor: Params
    critic: Params
    target_critic: Params
    log_alpha: Float[Array, ""]
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    step: Array


@dataclass(frozen=True)
class SAC:
    """init(key) -> SACState; act(state, key, obs [B, O], deterministic) -> env action [B, A];
    update(state, key, batch [B]) -> (state, metrics), one jitted gradient step;
    policy_fn(state) -> (key, obs [B, O]) -> env action [B, A] (for imagined rollouts)."""

    init: Callable[[PRNGKey], SACState]
    act: Callable[..., Float[Array, "B A"]]
    update: Callable[[SACState, PRNGKey, Transition], tuple[SACState, Metrics]]
    policy_fn: Callable[[SACState], Callable[[PRNGKey, Float[Array, "B O"]], Float[Array, "B A"]]]
    spec: EnvSpec


def make_sac(cfg: SACConfig, spec: EnvSpec) -> SAC:
    """Build SAC for a task; the returned functions close over plain scalars."""
    O, A = spec.obs_dim, spec.act_dim
    actor_net = Actor(A, cfg.hidden_size, cfg.hidden_layers)
    critic_net = Critic(cfg.hidden_size, cfg.hidden_layers)
    actor_tx, critic_tx, alpha_tx = (
        optax.adam(cfg.actor_lr),
        optax.adam(cfg.critic_lr),
        optax.adam(cfg.alpha_lr),
    )
    gamma, tau = cfg.gamma, cfg.tau
    target_entropy = -cfg.target_entropy_scale * A
    low = jnp.asarray(np.asarray(spec.action_low, np.float32))
    high = jnp.asarray(np.asarray(spec.action_high, np.float32))
    log_alpha0 = float(np.log(cfg.init_alpha))

    to_env = functools.partial(unit_to_env, low=low, high=high)
    to_unit = functools.partial(env_to_unit, low=low, high=high)
    q_target = functools.partial(soft_q_target, actor_net.apply, critic_net.apply)
    critic_obj = functools.partial(critic_objective, critic_net.apply)
    actor_obj = functools.partial(actor_objective, actor_net.apply, critic_net.apply)

    def init(key: PRNGKey) -> SACState:
        key_actor, key_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, O), jnp.float32), jnp.zeros((1, A), jnp.float32)
        actor = actor_net.init(key_actor, obs)
        critic = jax.vmap(critic_net.init, in_axes=(0, None, None))(
            jax.random.split(key_critic, 2), obs, act
        )
        log_alpha = jnp.asarray(log_alpha0, jnp.float32)
        return SACState(
            actor=actor,
            critic=critic,
            target_critic=critic,
            log_alpha=log_alpha,
            actor_opt=actor_tx.init(actor),
            critic_opt=critic_tx.init(critic),
            alpha_opt=alpha_tx.init(log_alpha),
            step=jnp.int32(0),
        )

    def policy_fn(state: SACState):
        def policy(key: PRNGKey, obs: Float[Array, "B O"]) -> Float[Array, "B A"]:
            mean, log_std = actor_net.apply(state.actor, obs)
            unit, _ = sample_tanh_gaussian(key, mean, log_std)
            return to_env(unit)

        return policy

    @jax.jit
    def _act_stochastic(state: SACState, key: PRNGKey, obs):
        return policy_fn(state)(key, obs)

    @jax.jit
    def _act_deterministic(state: SACState, obs):
        mean, _ = actor_net.apply(state.actor, obs)
        return to_env(jnp.tanh(mean))

    def act(state: SACState, key: PRNGKey, obs, deterministic: bool = False):
        """Batched obs [B, O] -> env actions [B, A]; the key is consumed (unused if
        deterministic: then the action is tanh of the mean)."""
        if deterministic:
            return _act_deterministic(state, obs)
        return _act_stochastic(state, key, obs)

    @jax.jit
    def update(state: SACState, key: PRNGKey, batch: Transition) -> tuple[SACState, Metrics]:
        """One gradient step of critic, actor and temperature, then the Polyak target update.
        The actor and temperature use the critic before this step's critic update, as both
        losses are computed from the same state. The key is consumed."""
        key_next, key_pi = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        obs, unit_action = batch.obs, to_unit(batch.action)
        target = q_target(state.actor, state.target_critic, key_next, batch, alpha, gamma)
        critic, critic_opt, c_val, (q1, _) = gradient_step(
            critic_obj, critic_tx, state.critic, state.critic_opt, obs, unit_action, target
        )
        actor, actor_opt, a_val, logp = gradient_step(
            actor_obj, actor_tx, state.actor, state.actor_opt, state.critic, key_pi, obs, alpha
        )
        log_alpha, alpha_opt, t_val, _ = gradient_step(
            alpha_objective, alpha_tx, state.log_alpha, state.alpha_opt, logp, target_entropy
        )
        new_state = SACState(
            actor=actor,
            critic=critic,
            target_critic=polyak_update(critic, state.target_critic, tau),
            log_alpha=log_alpha,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
            step=state.step + 1,
        )
        metrics = {
            "sac/critic_loss": c_val,
            "sac/actor_loss": a_val,
            "sac/alpha_loss": t_val,
            "sac/alpha": alpha,
            "sac/entropy": -jnp.mean(logp),
            "sac/q": jnp.mean(q1),
        }
        return new_state, metrics

    return SAC(init=jax.jit(init), act=act, update=update, policy_fn=policy_fn, spec=spec)
