"""The language registry: every language is a data entry (see languages.yaml)."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterable
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

# A language's name: the key of its registry entry and what a submission's `language` says. The CRD,
# the Helm chart's values.schema.json and the model below all take it from here.
NAME_MAX_LENGTH = 32
NAME_PATTERN = rf"^[a-z][a-z0-9_+-]{{0,{NAME_MAX_LENGTH - 1}}}$"
# The PATH of every local sandbox (and so where the local back end looks for a language's toolchain).
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# A command word that names an executable on PATH (or by absolute path): no expansion, assignment or ./
_COMMAND_WORD = re.compile(r"[A-Za-z0-9_.+-]+|/[A-Za-z0-9_.+/-]+")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


# The descriptions below are the comments of the chart's values.yaml and the descriptions of its
# values.schema.json (both generated: `make generate`).
class RunLimits(_Model):
    timeout_seconds: float = Field(10, gt=0, le=300, description="default wall-clock limit of a run, in seconds")
    memory_mb: int = Field(100, ge=16, le=65536, description="default memory limit of a run, in MiB")
    max_timeout_seconds: float | None = Field(None, gt=0, le=300, description="the most seconds a request may ask for")
    max_memory_mb: int | None = Field(None, ge=16, le=65536, description="the most MiB a request may ask for")
    address_space_mb: int | None = Field(None, ge=16, description="RLIMIT_AS of a run, in MiB; defaults to memoryMb")
    processes: int = Field(64, ge=1, le=4096, description="RLIMIT_NPROC of a run (threads count)")
    open_files: int = Field(256, ge=16, le=65536, description="RLIMIT_NOFILE of a run")

    @model_validator(mode="after")
    def _maxima_cover_defaults(self) -> RunLimits:
        if self.max_timeout_seconds is not None and self.max_timeout_seconds < self.timeout_seconds:
            raise ValueError("maxTimeoutSeconds is below timeoutSeconds")
        if self.max_memory_mb is not None and self.max_memory_mb < self.memory_mb:
            raise ValueError("maxMemoryMb is below memoryMb")
        return self

    @property
    def timeout_ceiling(self) -> float:
        return self.max_timeout_seconds or self.timeout_seconds

    @property
    def memory_ceiling(self) -> int:
        return self.max_memory_mb or self.memory_mb


class CompileLimits(_Model):
    timeout_seconds: float = Field(30, gt=0, le=600, description="wall-clock limit of the compile step, in seconds")
    memory_mb: int = Field(512, ge=16, le=65536, description="memory limit of the compile step, in MiB")
    address_space_mb: int | None = Field(None, ge=16, description="RLIMIT_AS of the compiler, in MiB")
    processes: int = Field(64, ge=1, le=4096, description="RLIMIT_NPROC of the compiler")
    open_files: int = Field(256, ge=16, le=65536, description="RLIMIT_NOFILE of the compiler")
    output_file_mb: int = Field(64, ge=1, le=4096, description="RLIMIT_FSIZE of the compiler, in MiB")


# Piston's names: a language, its aliases and its runtime are lower-case words such as `c++` or `python3.11`.
PISTON_NAME_PATTERN = r"^[a-z0-9][a-z0-9+#._-]{0,31}$"
JUDGE0_ID_MAX = 2**31 - 1


class PistonRuntime(_Model):
    """How the Piston v2 API (GET /api/v2/runtimes) shows a language; see api/compat/piston.py."""

    language: str | None = Field(None, pattern=PISTON_NAME_PATTERN,
                                 description="Piston's name of the language; defaults to the entry's name")
    version: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z.+_-]+$",
                         description="the version Piston clients see and may ask for, e.g. 3.11.0")
    aliases: list[Annotated[str, Field(pattern=PISTON_NAME_PATTERN)]] = Field(
        default_factory=list, max_length=16, description="other names a Piston client may send as language")
    runtime: str | None = Field(None, pattern=PISTON_NAME_PATTERN,
                                description="Piston's runtime name (e.g. gcc), shown only when set")


class Language(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="the key of the entry")
    display_name: str = Field(min_length=1, description="name shown to users")
    version: str = Field(min_length=1, description="language version shown to users")
    image: str = Field(min_length=1, description="the image sandboxes of this language run")
    image_pull_policy: str = Field("IfNotPresent", pattern="^(Always|IfNotPresent|Never)$",
                                   description="pull policy of the image: Always, IfNotPresent or Never")
    source_file: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the file the source is written to")
    compile: str | None = Field(None, description="sh command that compiles the program (in $MONACO_BUILD_DIR)")
    run: str = Field(min_length=1, description="sh command that runs the program (in $MONACO_WORK_DIR)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment of the compiler and the program")
    requires: list[str] | None = Field(
        None,
        description="executables the local back end must find on PATH to offer the language (default: the first "
        "word of compile and run)",
    )
    compiler_options: list[str] = Field(
        default_factory=list,
        description="regular expressions of the options a submission may add to the compile command (`\"$@\"` in "
                    "it); each must match an option whole, one holding a space matches an option and its value",
    )
    limits: RunLimits = Field(RunLimits(), description="limits of a run: defaults, and the most a request may ask for")
    compile_limits: CompileLimits = Field(CompileLimits(), description="limits of the compile step")
    judge0_ids: list[Annotated[int, Field(ge=1, le=JUDGE0_ID_MAX)]] = Field(
        default_factory=list, max_length=16,
        description="the language_id values of the Judge0 API that run this language (Judge0 CE's own ids)")
    piston: PistonRuntime | None = Field(
        None, description="the Piston API's name, version and aliases; defaults to the entry's name and version")

    @property
    def piston_runtime(self) -> PistonRuntime:
        """The Piston API's view of this language: the entry's own or one made of its name and version."""
        if self.piston is None:  # the entry's own version, free text such as "gcc 12": shown, matched exactly
            return PistonRuntime.model_construct(language=self.name, version=self.version, aliases=[], runtime=None)
        return self.piston if self.piston.language else self.piston.model_copy(update={"language": self.name})

    @property
    def compiles(self) -> bool:
        return bool(self.compile)

    @property
    def executables(self) -> list[str]:
        """What the toolchain needs on PATH: `requires`, else the command word of compile and run (after an
        `exec`), where that word is a plain name (`exec "$MONACO_BUILD_DIR/main"` names none)."""
        if self.requires is not None:
            return list(self.requires)
        words = []
        for command in (self.compile, self.run):
            try:
                argv = shlex.split(command or "")
            except ValueError:
                continue
            if argv[:1] == ["exec"]:
                argv = argv[1:]
            if argv and _COMMAND_WORD.fullmatch(argv[0]) and argv[0] not in words:
                words.append(argv[0])
        return words

    def missing(self, path: str) -> list[str]:
        """The executables of `executables` that `path` (a PATH string) lacks."""
        return [exe for exe in self.executables if shutil.which(exe, path=path) is None]

    def public(self) -> dict[str, Any]:
        """What GET /languages shows."""
        return {
            "name": self.name,
            "displayName": self.display_name,
            "version": self.version,
            "compiled": self.compiles,
            "sourceFile": self.source_file,
            "compilerOptions": list(self.compiler_options),
            "limits": {
                "timeoutSeconds": self.limits.timeout_seconds,
                "memoryMb": self.limits.memory_mb,
                "maxTimeoutSeconds": self.limits.timeout_ceiling,
                "maxMemoryMb": self.limits.memory_ceiling,
            },
        }


class LanguageError(ValueError):
    """The registry file is unusable; the message says which entry and field."""


_K = TypeVar("_K", int, str)


def _unique_keys(pairs: Iterable[tuple[_K, Language]], what: str) -> dict[_K, Language]:
    """A lookup table that refuses one key on two languages (a client's id must mean one language)."""
    table: dict[_K, Language] = {}
    for key, language in pairs:
        other = table.setdefault(key, language)
        if other is not language:
            raise LanguageError(f"{what} {key!r} is given to both {other.name!r} and {language.name!r}; give it to one")
    return table


class Registry:
    def __init__(self, languages: dict[str, Language], absent: dict[str, list[str]] | None = None) -> None:
        if not languages:
            raise LanguageError("the language registry is empty")
        self._languages = dict(sorted(languages.items()))
        # Languages of the file whose toolchain is not installed here: name -> the executables missing.
        self.absent: dict[str, list[str]] = dict(sorted((absent or {}).items()))
        self._judge0 = _unique_keys(
            ((i, lang) for lang in self._languages.values() for i in lang.judge0_ids), "the Judge0 id"
        )
        self._piston = _unique_keys(
            (
                (name, lang)
                for lang in self._languages.values()
                for name in dict.fromkeys([lang.piston_runtime.language or lang.name, *lang.piston_runtime.aliases])
            ),
            "the Piston name or alias",
        )

    def installed(self, path: str) -> Registry:
        """The languages whose toolchain `path` holds (what the local back end can run); the others in `absent`."""
        absent = {lang.name: missing for lang in self if (missing := lang.missing(path))}
        if len(absent) == len(self):
            needs = "; ".join(f"{name} needs {', '.join(missing)}" for name, missing in absent.items())
            raise LanguageError(f"no language of the registry is installed here (PATH={path}): {needs}")
        return Registry({n: lang for n, lang in self._languages.items() if n not in absent}, absent)

    def not_installed(self, name: str) -> str | None:
        """Why `name` cannot run here, when it is a language of the file whose toolchain is missing."""
        missing = self.absent.get(name)
        if missing is None:
            return None
        return (
            f"language {name!r} is not installed on this server ({', '.join(missing)} not found on its PATH); "
            f"installed: {', '.join(self.names)}"
        )

    @classmethod
    def from_mapping(cls, data: Any, source: str = "<registry>") -> Registry:
        if not isinstance(data, dict) or not isinstance(data.get("languages"), dict):
            raise LanguageError(f"{source}: expected a mapping with a 'languages' mapping")
        entries: dict[str, Language] = {}
        for name, raw in data["languages"].items():
            if not isinstance(raw, dict):
                raise LanguageError(f"{source}: language {name!r} must be a mapping")
            try:
                entries[name] = Language.model_validate({**raw, "name": name})
            except ValidationError as exc:
                raise LanguageError(f"{source}: language {name!r}: {exc}") from exc
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Registry:
        """The registry from a YAML file, or the built-in one."""
        if path:
            text = Path(path).read_text()
            source = str(path)
        else:
            text = resources.files("monaco.core").joinpath("languages.yaml").read_text()
            source = "built-in languages.yaml"
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LanguageError(f"{source}: not valid YAML: {exc}") from exc
        return cls.from_mapping(data, source)

    def get(self, name: str) -> Language | None:
        return self._languages.get(name)

    def by_judge0_id(self, language_id: int) -> Language | None:
        return self._judge0.get(language_id)

    def by_piston_name(self, name: str) -> Language | None:
        """The language a Piston client names by its language name or one of its aliases."""
        return self._piston.get(name)

    def __getitem__(self, name: str) -> Language:
        return self._languages[name]

    @cached_property
    def names(self) -> list[str]:
        return list(self._languages)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._languages.values())

    def __contains__(self, name: object) -> bool:
        return name in self._languages

    def __len__(self) -> int:
        return len(self._languages)
