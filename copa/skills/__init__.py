"""Skills: Python functions in a folder that become safe, typed tools.

Skill authors need only ``from copa.skills import skill``. This module stays tiny because every
worker imports it; the rest (the registry ``Skills``, ``SkillInfo``, ``lint_skills``, ``install_skill``, the MCP
server's ``serve_stdio``) is loaded on first use. No export shares a submodule's name: importing
``copa.skills.lint`` binds ``lint`` on this package to the module, and the function would be lost.
"""

from copa.exports import lazy
from copa.skills.decorator import SkillMeta, skill

__all__ = ["SkillInfo", "SkillMeta", "SkillTool", "Skills", "install_skill", "lint_skills", "serve_stdio", "skill"]

__getattr__ = lazy(__name__, {"Skills": "copa.skills.registry", "SkillInfo": "copa.skills.registry",
                              "SkillTool": "copa.skills.registry", "lint_skills": "copa.skills.lint:lint",
                              "install_skill": "copa.skills.install:install",
                              "serve_stdio": "copa.skills.mcp_server"})
