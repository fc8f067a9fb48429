"""Skills: Python functions in a folder that become safe, typed tools.

Skill authors need only ``from copa.skills import skill``. This module stays tiny because every
worker imports it; the registry (``Skills``, ``SkillInfo``) is loaded on first use.
"""

from copa.skills.decorator import SkillMeta, skill

__all__ = ["skill", "SkillMeta", "Skills", "SkillInfo"]


def __getattr__(name: str):
    if name in ("Skills", "SkillInfo", "SkillTool"):
        from copa.skills import registry

        return getattr(registry, name)
    raise AttributeError(name)
