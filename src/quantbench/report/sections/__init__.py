"""The sections of report.md, one concern per module; their order and titles are the
registry ``quantbench.report.render.SECTIONS``.

Each section is ``render(ctx) -> list[str] | None``: the lines under its title (None or
an empty list: the section is left out of this report).
"""
