"""Build the wheel and sdist, install each into a clean virtualenv, smoke-test there.

Run: python .ci/package_smoke.py  (needs the `build` package; reaches PyPI for the
build backend and the dependencies). Exits non-zero on the first failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# Runs inside the clean virtualenv, from a directory outside the source tree, so it
# can only import the installed package.
SMOKE = f"""
import importlib, io, pkgutil, sys
from importlib import metadata
from pathlib import Path
import django
from django.conf import settings
apps = ["admin", "auth", "contenttypes", "messages", "sessions"]
settings.configure(INSTALLED_APPS=[*(f"django.contrib.{{a}}" for a in apps), "confio_kms"],
                   USE_TZ=True,
                   DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3",
                                            "NAME": ":memory:"}}}})
django.setup()
from django.core.management import call_command
import confio_kms
assert "site-packages" in confio_kms.__file__, confio_kms.__file__
assert metadata.version("confio-kms") == {VERSION!r}, metadata.version("confio-kms")
assert (Path(confio_kms.__file__).parent / "py.typed").is_file(), "py.typed missing"
modules = [m.name for m in pkgutil.walk_packages(confio_kms.__path__, "confio_kms.")
           if m.name.split(".")[:2] != ["confio_kms", "sandbox"]]  # needs the sandbox extra
for name in modules:
    importlib.import_module(name)
call_command("check", "--tag", "confio_kms")
call_command("makemigrations", "confio_kms", "--check", "--dry-run", stdout=io.StringIO())
out = io.StringIO()
call_command("kms_cost", "--transactions-per-month", "10000", "--group-size", "16", stdout=out)
assert "625 requests" in out.getvalue(), out.getvalue()
import os
from confio_kms.common.exceptions import ConfigurationError
os.environ.pop("AWS_DEFAULT_REGION", None)
os.environ.pop("AWS_REGION", None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
signer = confio_kms.KMSSigner("smoke", endpoint_url="http://127.0.0.1:9")
assert signer.region_name == "eu-central-2", signer.region_name  # the guide's default
os.environ["KMS_REGION"] = "Zurich"
try:
    confio_kms.KMSSigner("smoke", endpoint_url="http://127.0.0.1:9")
except ConfigurationError as error:
    assert "KMS_REGION" in str(error), str(error)
else:
    raise AssertionError("an invalid KMS_REGION was accepted")
print(f"smoke: {{len(modules)}} modules imported, checks, migrations, kms_cost: ok")
"""


def run(*command: str | Path, cwd: Path | None = None) -> None:
    print("$", " ".join(str(c) for c in command)[:200], flush=True)
    # No AWS settings from this machine: the smoke test expects none.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    subprocess.run([str(c) for c in command], check=True, cwd=cwd, env=env)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp) / "dist"
        run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
        wheel = next(dist.glob("*.whl"))
        sdist = next(dist.glob("*.tar.gz"))
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
        for needed in (
            "confio_kms/py.typed",
            "confio_kms/migrations/0001_initial.py",
            "confio_kms/management/commands/kms_setup.py",
            f"confio_kms-{VERSION}.dist-info/licenses/LICENSE",
        ):
            assert needed in names, f"{needed} not in {wheel.name}"
        assert not any(n.startswith(("tests/", "benchmarks/")) for n in names), "stray files"
        with tarfile.open(sdist) as archive:
            members = archive.getnames()
        for needed in ("tests/test_signer.py", "docs/index.md", "CHANGELOG.md", "LICENSE"):
            assert f"confio_kms-{VERSION}/{needed}" in members, f"{needed} not in {sdist.name}"
        # Settings files hold secrets (the legacy mnemonic): never shipped.
        leaked = [m for m in members if m.rsplit("/", 1)[-1] in (".env", "settings.ini")]
        assert not leaked, f"secrets files in {sdist.name}: {leaked}"
        for artifact in (wheel, sdist):
            env = Path(tmp) / f"venv-{artifact.suffix.strip('.')}"
            venv.create(env, with_pip=True)
            run(env / "bin" / "pip", "install", "-q", artifact)
            run(env / "bin" / "python", "-c", SMOKE, cwd=Path(tmp))
    print(f"package smoke: wheel and sdist of {VERSION} install and work in clean virtualenvs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
