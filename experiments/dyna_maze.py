"""Dyna-Q and Dyna-Q+ on the mazes of Sutton & Barto (2nd ed.), Examples 8.1-8.3.

--maze dyna      Figure 8.2: mean steps per episode against episode for n = 0, 5, 50 planning
                 steps (30 runs, 50 episodes, alpha 0.1, epsilon 0.1, gamma 0.95, Q0 = 0,
                 random tie-breaking). Episode 1 is plotted apart, as in the book.
--maze blocking  Figure 8.4: cumulative reward against time step, Dyna-Q vs Dyna-Q+, over 3000
                 steps; the short path is blocked at step 1000.
--maze shortcut  Figure 8.5: the same over 6000 steps; a shortcut opens at step 3000.

The book does not state n, alpha or kappa for Figures 8.4 and 8.5. The defaults here (n = 10 on
the blocking maze, n = 50 on the shortcut maze, alpha = 1, which is exact for a deterministic
maze, kappa = 1e-3) reproduce the figures' shape; every one can be set by flag.

One unit of work is one (agent, n, run): a fresh agent trained on the maze. Each finished unit
is one line of metrics.jsonl and a checkpoint that counts the finished units, so `--resume`
skips them and recomputes nothing. Run r of every agent and n uses the generator seeded with
(seed, r) (common random numbers), so the results do not depend on the order units run in.

Examples:
    python experiments/dyna_maze.py --maze dyna --out runs/dyna_maze
    python experiments/dyna_maze.py --maze shortcut --runs 10 --out runs/shortcut
    python experiments/dyna_maze.py --maze dyna --out runs/dyna_maze --resume
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from experiments.cli import fail, one_line_warnings
from prototypes.agents.dyna_q import (
    DynaQConfig,
    episode_lengths,
    episodes_visiting,
    make_dyna_q,
    run_maze,
)
from prototypes.config import ConfigError, arg, check, to_dict
from prototypes.data.runs import CheckpointError, RunDir, RunDirError, RunWriteError, open_run
from prototypes.envs import maze as maze_lib

TABLE_EPISODES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 50)  # columns of the printed table
AGENTS = {"dyna_q": "Dyna-Q", "dyna_q_plus": "Dyna-Q+"}
_BOOK = {  # maze -> defaults for the fields left as None
    "dyna": {"planning_steps": (0, 5, 50), "alpha": 0.1, "episodes": 50},
    "blocking": {"planning_steps": (10,), "alpha": 1.0, "steps": 3000},
    "shortcut": {"planning_steps": (50,), "alpha": 1.0, "steps": 6000},
}


@dataclass(frozen=True)
class DynaMazeConfig:
    """Everything that determines the results of one `dyna_maze` run directory."""

    maze: str = arg("dyna", "which maze: dyna (Ex. 8.1), blocking (Ex. 8.2), shortcut (Ex. 8.3)")
    planning_steps: tuple[int, ...] | None = arg(
        None, "planning steps n per real step, one curve each (book: dyna 0 5 50; "
        "here blocking 10, shortcut 50)")
    runs: int = arg(30, "independent runs averaged per curve")
    episodes: int | None = arg(None, "episodes per run on the dyna maze (book: 50)")
    steps: int | None = arg(None, "time steps per run on blocking/shortcut (book: 3000 / 6000)")
    switch_step: int | None = arg(
        None, "time step at which the walls change on blocking/shortcut (book: 1000 / 3000)")
    alpha: float | None = arg(None, "step size (book: 0.1 on dyna; here 1.0 on blocking/shortcut)")
    epsilon: float = arg(0.1, "exploration probability of the epsilon-greedy policy")
    gamma: float = arg(0.95, "discount factor")
    kappa: float = arg(1e-3, "Dyna-Q+ exploration bonus weight (reward + kappa*sqrt(tau))")
    seed: int = arg(0, "seed of every random generator (run r uses seed sequence (seed, r))")

    def __post_init__(self) -> None:
        check(self.maze in maze_lib.MAZE_NAMES,
              f"unknown maze {self.maze!r}; choose one of {', '.join(maze_lib.MAZE_NAMES)}")
        if self.planning_steps is not None:
            check(len(self.planning_steps) > 0, "--planning-steps needs at least one value")
            check(all(n >= 0 for n in self.planning_steps),
                  f"planning steps must be >= 0, got {list(self.planning_steps)}")
            check(len(set(self.planning_steps)) == len(self.planning_steps),
                  f"planning steps must be distinct, got {list(self.planning_steps)}")
        check(self.runs > 0, f"runs must be > 0, got {self.runs}")
        static = self.maze == "dyna"
        if static:
            check(self.steps is None and self.switch_step is None,
                  "--steps and --switch-step apply to the blocking and shortcut mazes only; "
                  "use --episodes for the dyna maze")
            check(self.episodes is None or self.episodes > 0,
                  f"episodes must be > 0, got {self.episodes}")
        else:
            check(self.episodes is None,
                  f"--episodes applies to the dyna maze only; use --steps for {self.maze}")
            check(self.steps is None or self.steps > 0, f"steps must be > 0, got {self.steps}")
            check(self.switch_step is None or self.switch_step >= 0,
                  f"switch step must be >= 0, got {self.switch_step}")
            check(self.maze_spec.switch_step < self.num_steps,
                  f"the walls change at step {self.maze_spec.switch_step}, which a run of "
                  f"{self.num_steps} steps never reaches; raise --steps")
        for n in self.n_values:  # the agent's own checks (alpha, epsilon, gamma, kappa)
            self.agent_config("dyna_q_plus", n)

    # Values the maze fills in when a field is None.
    @property
    def n_values(self) -> tuple[int, ...]:
        return tuple(self.planning_steps or _BOOK[self.maze]["planning_steps"])

    @property
    def step_size(self) -> float:
        return _BOOK[self.maze]["alpha"] if self.alpha is None else self.alpha

    @property
    def num_episodes(self) -> int | None:
        if self.maze != "dyna":
            return None
        return _BOOK["dyna"]["episodes"] if self.episodes is None else self.episodes

    @property
    def num_steps(self) -> int | None:
        if self.maze == "dyna":
            return None
        return _BOOK[self.maze]["steps"] if self.steps is None else self.steps

    @property
    def maze_spec(self) -> maze_lib.Maze:
        return maze_lib.make_maze(self.maze, switch_step=self.switch_step)  # type: ignore[arg-type]

    @property
    def agents(self) -> tuple[str, ...]:
        return ("dyna_q",) if self.maze == "dyna" else ("dyna_q", "dyna_q_plus")

    def agent_config(self, agent: str, n: int) -> DynaQConfig:
        plus = agent == "dyna_q_plus"
        return DynaQConfig(planning_steps=n, alpha=self.step_size, epsilon=self.epsilon,
                           gamma=self.gamma, plus=plus, kappa=self.kappa if plus else 0.0)

    @property
    def units(self) -> list[tuple[str, int, int]]:
        """Every (agent, n, run), in the order they run."""
        return [(a, n, r) for a in self.agents for n in self.n_values for r in range(self.runs)]


def _help(name: str) -> str:
    field = {f.name: f for f in dataclasses.fields(DynaMazeConfig)}[name]
    return field.metadata["help"]


def build_parser() -> argparse.ArgumentParser:
    """The command line; each flag's help and default come from `DynaMazeConfig` (the
    defaults that depend on the maze are None here and resolved by the config)."""
    defaults = DynaMazeConfig()
    p = argparse.ArgumentParser(
        prog="dyna_maze.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maze", choices=maze_lib.MAZE_NAMES, default=defaults.maze,
                   help=_help("maze") + " (default: %(default)s)")
    p.add_argument("--planning-steps", type=int, nargs="+", metavar="N", default=None,
                   help=_help("planning_steps"))
    p.add_argument("--runs", type=int, default=defaults.runs, metavar="INT",
                   help=_help("runs") + " (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=None, metavar="INT", help=_help("episodes"))
    p.add_argument("--steps", type=int, default=None, metavar="INT", help=_help("steps"))
    p.add_argument("--switch-step", type=int, default=None, metavar="INT",
                   help=_help("switch_step"))
    p.add_argument("--alpha", type=float, default=None, metavar="X", help=_help("alpha"))
    p.add_argument("--epsilon", type=float, default=defaults.epsilon, metavar="X",
                   help=_help("epsilon") + " (default: %(default)s)")
    p.add_argument("--gamma", type=float, default=defaults.gamma, metavar="X",
                   help=_help("gamma") + " (default: %(default)s)")
    p.add_argument("--kappa", type=float, default=defaults.kappa, metavar="X",
                   help=_help("kappa") + " (default: %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed, metavar="INT",
                   help=_help("seed") + " (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="run directory for config.json, metrics.jsonl, checkpoints/, plots/ "
                   "(default: runs/dyna_maze__<maze>__<seed>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out with the same flags, skipping finished units")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--no-plots", action="store_true",
                   help="skip drawing the figures (metrics.jsonl still has everything)")
    return p


def parse_config(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> DynaMazeConfig:
    """Build the config from flags; a bad value stops with one line and exit status 2."""
    try:
        return DynaMazeConfig(
            maze=ns.maze,
            planning_steps=None if ns.planning_steps is None else tuple(ns.planning_steps),
            runs=ns.runs, episodes=ns.episodes, steps=ns.steps, switch_step=ns.switch_step,
            alpha=ns.alpha, epsilon=ns.epsilon, gamma=ns.gamma, kappa=ns.kappa, seed=ns.seed)
    except ConfigError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits


def run_unit(cfg: DynaMazeConfig, agent_name: str, n: int, run: int) -> dict[str, Any]:
    """Train one fresh agent and summarise it as one metrics record."""
    maze = cfg.maze_spec
    agent = make_dyna_q(cfg.agent_config(agent_name, n), maze.num_states, maze_lib.NUM_ACTIONS)
    rng = np.random.default_rng([cfg.seed, run])
    _, traj = run_maze(agent, maze, rng, num_episodes=cfg.num_episodes, num_steps=cfg.num_steps)
    record: dict[str, Any] = {"agent": agent_name, "planning_steps": n, "run": run,
                              "total_steps": len(traj.reward)}
    lengths = episode_lengths(traj)
    if cfg.maze == "dyna":
        record["steps_per_episode"] = lengths.tolist()
        return record
    # Blocking/shortcut: the goal times rebuild the cumulative-reward curve exactly.
    switch = maze.switch_step
    goal_steps = (np.flatnonzero(traj.done) + 1).tolist()  # time step at which G was reached
    opened = [maze_lib.to_state(maze, c) for c in sorted(maze.walls - maze.walls_after)]
    through = episodes_visiting(traj, opened)
    after = np.asarray(goal_steps) > switch
    last = np.asarray(goal_steps) > len(traj.reward) - 1000
    record.update(
        goal_steps=goal_steps,
        reward_at_switch=int(np.sum(~after)),
        total_reward=len(goal_steps),
        episodes_after_switch=int(after.sum()),
        opened_episodes_after_switch=int(through[after].sum()),
        # Share of the episodes ending in the last 1000 steps that pass through the opened cells.
        opened_share_last_1000=float(through[last].mean()) if last.any() else 0.0,
    )
    return record


def config_dict(cfg: DynaMazeConfig) -> dict[str, Any]:
    """What config.json records: the flags, plus the values the maze filled in for None."""
    return {**to_dict(cfg), "resolved.planning_steps": list(cfg.n_values),
            "resolved.alpha": cfg.step_size, "resolved.episodes": cfg.num_episodes,
            "resolved.steps": cfg.num_steps, "resolved.switch_step": cfg.maze_spec.switch_step}


def _unit_key(record: dict[str, Any]) -> tuple[str, int, int]:
    return (record["agent"], record["planning_steps"], record["run"])


def _resume_state(run_dir: RunDir, cfg: DynaMazeConfig) -> int:
    """Units already finished; drops metrics written after the last checkpoint."""
    ckpt = run_dir.load_checkpoint()
    done = ckpt.get("completed") if isinstance(ckpt, dict) else None
    if not isinstance(done, int) or not 0 <= done <= len(cfg.units):
        raise CheckpointError(f"checkpoint {run_dir.checkpoint_path} is not a dyna_maze "
                              "checkpoint; delete the run directory to start over")
    records = run_dir.metrics()
    if len(records) < done or [_unit_key(r) for r in records[:done]] != cfg.units[:done]:
        raise CheckpointError(f"{run_dir.metrics_path} does not match the checkpoint "
                              f"({len(records)} records, {done} units finished)")
    if len(records) > done:
        run_dir.truncate_metrics(done)
    return done


def summarize(cfg: DynaMazeConfig, records: list[dict[str, Any]]) -> str:
    """The printed table: mean steps per episode (dyna), or reward and shortcut use."""
    lines = []
    if cfg.maze == "dyna":
        cols = [e for e in TABLE_EPISODES if e <= cfg.num_episodes]
        lines.append(f"mean steps per episode over {cfg.runs} runs (optimum 14)")
        lines.append("episode " + "".join(f"{e:>7d}" for e in cols))
        for n in cfg.n_values:
            lengths = np.array([r["steps_per_episode"] for r in records
                                if r["planning_steps"] == n])
            mean = lengths.mean(axis=0)
            lines.append(f"n={n:<5d} " + "".join(f"{mean[e - 1]:7.1f}" for e in cols))
        return "\n".join(lines)
    switch = cfg.maze_spec.switch_step
    lines.append(f"{cfg.maze} maze, {cfg.num_steps} steps, walls change at step {switch}, "
                 f"{cfg.runs} runs (mean +- std over runs)")
    lines.append(f"{'agent':<16}{'reward@switch':>16}{'reward@end':>16}"
                 f"{'uses new path (last 1000 steps)':>34}")
    for agent in cfg.agents:
        for n in cfg.n_values:
            rs = [r for r in records if r["agent"] == agent and r["planning_steps"] == n]
            at_switch = np.array([r["reward_at_switch"] for r in rs], dtype=float)
            total = np.array([r["total_reward"] for r in rs], dtype=float)
            share = np.array([r["opened_share_last_1000"] for r in rs])
            found = int(np.sum(share > 0.5))
            lines.append(
                f"{AGENTS[agent] + f' n={n}':<16}"
                f"{at_switch.mean():9.1f} +-{at_switch.std():4.1f}"
                f"{total.mean():9.1f} +-{total.std():4.1f}"
                f"{f'{found}/{len(rs)} runs, mean share {share.mean():.2f}':>34}")
    return "\n".join(lines)


def plot(run_dir: RunDir, cfg: DynaMazeConfig, records: list[dict[str, Any]]) -> list[str]:
    """Draw the book's figure for this maze into plots/; returns the file paths."""
    if cfg.maze == "dyna":
        curves = {}
        for n in cfg.n_values:
            lengths = np.array([r["steps_per_episode"] for r in records
                                if r["planning_steps"] == n])
            curves[f"n={n} planning steps"] = lengths.mean(axis=0)[1:]
        x = np.arange(2, cfg.num_episodes + 1)
        if len(x) == 0:
            return []
        path = run_dir.plot_curve(
            "fig8_2_steps_per_episode", x, curves, xlabel="episode",
            ylabel="steps per episode",
            title=f"Dyna maze (S&B Fig. 8.2): mean of {cfg.runs} runs, episode 1 not shown",
            hlines={"optimal: 14 steps": 14.0})
        return [str(path)]
    maze = cfg.maze_spec
    t = np.arange(1, cfg.num_steps + 1)
    every = max(1, cfg.num_steps // 600)  # plot ~600 points per curve
    curves = {}
    for agent in cfg.agents:
        for n in cfg.n_values:
            rs = [r for r in records if r["agent"] == agent and r["planning_steps"] == n]
            cum = np.mean([np.searchsorted(np.asarray(r["goal_steps"]), t, side="right")
                           for r in rs], axis=0)
            curves[f"{AGENTS[agent]} (n={n})"] = cum[every - 1::every]
    fig = {"blocking": "fig8_4_blocking", "shortcut": "fig8_5_shortcut"}[cfg.maze]
    path = run_dir.plot_curve(
        fig, t[every - 1::every], curves, xlabel="time steps", ylabel="cumulative reward",
        title=f"{cfg.maze} maze (S&B Fig. {fig[3:6].replace('_', '.')}): mean of {cfg.runs} "
        f"runs, walls change at step {maze.switch_step}")
    return [str(path)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) the experiment; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(argv)
    cfg = parse_config(parser, ns)
    out = ns.out or f"runs/dyna_maze__{cfg.maze}__{cfg.seed}"
    with one_line_warnings(parser.prog):
        try:
            run_dir = open_run(out, config_dict(cfg), resume=ns.resume, argv=argv)
            done = _resume_state(run_dir, cfg) if ns.resume else 0
        except (CheckpointError, FileExistsError, RunDirError) as e:
            parser.error(str(e))
        try:
            return _train(run_dir, cfg, ns, done)
        except RunWriteError as e:
            fail(parser.prog, str(e))
        finally:
            run_dir.close()


def _train(run_dir: RunDir, cfg: DynaMazeConfig, ns: argparse.Namespace, done: int) -> int:
    if not ns.resume:
        run_dir.save_checkpoint({"completed": 0})
    units = cfg.units
    with tqdm(total=len(units), initial=done, unit="run", disable=ns.no_progress,
              desc=f"{cfg.maze} maze") as bar:
        for i in range(done, len(units)):
            agent, n, run = units[i]
            record = run_unit(cfg, agent, n, run)
            run_dir.log(record)
            run_dir.save_checkpoint({"completed": i + 1})
            if cfg.maze == "dyna":
                summary = {"ep1": record["steps_per_episode"][0],
                           "last": record["steps_per_episode"][-1]}
            else:
                summary = {"reward": record["total_reward"]}
            bar.set_postfix(agent=agent, n=n, run=run, **summary)
            bar.update(1)

    records = run_dir.metrics()
    print(summarize(cfg, records))
    for path in [] if ns.no_plots else plot(run_dir, cfg, records):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
