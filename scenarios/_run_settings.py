"""What a run of one profile assumes about the implementation: `python -m scenarios settings PROFILE`.

A team pointing the suite at its own backend must first know which of its values the run needs
(its heartbeat interval, its rate limit, a model its test user may use) and what the run assumes
when not told. This lists each setting with the value a run would use, where that value comes from
(the table in `contracts.SETTINGS`, the profile's own `settings:`) and which of the scenarios the
profile can run it affects. Pure: the command line prints what `describe_settings` returns.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass

from contracts import SETTINGS, Profile, names_in

from ._scenarios import Scenario

WIDTH = 100
_ORIGINS = {"default": "default", "profile": "the profile's", "profile-specific": "profile-specific"}


@dataclass(frozen=True)
class SettingRow:
    """One setting as a run of a profile would use it."""

    name: str
    value: str | None  # None: not set (the scenarios that need it are not applicable)
    origin: str  # "default", "profile" (its `settings:` replaces the default) or "profile-specific"
    meaning: str
    scenarios: tuple[str, ...]  # runnable scenarios that need it, wait on it or name its variables
    operations: tuple[str, ...]  # the profile's operations whose calls name its variables


def setting_rows(profile: Profile, scenarios: Iterable[Scenario]) -> list[SettingRow]:
    """Every setting a run of `profile` uses: the table's, in its order, then the profile's own."""
    runnable = [s for s in scenarios if not s.missing(profile)]
    rows = []
    for name in [*SETTINGS, *(key for key in profile.settings if key not in SETTINGS)]:
        known = SETTINGS.get(name)
        variables = set(known.variables) if known else set()
        if name in profile.settings:
            value, origin = profile.settings[name], "profile" if known else "profile-specific"
        else:
            value, origin = (known.default if known else None), "default"
        rows.append(
            SettingRow(
                name=name,
                value=value,
                origin=origin,
                meaning=known.meaning if known else "the profile's own setting (for its own scenarios)",
                scenarios=tuple(s.name for s in runnable if _uses(s, name, variables)),
                operations=tuple(op.name for op in profile.operations.values() if variables & names_in(str(op.calls))),
            )
        )
    return rows


def _uses(scenario: Scenario, name: str, variables: set[str]) -> bool:
    """The scenario needs the setting, waits on it, or names a variable the setting fills."""
    if name in scenario.settings or any(step.wait_s == name for step in scenario.steps):
        return True
    text = str([scenario.mock_fault, *((s.variables, s.headers, s.json_add, s.expect) for s in scenario.steps)])
    return bool(variables & names_in(text))


def describe_settings(profile: Profile, scenarios: Iterable[Scenario]) -> str:
    """The settings command's text: each setting, its value and origin, its meaning, what it affects."""
    lines = [
        f"Settings of a run of the profile {profile.name} ({profile.source}).",
        "Tell the run your implementation's values with --setting NAME=VALUE (repeatable), e.g.",
        f"  python -m scenarios run --profile {profile.name} ... --setting heartbeat_s=5",
        "",
    ]
    for row in setting_rows(profile, scenarios):
        if row.value is None:
            lines.append(f"{row.name}: not set (what needs it is not applicable until --setting gives it)")
        else:
            lines.append(f"{row.name} = {row.value}  ({_ORIGINS[row.origin]})")
        lines.extend(_wrapped(row.meaning))
        if row.operations:
            lines.extend(_wrapped(f"in the calls of: {', '.join(row.operations)}"))
        if row.scenarios:
            lines.extend(_wrapped(f"scenarios: {', '.join(row.scenarios)}"))
    return "\n".join(lines)


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
