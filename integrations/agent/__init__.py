"""Agent plugins: one module per coding-agent CLI, each registering itself on import.

``common`` holds what they share: settings, transcript tail reading, terminal heuristics, and
``CliAgent``, the base whose hooks each plugin fills in (see docs/AGENTS.md).
"""

MODULES = (
    "integrations.agent.claude_code",
    "integrations.agent.codex",
    "integrations.agent.aider",
    "integrations.agent.opencode",
    "integrations.agent.gemini",
    "integrations.agent.custom",
)
