"""Skills: Python functions in a folder that become safe, typed tools.

Skill authors need only ``from copa.skills import skill``. This module stays tiny because every
worker imports it; the rest (the registry ``Skills``, ``SkillInfo``, ``lint``, ``install``, the MCP
server's ``serve_stdio``) is loaded on first use.
"""

from copa.exports import lazy
from copa.skills.decorator import SkillMeta, skill

__all__ = ["SkillInfo", "SkillMeta", "SkillTool", "Skills", "install", "lint", "serve_stdio", "skill"]

__getattr__ = lazy(__name__, {"Skills": "copa.skills.registry", "SkillInfo": "copa.skills.registry",
                              "SkillTool": "copa.skills.registry", "lint": "copa.skills.lint",
                              "install": "copa.skills.install",
                              "serve_stdio": "copa.skills.mcp_server"})
