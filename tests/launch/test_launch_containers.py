"""The Apptainer definitions, checked by Apptainer's own rules (the binary cannot be installed here).

Parsing follows Apptainer's definition-file format: a header of ``Key: value`` lines, then sections opened by a
line ``%name`` (app sections ``%appname NAME``); every line starting with ``%word`` opens a section, so one
inside a scriptlet would cut it short. Scriptlets are checked with ``sh -n`` and shellcheck, after the
``{{ ARG }}`` build arguments are filled from ``%arguments`` as ``apptainer build`` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nph.cli.registry import COMMANDS

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "containers"
DEFS = sorted(CONTAINERS.glob("*.def"))

HEADER_KEYS = {
    "Bootstrap",
    "From",
    "Stage",
    "Include",
    "MirrorURL",
    "OSVersion",
    "Registry",
    "Namespace",
    "Fingerprints",
    "Library",
    "UpdateURL",
    "Product",
    "User",
    "Regcred",
    "SetOpt",
    "Confurl",
}
SECTIONS = {"setup", "files", "environment", "post", "runscript", "startscript", "test", "labels", "help", "arguments"}
APP_SECTIONS = {"appinstall", "apphelp", "apprun", "applabels", "appenv", "appfiles", "apptest", "appstart"}
SCRIPTLETS = {
    "setup",
    "environment",
    "post",
    "runscript",
    "startscript",
    "test",
    "appinstall",
    "apprun",
    "appenv",
    "apptest",
    "appstart",
}
#: DESIGN.md's commands: train and generate are written by others and may not be registered yet.
DESIGN_COMMANDS = {
    "phantom",
    "ingest",
    "train",
    "sample-masks",
    "sample-images",
    "generate",
    "generate-merge",
    "generate-status",
    "randomize",
    "nnunet",
    "synthseg",
    "evaluate",
    "image-quality",
}
STAGE_APPS = {"train", "generate", "nnunet", "evaluate"}


@dataclass
class Definition:
    header: dict[str, str]
    sections: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (section, app name) → body lines

    def body(self, section: str, app: str = "") -> str:
        return "\n".join(self.sections[(section, app)])

    def apps(self, section: str) -> set[str]:
        return {app for (name, app) in self.sections if name == section}


def parse_definition(path: Path) -> Definition:
    """Split a .def file as Apptainer does; raises AssertionError on what ``apptainer build`` would refuse."""
    lines = path.read_text().splitlines()
    header: dict[str, str] = {}
    current: tuple[str, str] | None = None
    definition = Definition(header)
    for number, line in enumerate(lines, 1):
        opener = re.match(r"^%(\w+)(?:\s+(.*?))?\s*$", line)
        if opener:
            name, app = opener.group(1), (opener.group(2) or "").strip()
            assert name in SECTIONS | APP_SECTIONS, f"{path}:{number}: unknown section %{name}"
            need = "needs" if not app else "takes no"
            assert (name in APP_SECTIONS) == bool(app), f"{path}:{number}: %{name} {need} name"
            assert (name, app) not in definition.sections, f"{path}:{number}: %{name} {app} given twice"
            current = (name, app)
            definition.sections[current] = []
        elif current is None:
            if line.strip() and not line.lstrip().startswith("#"):
                key, sep, value = line.partition(":")
                assert sep and key.strip() in HEADER_KEYS, f"{path}:{number}: not a header keyword: {line!r}"
                header[key.strip()] = value.strip()
        else:
            assert not re.match(r"^\s*%\w", line), f"{path}:{number}: %-word inside a scriptlet: {line!r}"
            definition.sections[current].append(line)
    return definition


def _arguments(d: Definition) -> dict[str, str]:
    pairs = (line.strip().partition("=") for line in d.sections.get(("arguments", ""), []) if "=" in line)
    return {k.strip(): v for k, _, v in pairs}


def _filled(text: str, args: dict[str, str], where: str) -> str:
    def fill(match: re.Match[str]) -> str:
        assert match.group(1) in args, f"{where}: {{{{ {match.group(1)} }}}} has no default in %arguments"
        return args[match.group(1)]

    return re.sub(r"\{\{\s*(\w+)\s*\}\}", fill, text)


@pytest.mark.parametrize("path", DEFS, ids=lambda p: p.name)
def test_definition_parses_by_apptainer_rules(path: Path) -> None:
    d = parse_definition(path)
    assert d.header["Bootstrap"] == "docker"
    image, _, tag = d.header["From"].rpartition(":")
    assert image and re.match(r"^\d+\.\d+", tag) and tag != "latest", f"{path}: base image not pinned to a version"
    assert ("runscript", "") in d.sections and ("test", "") in d.sections and ("help", "") in d.sections
    for line in d.sections.get(("files", ""), []):
        if line.strip() and not line.strip().startswith("#"):
            source = line.split()[0]
            assert (REPO / source).exists(), f"{path}: %files source {source} missing (paths are from the repo root)"
    assert "PYTHONNOUSERSITE=1" in d.body("environment")


def _scriptlets(path: Path, folder: Path) -> list[Path]:
    """Each scriptlet of ``path`` as a /bin/sh file, build arguments filled in."""
    d = parse_definition(path)
    args = _arguments(d)
    files = []
    for (section, app), body in d.sections.items():
        if section in SCRIPTLETS:
            script = folder / f"{path.stem}-{section}-{app or 'main'}.sh"
            script.write_text("#!/bin/sh\n" + _filled("\n".join(body), args, f"{path} %{section} {app}") + "\n")
            files.append(script)
    return files


@pytest.mark.parametrize("path", DEFS, ids=lambda p: p.name)
def test_every_scriptlet_is_valid_sh(path: Path, tmp_path: Path) -> None:
    scripts = _scriptlets(path, tmp_path)
    assert len(scripts) >= 4  # environment, post, runscript, test at least
    for script in scripts:
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: sh -n: {result.stderr}"


def _shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but shellcheck is missing: add it to the apt-get line of .ci/run")
        pytest.skip("shellcheck (Debian package shellcheck) is not installed")
    return found


@pytest.mark.parametrize("path", DEFS, ids=lambda p: p.name)
def test_every_scriptlet_passes_shellcheck(path: Path, tmp_path: Path) -> None:
    shellcheck = _shellcheck()
    for script in _scriptlets(path, tmp_path):
        # SC2034: %environment's exports look unused to shellcheck, they are read by the container's processes.
        result = subprocess.run([shellcheck, "-s", "sh", "-e", "SC2034", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: shellcheck:\n{result.stdout}"


def test_nph_image_apps_and_labels() -> None:
    d = parse_definition(CONTAINERS / "nph.def")
    assert d.apps("apprun") == STAGE_APPS == d.apps("apphelp")
    assert STAGE_APPS <= DESIGN_COMMANDS  # train/generate may not be in the registry yet: DESIGN.md is the contract
    for app in STAGE_APPS:
        assert d.body("apprun", app).strip() == f'exec nph {app} "$@"'
        registered = app in COMMANDS
        assert registered or app in {"train", "generate"}, f"%apprun {app}: no such nph command"
    assert d.body("runscript").strip() == 'exec nph "$@"'
    labels = dict(line.strip().split(None, 1) for line in d.sections[("labels", "")] if line.strip())
    assert labels["org.opencontainers.image.version"] == "{{ NPH_VERSION }}"
    assert labels["org.opencontainers.image.revision"] == "{{ GIT_COMMIT }}"
    args = _arguments(d)
    assert args["TORCH_SPEC"].startswith("torch==") and "{{ TORCH_SPEC }}" in d.body("post")
    assert "-r /opt/nph/src/requirements.lock" in d.body("post")  # the lock CI installs from
    assert "cuda.is_available" in d.body("test") and "nvidia-smi" in d.body("test")


def test_parser_rejects_what_apptainer_rejects(tmp_path: Path) -> None:
    cases = {
        "Bootstrap: docker\nFrom: x:1.0\n%post\n    echo\n%percent inside\n": "unknown section %percent",
        "Bootstrap: docker\nFrom: x:1.0\n%apprun\n    exec nph\n": "%apprun needs name",
        "Bootstrap: docker\nFrom: x:1.0\n%post\n    echo\n  %post\n": "%-word inside a scriptlet",
        "Bootstrap: docker\nFromm: x:1.0\n": "not a header keyword",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.def"
        bad.write_text(text)
        with pytest.raises(AssertionError, match=message):
            parse_definition(bad)


def test_build_script_refuses_without_apptainer() -> None:
    env = {"PATH": os.environ.get("PATH", ""), "APPTAINER": "/nonexistent/apptainer"}
    result = subprocess.run([str(CONTAINERS / "build.sh"), "nph"], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert "'/nonexistent/apptainer' not found" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (CONTAINERS / "nph.sif").exists()


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = _shellcheck()
    scripts = [CONTAINERS / "build.sh", REPO / "scripts" / "slurm_local.sh"]
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.slow
def test_real_build(tmp_path: Path) -> None:
    if shutil.which(os.environ.get("APPTAINER", "apptainer")) is None:
        pytest.skip("apptainer is not installed here (it cannot be on nph's build machines); builds where it is")
    out = tmp_path / "nph.sif"
    env = {**os.environ}
    subprocess.run([str(CONTAINERS / "build.sh"), "nph", str(out)], check=True, env=env, timeout=3600)
    result = subprocess.run(
        [os.environ.get("APPTAINER", "apptainer"), "run", str(out), "--version"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert result.stdout.strip() == "nph 0.1.0"
