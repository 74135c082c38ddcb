"""Meta-World task names come from the package's own registry; every task has an expert."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("metaworld")

from sci_diffusion.envs.experts.metaworld_experts import (
    POLICY_NAME_EXCEPTIONS,
    MetaWorldExpert,
    _policy_classes,
    _rule_name,
    available_metaworld_experts,
    env_name_for_policy,
    metaworld_env_names,
    policy_name,
)


def test_every_registered_v3_env_gets_an_expert_and_every_expert_an_env():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    envs = set(ALL_V3_ENVIRONMENTS)
    classes = _policy_classes()
    assert set(metaworld_env_names()) == envs and len(envs) == 50
    assert {n for n in envs if policy_name(n) not in classes} == set()
    assert {c for c in classes if env_name_for_policy(c) not in envs} == set()
    assert {policy_name(n) for n in envs} == set(classes)  # one-to-one
    assert available_metaworld_experts() == sorted(envs)


def test_rule_and_exceptions_agree_with_the_packages_own_map():
    import metaworld.policies as mp

    own = getattr(mp, "ENV_POLICY_MAP", None)
    if own is None:
        pytest.skip("this metaworld has no ENV_POLICY_MAP")
    assert {n: policy_name(n) for n in own} == {n: c.__name__ for n, c in own.items()}
    # The exceptions table holds only names the rule gets wrong.
    for env_name, cls_name in POLICY_NAME_EXCEPTIONS.items():
        assert policy_name(env_name) == cls_name
        assert cls_name != _rule_name(env_name)


def test_peg_insert_side_is_accepted():
    expert = MetaWorldExpert("peg-insert-side-v3")
    assert type(expert.policy).__name__ == "SawyerPegInsertionSideV3Policy"


@pytest.mark.parametrize("bad", ["peg-insertion-side-v3", "no-such-task-v3", "push-v2"])
def test_unknown_name_lists_real_env_names(bad):
    from sci_diffusion.envs.registry import get_task

    with pytest.raises(ValueError) as err:
        MetaWorldExpert(bad)
    message = str(err.value)
    assert bad in message and "peg-insert-side-v3" in message and "reach-v3" in message
    assert "peg-insertion-side-v3" not in message.replace(repr(bad), "")
    with pytest.raises(ValueError, match="peg-insert-side-v3"):
        get_task("metaworld").make_env(0, env_name=bad)
    if bad == "peg-insertion-side-v3":
        assert "did you mean peg-insert-side-v3" in message


def test_peg_insert_side_expert_runs_in_the_one_loop():
    from sci_diffusion.envs.episodes import ExpertActor, play_episodes
    from sci_diffusion.envs.registry import get_task

    task = get_task("metaworld")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        episodes = play_episodes(task, ExpertActor.for_task(task, env_name="peg-insert-side-v3",
                                                            check=True),
                                 range(5), env_name="peg-insert-side-v3")  # fmt: skip
    # The package's policy is not perfect here (seed 1 fails; see docs/robotics.md, MT50).
    assert sum(ep.success for ep in episodes) >= 4, [ep.seed for ep in episodes if not ep.success]
