"""contracts — the machine-readable contracts every part of the harness shares.

A contract profile (YAML, `contracts/profiles/`) maps a chat API's abstract operations to HTTP
calls and says what its event streams look like: their event kinds, grammar, join rule and field
rules. The conformance suite judges an implementation by it, the load harness drives it, and the
mock dialects' load profiles (`contracts/dialects/`) use the same format. Here too: the event
grammar matcher, a lean incremental SSE splitter (`EventSplitter`), the `{template}` engine and
JSON paths, the YAML reader whose errors name the file and the field, the check catalogue
(`checks.yaml`), the run settings a run is told about the implementation (`SETTINGS`, each with
its default and meaning) and the bearer tokens the contracts take.

Pure data and pure functions; this package imports no other package of the harness.
"""

from ._catalog import CATALOG, CheckInfo, Citation
from ._event_splitter import EventSplitter
from ._grammar import Grammar, GrammarError, GrammarMatcher, GrammarVerdict
from ._paths import field_value, json_path, json_values
from ._profiles import (
    AUTH_KINDS,
    BASE_VARIABLES,
    FIELD_RULES,
    REQUEST_RULES,
    Call,
    Join,
    KindRule,
    Operation,
    Profile,
    RequestField,
    StreamSpec,
    extend_profile,
    load_profile,
    normalize,
    parse_profile,
)
from ._registry import (
    DIALECT_PROFILE_DIR,
    PROFILE_DIR,
    contract_profiles,
    profile_file,
    register_profile,
    unregister_profile,
)
from ._settings import DEFAULT_SETTINGS, SETTINGS, Setting
from ._spec import Spec, SpecError, find_spec_file, read_yaml
from ._template import TemplateError, names_in, render
from ._tokens import mint_token, token_subject, unsigned_token

__all__ = [
    "AUTH_KINDS",
    "BASE_VARIABLES",
    "CATALOG",
    "DEFAULT_SETTINGS",
    "DIALECT_PROFILE_DIR",
    "FIELD_RULES",
    "PROFILE_DIR",
    "REQUEST_RULES",
    "SETTINGS",
    "Call",
    "CheckInfo",
    "Citation",
    "EventSplitter",
    "Grammar",
    "GrammarError",
    "GrammarMatcher",
    "GrammarVerdict",
    "Join",
    "KindRule",
    "Operation",
    "Profile",
    "RequestField",
    "Setting",
    "Spec",
    "SpecError",
    "StreamSpec",
    "TemplateError",
    "contract_profiles",
    "extend_profile",
    "field_value",
    "find_spec_file",
    "json_path",
    "json_values",
    "load_profile",
    "mint_token",
    "names_in",
    "normalize",
    "parse_profile",
    "profile_file",
    "read_yaml",
    "register_profile",
    "render",
    "token_subject",
    "unregister_profile",
    "unsigned_token",
]
